//! [`HubServer::test_client`]: a real [`HubConnection`] to this hub over
//! the in-memory transport, for tests without a network.

use std::sync::Arc;

use futures_util::StreamExt as _;
use http::{HeaderMap, HeaderValue, Method, Request, header};

use super::transport_requests::{self, TransportKind, identity_of};
use super::{HubServer, Shared};
use crate::client::{
    CloseReason, Frame, FrameSink, FrameSource, HubConnectionBuilder, InMemoryConnector,
};
use crate::hub::ConnectionContext;
use crate::server::transport::in_memory::{self, MemoryClientEnd, MemoryFrame};
use crate::targets::ConnectionId;
use crate::{Hub, HubError, HubErrorKind};

/// The URL a test client reports; nothing is ever sent to it.
const TEST_CLIENT_URL: &str = "http://in-memory.invalid/hub";

impl<H: Hub> HubServer<H> {
    /// A client of this hub that connects in memory: no socket, no port,
    /// no HTTP. Everything else is real — the handshake, the hub protocol
    /// (JSON, or MessagePack with [`HubConnectionBuilder::protocol`]), the
    /// server's dispatch, keep-alive, groups and users, the client's
    /// handlers and typed proxies — so a hub is unit-tested the way axum
    /// users test a router with `tower::ServiceExt::oneshot`.
    ///
    /// Each [`start`](crate::client::HubConnection::start) (and each
    /// automatic reconnect) opens a new connection to this hub. The
    /// server's [`UserIdProvider`](super::UserIdProvider) sees a request
    /// carrying the builder's headers and, from
    /// [`access_token`](HubConnectionBuilder::access_token), an
    /// `Authorization: Bearer` header, so users and authentication work
    /// as over the network. The connection reports
    /// [`TransportType::WebSockets`](crate::client::TransportType): the
    /// in-memory transport has a WebSocket's semantics (whole frames, both
    /// ways at once). Negotiate options (transports, skip negotiation,
    /// stateful reconnect) do not apply.
    ///
    /// ```
    /// use hub_runtime::server::HubServer;
    /// use hub_runtime::{hub, hub_client, hub_server};
    ///
    /// #[hub_client]
    /// pub trait ICalculatorClient {
    ///     async fn result(&self, total: i64);
    /// }
    ///
    /// #[hub_server]
    /// pub trait ICalculator {
    ///     async fn add(&self, a: i64, b: i64) -> i64;
    /// }
    ///
    /// pub struct Calculator;
    ///
    /// #[hub(client = ICalculatorClient)]
    /// impl ICalculator for Calculator {
    ///     async fn add(&self, a: i64, b: i64) -> i64 {
    ///         a + b
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), hub_runtime::HubError> {
    /// let hub = HubServer::new(Calculator);
    /// let connection = hub.test_client().build()?;
    /// connection.start().await?;
    /// assert_eq!(connection.hub::<ICalculatorProxy>().add(2, 3).await?, 5);
    /// connection.stop().await;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn test_client(&self) -> HubConnectionBuilder {
        let shared = self.shared.clone();
        let connector: InMemoryConnector = Arc::new(move |token, headers| {
            let shared = shared.clone();
            Box::pin(async move { open(&shared, token, headers).await })
        });
        HubConnectionBuilder::new(TEST_CLIENT_URL).in_memory(connector)
    }
}

fn refused(message: &str) -> HubError {
    HubError::with_kind(HubErrorKind::Transport, message.to_owned())
}

/// Starts a session on a new in-memory connection, as the WebSocket
/// endpoint does for an upgraded socket.
async fn open<H: Hub>(
    shared: &Arc<Shared<H>>,
    token: Option<String>,
    headers: HeaderMap,
) -> Result<(FrameSink, FrameSource), HubError> {
    if *shared.shutdown.borrow() {
        return Err(refused("The server is shutting down."));
    }
    // The request the user id provider sees: what a WebSocket request of
    // this client would have carried.
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(TEST_CLIENT_URL)
        .body(())
        .map_err(|e| refused(&e.to_string()))?;
    *request.headers_mut() = headers;
    if let Some(token) = token {
        let value = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| refused("The access token is not a valid header value."))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let (parts, ()) = request.into_parts();
    let identity = identity_of(shared, &parts)
        .await
        .map_err(|_| refused("The server answered 401 Unauthorized."))?;
    let user = identity.user_id_arc().cloned();
    let connection_id = transport_requests::fresh_id()
        .ok_or_else(|| refused("The OS random number generator failed."))?;
    let live = transport_requests::register(
        shared,
        None,
        TransportKind::WebSockets,
        user,
        None,
        None,
        None,
    );
    let context = Arc::new(ConnectionContext::new(
        ConnectionId::from(connection_id),
        identity,
        Some(parts),
    ));
    let (source, sink, client) = in_memory::pair();
    tokio::spawn(transport_requests::run_session(
        shared.clone(),
        source,
        sink,
        context,
        None,
        live,
        TransportKind::WebSockets,
        // The metrics' hub label: there is no mount path in memory.
        "in-memory".to_owned(),
    ));
    Ok(client_halves(client))
}

fn gone() -> HubError {
    HubError::with_kind(
        HubErrorKind::Transport,
        "the in-memory hub connection is closed",
    )
}

/// The client's end as the Rust client's transport halves.
fn client_halves(client: MemoryClientEnd) -> (FrameSink, FrameSource) {
    let MemoryClientEnd {
        to_server,
        from_server,
    } = client;
    let sink = futures_util::sink::unfold(to_server, |to_server, frame: Frame| async move {
        let frame = match frame {
            Frame::Data(bytes) => MemoryFrame::Data(bytes),
            Frame::Close(reason) => MemoryFrame::Close(reason.map_or(1000, |reason| reason.code)),
        };
        to_server.send(frame).await.map_err(|_| gone())?;
        Ok::<_, HubError>(to_server)
    });
    let source = stream_of(from_server).map(|frame| {
        Ok(match frame {
            MemoryFrame::Data(bytes) => Frame::Data(bytes),
            MemoryFrame::Close(1000) => Frame::Close(None),
            MemoryFrame::Close(code) => Frame::Close(Some(CloseReason {
                code,
                reason: String::new(),
            })),
        })
    });
    (Box::pin(sink), Box::pin(source))
}

/// The receiver as a stream (what `tokio_stream::wrappers` would give,
/// without the dependency).
fn stream_of(
    mut receiver: tokio::sync::mpsc::Receiver<MemoryFrame>,
) -> impl futures_util::Stream<Item = MemoryFrame> + Send {
    futures_util::stream::poll_fn(move |context| receiver.poll_recv(context))
}
