//! Typed, SignalR-compatible real-time hubs.
//!
//! This crate holds the protocol codecs ([`protocol`]), the hub and client
//! contracts that the `#[hub]` and `#[hub_client]` macros plug into, and
//! behind features the server (`server`) and the client (`client`).

use std::future::Future;
use std::pin::Pin;

pub mod authorization;
#[cfg(feature = "server")]
pub mod backplane;
#[cfg(feature = "client")]
pub mod client;
pub mod clients;
pub mod filter;
pub mod handlers;
pub mod hub;
pub mod protocol;
pub mod proxy;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "typescript")]
pub mod typescript;

mod caller;
#[cfg(feature = "server")]
mod connection;
mod context;
mod error;
mod identity;
#[cfg(any(feature = "server", feature = "client"))]
mod shutdown;
#[cfg(any(feature = "server", feature = "client"))]
mod telemetry;
mod timestamp;
#[cfg(feature = "server")]
mod transport;

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

pub use hub_macros::{authorize, hub, hub_client, hub_server};

pub use clients::{ClientContract, ConnectionId, HubClients};
pub use context::HubContext;
pub use error::{HubError, HubErrorKind};
pub use handlers::ClientHandlers;
pub use hub::{CallContext, Hub};
pub use identity::Identity;
pub use proxy::{HubProxy, Invoker, ServerContract};
#[cfg(any(feature = "server", feature = "client"))]
pub use shutdown::shutdown_signal;
pub use timestamp::Timestamp;

/// A boxed, `Send` future: what the runtime's object-safe traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The README's Rust examples, compiled and run as doc tests so that they
/// stay true. They use the server with TLS (`server-tls`): `cargo test
/// --workspace` turns it on (through `hub-tests`).
#[cfg(all(doctest, feature = "server", feature = "server-tls"))]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
