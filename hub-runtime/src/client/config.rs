//! [`Config`]: the settled options of a client connection, as
//! [`HubConnectionBuilder::build`](super::HubConnectionBuilder::build)
//! checked them. Every other part of the client reads its options here.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use super::net::{AccessTokenProvider, Net};
use super::reconnect::ReconnectPolicy;
use super::url::HubUrl;
use crate::protocol::HubProtocol;

/// The settled options of a connection.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) url: HubUrl,
    pub(crate) protocol: HubProtocol,
    pub(crate) access_token: Option<AccessTokenProvider>,
    pub(crate) headers: HeaderMap,
    pub(crate) reconnect: Option<Arc<dyn ReconnectPolicy>>,
    pub(crate) server_timeout: Duration,
    pub(crate) keep_alive_interval: Duration,
    pub(crate) handshake_timeout: Duration,
    pub(crate) http_timeout: Duration,
    pub(crate) skip_negotiation: bool,
    pub(crate) transports: Transports,
    pub(crate) stateful_reconnect: Option<usize>,
    pub(crate) max_message_size: Option<usize>,
    pub(crate) stream_buffer_capacity: usize,
    pub(crate) stream_buffer_timeout: Duration,
    /// The HTTP client, TLS, cookies and proxy of every request.
    pub(crate) net: Net,
    /// Connect in memory instead of over the network (no negotiate).
    pub(crate) in_memory: Option<InMemoryConnector>,
}

/// Opens an in-memory transport to a hub in this process (the server's
/// test client), given the access token and headers a request would carry.
pub(crate) type InMemoryConnector = Arc<
    dyn Fn(
            Option<String>,
            HeaderMap,
        ) -> crate::BoxFuture<
            'static,
            Result<
                (
                    super::transport::frame::FrameSink,
                    super::transport::frame::FrameSource,
                ),
                crate::HubError,
            >,
        > + Send
        + Sync,
>;

impl Config {
    /// A fresh token from the provider, if one is configured.
    pub(crate) async fn access_token(&self) -> Option<String> {
        match &self.access_token {
            Some(provider) => provider().await,
            None => None,
        }
    }
}

/// Which transports the client may use, tried in the server's order
/// (WebSockets, Server-Sent Events, Long Polling): when one fails to
/// start, the client negotiates again and tries the next, as the official
/// clients do. [`HubConnection::transport`](super::HubConnection::transport)
/// tells which one the connection ended up with.
///
/// ```
/// use hub_runtime::client::{HubConnection, Transports};
///
/// // Behind a proxy that blocks WebSockets.
/// let connection = HubConnection::builder("http://127.0.0.1:5000/hubs/clock")
///     .transports(Transports { web_sockets: false, ..Transports::ALL })
///     .build();
/// assert!(connection.is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// WebSockets.
    pub web_sockets: bool,
    /// Server-Sent Events plus POSTs (the JSON protocol only).
    pub server_sent_events: bool,
    /// Long Polling plus POSTs.
    pub long_polling: bool,
}

impl Transports {
    /// Every transport (the default).
    pub const ALL: Transports = Transports {
        web_sockets: true,
        server_sent_events: true,
        long_polling: true,
    };
}

impl Default for Transports {
    fn default() -> Self {
        Transports::ALL
    }
}
