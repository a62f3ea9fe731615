//! The Rust client: [`HubConnection`], speaking the SignalR protocol to an
//! ASP.NET Core hub or to this crate's server.
//!
//! A connection negotiates (`POST {url}/negotiate?negotiateVersion=1`),
//! opens the first transport the server offers and the client allows
//! ([`Transports`]: WebSockets, then Server-Sent Events, then Long Polling,
//! negotiating again after a transport that fails to start; see
//! [`HubConnection::transport`] for the one in use), performs the hub
//! handshake and then exchanges hub messages in JSON (or MessagePack).
//! With [`HubConnectionBuilder::stateful_reconnect`], a dropped
//! WebSocket is resumed with nothing lost or repeated. `https://` and
//! `wss://` work on every transport (rustls; see
//! [`HubConnectionBuilder`] for trust, cookies and proxies).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use hub_runtime::client::{HubConnection, HubConnectionEvent};
//! use hub_runtime::protocol::Payload;
//!
//! # async fn run() -> Result<(), hub_runtime::HubError> {
//! let connection = HubConnection::builder("http://127.0.0.1:5000/hubs/test")
//!     .access_token(|| Some("user-ann".to_owned()))
//!     .automatic_reconnect()
//!     .build()?;
//!
//! // A client method the server calls: `Receive(message)`.
//! connection.on("Receive", 1, |args| async move {
//!     let message: String = args.bind(0)?;
//!     println!("received {message}");
//!     Ok(None)
//! });
//! // A client method with a result: the server's `InvokeAsync("Question", …)`
//! // gets the answer.
//! connection.on("Question", 1, |args| async move {
//!     let question: String = args.bind(0)?;
//!     Ok(Some(Payload::from_value(format!("answer to {question}"))))
//! });
//!
//! let mut events = connection.events();
//! tokio::spawn(async move {
//!     while let Ok(event) = events.recv().await {
//!         match event {
//!             HubConnectionEvent::Reconnecting { error } => println!("lost: {error:?}"),
//!             HubConnectionEvent::Reconnected { connection_id } => println!("back as {connection_id:?}"),
//!             HubConnectionEvent::Closed { reason, error } => println!("closed ({reason:?}): {error:?}"),
//!         }
//!     }
//! });
//!
//! connection.start().await?;
//! let echoed: String = connection.invoke("Echo", ("hello",)).await?;
//! let sum: i64 = connection.invoke("Add", (2, 3)).await?;
//! assert_eq!((echoed.as_str(), sum), ("hello", 5));
//! connection.send("Broadcast", ("hi all",)).await?;
//! tokio::time::sleep(Duration::from_millis(100)).await;
//! connection.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Design
//!
//! - **State** is a [`HubConnectionState`], readable with
//!   [`HubConnection::state`] and observable with
//!   [`HubConnection::state_changes`] (a `tokio::sync::watch`).
//! - **Events** — `Reconnecting(error)`, `Reconnected(connection id)`,
//!   `Closed(error)` — are a `tokio::sync::broadcast` from
//!   [`HubConnection::events`]; subscribe before `start()` to see them all.
//! - **Reconnect** is opt-in, as in the official clients:
//!   [`HubConnectionBuilder::automatic_reconnect`] waits 0, 2, 10 and
//!   30 s between attempts and then gives up. Each attempt is a brand-new
//!   connection (new negotiate, new connection id, new handshake); calls in
//!   flight when the connection was lost fail with
//!   [`HubErrorKind::ConnectionClosed`](crate::HubErrorKind::ConnectionClosed).
//! - **Keep-alive:** a Ping is sent right after the handshake and whenever
//!   nothing was sent for 15 s; the connection is closed with "Server timeout
//!   elapsed without receiving a message from the server." after 30 s
//!   without anything from the server.
//! - **Client methods** are [`ClientHandlers`](crate::ClientHandlers)
//!   (what a `#[hub_client]` trait's `into_handlers()` returns), added with
//!   [`HubConnection::register`], [`HubConnection::on`] or
//!   [`HubConnectionBuilder::handlers`]. They start in arrival order and
//!   run concurrently. For an invocation with an id (a client result), a
//!   handler's `Ok(Some(payload))` is the answer; no handler, or only
//!   `Ok(None)`, answers the error "Client didn't provide a result.".
//!   A failing handler answers with its error text; a slow one holds up
//!   nothing else.
//! - **Server streams:** [`HubConnection::stream`] sends a StreamInvocation
//!   and returns a [`HubStream`], a `futures` `Stream` of `Result<T, _>`.
//!   The server's Completion ends it (an error as the last item); dropping
//!   it or [`HubStream::cancel`] sends a CancelInvocation; a lost
//!   connection ends it with `ConnectionClosed`. Each stream buffers up to
//!   [`HubConnectionBuilder::stream_buffer_capacity`] items; see
//!   [`HubStream`] for what happens when its consumer is slow.
//! - **Upload streams:** [`upload`] and [`try_upload`] wrap a `Stream` as
//!   an argument of `invoke`, `send` or `stream`. It is taken out of
//!   `arguments` and listed in `streamIds` (ids from the invocation-id
//!   counter, before the invocation's own, as the JS client); its items
//!   follow as StreamItems and a Completion ends it. See [`Upload`].
//!
//! ```no_run
//! use futures_util::{StreamExt, stream};
//! use hub_runtime::client::{HubConnection, upload};
//!
//! # async fn run(connection: HubConnection) -> Result<(), hub_runtime::HubError> {
//! let mut counter = connection.stream::<i64>("Counter", (3, 100))?;
//! while let Some(n) = counter.next().await {
//!     println!("{}", n?);
//! }
//! let sum: i64 = connection.invoke("Sum", (upload(stream::iter([1, 2, 3])),)).await?;
//! assert_eq!(sum, 6);
//! # Ok(())
//! # }
//! ```

mod arguments;
mod builder;
mod config;
mod connection;
mod dispatcher;
mod events;
mod handshake;
mod in_flight;
mod invoker;
mod net;
mod reader;
mod reconnect;
mod session;
mod shared;
mod stateful;
mod stream;
mod transport;
mod upload;
mod url;
mod writer;

pub use arguments::{
    CallArguments, IntoArgument, IntoArguments, Upload, encode_argument, try_upload, upload,
};
pub use builder::HubConnectionBuilder;
// For the server's in-memory test client.
#[cfg(feature = "server")]
pub(crate) use config::InMemoryConnector;
pub use config::Transports;
pub use connection::HubConnection;
pub use events::{ClosedReason, HubConnectionEvent, HubConnectionState};
pub use reconnect::{DefaultReconnectPolicy, ReconnectPolicy, RetryContext};
pub use stream::HubStream;
#[cfg(feature = "server")]
pub(crate) use transport::frame::{CloseReason, Frame, FrameSink, FrameSource};

/// The rustls version [`HubConnectionBuilder::tls_config`] takes.
pub use rustls;

// With the client, so that what `HubConnection::transport` returns needs no
// import from the protocol module.
pub use crate::protocol::negotiate::TransportType;
