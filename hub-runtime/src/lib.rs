//! Typed, SignalR-compatible real-time hubs.
//!
//! This crate holds the protocol codecs ([`protocol`]), and behind features
//! the server (`server`) and the client (`client`).

pub mod protocol;
