//! Typed calls from a client to a hub, without method-name strings.
//!
//! A `#[hub_server]` trait is the contract of a hub's own methods. Next to
//! the trait, the macro generates a proxy struct (`IClockHubProxy` for
//! `trait IClockHub`) with one Rust method per hub method, which calls the
//! hub through an [`Invoker`]: the wire name, the argument list and the
//! result type all come from the trait, so a wrong method, a wrong argument
//! or a wrong result type is a compile error.
//!
//! [`Invoker`] is implemented by the Rust client's
//! `client::HubConnection` (feature `client`). It lives here, in the core,
//! so that a contract crate compiles without the client: the crate that
//! defines the traits can depend on `hub-runtime` with
//! `default-features = false`.
//!
//! ```no_run
//! use hub_runtime::{HubError, Timestamp, hub_server};
//!
//! #[hub_server]
//! pub trait IClockHub {
//!     async fn get_time(&self) -> Timestamp;
//! }
//!
//! # #[cfg(feature = "client")]
//! # async fn run() -> Result<(), HubError> {
//! let connection = hub_runtime::client::HubConnection::builder("http://127.0.0.1:5000/hubs/clock")
//!     .build()?;
//! connection.start().await?;
//! let hub = connection.hub::<IClockHubProxy>();
//! let now: Timestamp = hub.get_time().await?;
//! # let _ = now;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;

use crate::hub::{Hub, HubCall, InvocationError, MethodDescriptor, MethodOutput, MethodRunner};
use crate::protocol::Payload;
use crate::{BoxFuture, HubError, HubErrorKind};

/// A boxed, `Send` stream.
pub type BoxStream<'a, T> = Pin<Box<dyn Stream<Item = T> + Send + 'a>>;

/// What a typed hub proxy calls the hub through: a client connection.
///
/// The three ways to call a hub method, as in every SignalR client. The
/// returned futures own what they need (`'static`), so a proxy call can be
/// spawned. Implemented by `client::HubConnection`; implement it to route
/// typed calls through something else (a test double, another transport).
pub trait Invoker: Send + Sync + 'static {
    /// Invokes `method` and resolves with its result (`null` for a method
    /// without one). A hub error is an error of kind
    /// [`Remote`](HubErrorKind::Remote).
    fn invoke(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> BoxFuture<'static, Result<Payload, HubError>>;

    /// Calls `method` without waiting for it to run (fire-and-forget);
    /// resolves once the message is sent.
    fn send(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> BoxFuture<'static, Result<(), HubError>>;

    /// Calls the streaming method `method`; its items arrive as the
    /// server sends them, a hub error being the last item.
    fn stream(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> Result<BoxStream<'static, Result<Payload, HubError>>, HubError>;
}

/// A typed proxy over a hub's methods, made from an [`Invoker`]: what
/// `#[hub_server]` generates (`IClockHubProxy`), and what
/// `HubConnection::hub::<P>()` returns.
pub trait HubProxy: Sized {
    /// The proxy calling through `invoker`.
    fn from_invoker(invoker: Arc<dyn Invoker>) -> Self;
}

/// An upload stream argument: its items, each serialized by the protocol
/// that sends it.
pub type UploadItems = BoxStream<'static, Payload>;

/// The arguments of a typed proxy call: the values, in order, and the
/// upload streams (which go in the message's `streamIds`, not in its
/// `arguments`).
#[derive(Default)]
pub struct ProxyArguments {
    values: Vec<Payload>,
    uploads: Vec<UploadItems>,
}

impl fmt::Debug for ProxyArguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyArguments")
            .field("values", &self.values)
            .field("uploads", &self.uploads.len())
            .finish()
    }
}

impl ProxyArguments {
    /// No arguments.
    pub fn new() -> Self {
        ProxyArguments::default()
    }

    /// Appends a value.
    pub fn push_value(&mut self, value: Payload) {
        self.values.push(value);
    }

    /// Appends an upload stream.
    pub fn push_upload(&mut self, items: UploadItems) {
        self.uploads.push(items);
    }

    /// The values and the upload streams.
    pub fn into_parts(self) -> (Vec<Payload>, Vec<UploadItems>) {
        (self.values, self.uploads)
    }
}

/// Deserializes the result of `method` for a typed proxy.
pub fn decode_result<T: DeserializeOwned>(method: &str, payload: &Payload) -> Result<T, HubError> {
    payload.deserialize().map_err(|e| {
        HubError::with_kind(
            HubErrorKind::Serialization,
            format!("Failed to deserialize the result of '{method}': {e}"),
        )
        .with_source(e)
    })
}

/// The items of a streaming hub method, deserialized into `T`: what a
/// typed proxy's streaming methods return.
///
/// A stream of `Result<T, HubError>`: an item that does not deserialize is
/// an `Err` of kind [`Serialization`](HubErrorKind::Serialization) and the
/// stream goes on; a hub error, or the loss of the connection, is the last
/// item. Dropping the stream before its end cancels the invocation on the
/// server.
#[must_use = "a stream does nothing unless polled; dropping it cancels the invocation"]
pub struct ItemStream<T> {
    method: &'static str,
    items: BoxStream<'static, Result<Payload, HubError>>,
    item: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for ItemStream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemStream")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<T> ItemStream<T> {
    /// The items of `method`, as an [`Invoker`] delivers them.
    pub fn new(method: &'static str, items: BoxStream<'static, Result<Payload, HubError>>) -> Self {
        ItemStream {
            method,
            items,
            item: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Stream for ItemStream<T> {
    type Item = Result<T, HubError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let method = self.method;
        match self.items.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(payload))) => {
                Poll::Ready(Some(payload.deserialize().map_err(|e| {
                    HubError::with_kind(
                        HubErrorKind::Serialization,
                        format!("Failed to deserialize an item of the stream '{method}': {e}"),
                    )
                    .with_source(e)
                })))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

/// The hub methods declared by a `#[hub_server]` trait, for any hub `H`
/// that implements the trait: the method table and the dispatch that
/// `#[hub]` puts in `impl Hub` when it is written on an implementation of
/// the trait (`#[hub(client = IClock)] impl IClockHub for ClockHub`).
///
/// Generated as `IClockHubContract` for `trait IClockHub`.
pub trait ServerContract<H: Hub> {
    /// The methods, in the order the trait declares them.
    const METHODS: &'static [MethodDescriptor];

    /// The methods' Rust names, in the same order (for what an
    /// implementation declares by name, such as `#[authorize]`).
    const RUST_NAMES: &'static [&'static str] = &[];

    /// Runs method `method` (an index into [`METHODS`](Self::METHODS)) on
    /// `hub`; see [`Hub::invoke`].
    fn invoke(
        hub: Arc<H>,
        method: usize,
        call: HubCall<H>,
    ) -> BoxFuture<'static, Result<MethodOutput, InvocationError>>;

    /// Runs method `method` on `hub`, handing its future to `runner`
    /// unboxed; see [`Hub::invoke_with`]. The default hands over
    /// `invoke`'s boxed future, called at the first poll.
    fn invoke_with<R: MethodRunner>(
        hub: Arc<H>,
        method: usize,
        call: HubCall<H>,
        runner: R,
    ) -> R::Output {
        runner.run(async move { Self::invoke(hub, method, call).await })
    }
}

/// An upload argument of a typed proxy: every item of `stream`, each
/// serialized by the protocol that sends it.
pub fn upload_items<S>(stream: S) -> UploadItems
where
    S: Stream + Send + 'static,
    S::Item: serde::Serialize + Send + Sync + 'static,
{
    Box::pin(PayloadItems {
        stream: Box::pin(stream),
    })
}

/// Maps a stream's items to payloads (the core has no `futures-util`).
struct PayloadItems<S> {
    stream: Pin<Box<S>>,
}

impl<S> Stream for PayloadItems<S>
where
    S: Stream,
    S::Item: serde::Serialize + Send + Sync + 'static,
{
    type Item = Payload;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Payload>> {
        self.stream
            .as_mut()
            .poll_next(cx)
            .map(|item| item.map(Payload::from_value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}
