//! [`Invoker`] for [`HubConnection`]: what typed hub proxies
//! (`#[hub_server]`) call through.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::connection::HubConnection;
use super::stream::HubStream;
use crate::BoxFuture;
use crate::client::IntoArguments as _;
use crate::protocol::{CompletionResult, Payload};
use crate::proxy::{BoxStream, HubProxy, Invoker, ProxyArguments};
use crate::{HubError, HubErrorKind};

impl HubConnection {
    /// A typed proxy over the hub's methods: `P` is the proxy that
    /// `#[hub_server]` generates next to a hub trait (`IClockHubProxy` for
    /// `trait IClockHub`). Its methods call this connection.
    ///
    /// The proxy holds a clone of the connection (keeping it alive); make
    /// one per connection and reuse it, or make them as needed: it is
    /// cheap.
    ///
    /// ```no_run
    /// use hub_runtime::client::HubConnection;
    /// use hub_runtime::{HubError, hub_server};
    ///
    /// #[hub_server]
    /// pub trait Calculator {
    ///     async fn add(&self, a: i64, b: i64) -> i64;
    /// }
    ///
    /// # async fn run(connection: HubConnection) -> Result<(), HubError> {
    /// let hub = connection.hub::<CalculatorProxy>();
    /// let sum: i64 = hub.add(2, 3).await?;
    /// assert_eq!(sum, 5);
    /// # Ok(())
    /// # }
    /// ```
    pub fn hub<P: HubProxy>(&self) -> P {
        P::from_invoker(std::sync::Arc::new(self.clone()))
    }
}

impl Invoker for HubConnection {
    fn invoke(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> BoxFuture<'static, Result<Payload, HubError>> {
        let connection = self.clone();
        Box::pin(async move {
            let arguments = arguments.into_call_arguments(connection.protocol())?;
            match connection.invoke_arguments(method, arguments).await? {
                CompletionResult::Value(payload) => Ok(payload),
                CompletionResult::Void => Ok(Payload::null()),
                CompletionResult::Error(error) => {
                    Err(HubError::with_kind(HubErrorKind::Remote, error))
                }
            }
        })
    }

    fn send(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        let connection = self.clone();
        Box::pin(async move { HubConnection::send(&connection, method, arguments).await })
    }

    fn stream(
        &self,
        method: &'static str,
        arguments: ProxyArguments,
    ) -> Result<BoxStream<'static, Result<Payload, HubError>>, HubError> {
        let arguments = arguments.into_call_arguments(self.protocol())?;
        let stream = self.open_stream::<Payload>(method, arguments)?;
        Ok(Box::pin(PayloadItems(stream)))
    }
}

/// A [`HubStream`] handing out its items still encoded.
struct PayloadItems(HubStream<Payload>);

impl Stream for PayloadItems {
    type Item = Result<Payload, HubError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().0.poll_payload(cx)
    }
}
