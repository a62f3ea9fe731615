//! Typed, SignalR-compatible real-time hubs.
//!
//! This crate holds the protocol codecs ([`protocol`]), the hub and client
//! contracts that the `#[hub]` and `#[hub_client]` macros plug into, and
//! behind features the server (`server`) and the client (`client`).
//!
//! Start with the [`guide`]: contracts, hubs, targets, groups and users,
//! identity and authorization, streams, client results, the Rust client,
//! transports, TLS, stateful reconnect, scale-out, options, errors, and
//! testing a hub in memory.

// docs.rs builds with `--cfg docsrs` (see Cargo.toml): items say which
// features they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::future::Future;
use std::pin::Pin;

pub mod authorization;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod backplane;
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
pub mod filter;
#[cfg(all(feature = "server", feature = "client"))]
#[cfg_attr(docsrs, doc(cfg(all(feature = "server", feature = "client"))))]
#[doc = include_str!("guide.md")]
pub mod guide {}
pub mod handlers;
pub mod hub;
pub mod protocol;
pub mod proxy;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub mod server;
pub mod targets;
#[cfg(feature = "typescript")]
#[cfg_attr(docsrs, doc(cfg(feature = "typescript")))]
pub mod typescript;

mod caller;
mod context;
mod error;
mod identity;
mod invocation;
#[cfg(any(feature = "server", feature = "client"))]
mod shutdown;
#[cfg(any(feature = "server", feature = "client"))]
mod telemetry;
mod timestamp;
mod wire;

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

pub use hub_macros::{authorize, hub, hub_client, hub_server};

pub use context::HubContext;
pub use error::{HubError, HubErrorKind};
pub use handlers::ClientHandlers;
pub use hub::{CallContext, ClientOf, Hub};
pub use identity::Identity;
pub use proxy::{HubProxy, Invoker, ServerContract};
#[cfg(any(feature = "server", feature = "client"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "server", feature = "client"))))]
pub use shutdown::shutdown_signal;
pub use targets::{ClientContract, ConnectionId, HubClients};
pub use timestamp::Timestamp;

/// A boxed, `Send` future: what the runtime's object-safe traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The README's Rust examples, compiled and run as doc tests so that they
/// stay true. They use the server with TLS (`server-tls`): `cargo test
/// --workspace` turns it on (through `hub-tests`).
#[cfg(all(doctest, feature = "server", feature = "server-tls"))]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;

/// The old name of [`targets`]: the server's ways to address clients.
#[doc(hidden)]
pub use targets as clients;
