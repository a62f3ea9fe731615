//! The transport choice, in one place: negotiate, then open the first
//! transport the server offers and the configuration allows; after one
//! that fails to start, negotiate again and try the next (the failed
//! attempt may have used the connection token up), as the official
//! clients do.

use tracing::{debug, warn};

use super::frame::{FrameSink, FrameSource, Reopen, transport_error};
use super::http::{HttpTarget, TokenSource};
use super::negotiate::{Negotiated, negotiate};
use super::websocket::WebSocketTarget;
use super::{long_polling, sse, websocket};
use crate::HubError;
use crate::client::config::Config;
use crate::client::url::HubUrl;
use crate::protocol::negotiate::TransportType;

/// A transport that started: its halves and what the negotiation that
/// led to it settled on.
pub(crate) struct Opened {
    pub(crate) sink: FrameSink,
    pub(crate) source: FrameSource,
    pub(crate) transport: TransportType,
    pub(crate) connection_id: Option<String>,
    /// Set when stateful reconnect is on for this connection.
    pub(crate) resume: Option<Reopen>,
}

/// Opens a transport for `config`, with fallback; see the module docs.
pub(crate) async fn open_transport(config: &Config) -> Result<Opened, HubError> {
    if let Some(connector) = &config.in_memory {
        // A hub in this process: no negotiate, a fresh in-memory
        // connection each time, with the token a request would carry.
        let token = config.access_token().await;
        let (sink, source) = connector(token, config.headers.clone()).await?;
        return Ok(Opened {
            sink,
            source,
            // WebSocket semantics: whole frames both ways, full duplex.
            transport: TransportType::WebSockets,
            connection_id: None,
            resume: None,
        });
    }
    if config.skip_negotiation {
        let token = config.access_token().await;
        let (sink, source) = websocket::open(websocket_target(
            config,
            &config.url,
            None,
            token.as_deref(),
        ))
        .await?;
        return Ok(Opened {
            sink,
            source,
            transport: TransportType::WebSockets,
            connection_id: None,
            resume: None,
        });
    }
    let allowed = |transport: &TransportType| match transport {
        TransportType::WebSockets => config.transports.web_sockets,
        TransportType::ServerSentEvents => config.transports.server_sent_events,
        TransportType::LongPolling => config.transports.long_polling,
    };
    let mut tried: Vec<TransportType> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    loop {
        let token = config.access_token().await;
        let negotiated = negotiate(
            &config.net,
            &config.url,
            token,
            &config.headers,
            config.protocol.transfer_format(),
            config.http_timeout,
            config.stateful_reconnect.is_some(),
        )
        .await?;
        let next = negotiated
            .transports
            .iter()
            .copied()
            .find(|t| allowed(t) && !tried.contains(t));
        let Some(transport) = next else {
            return Err(transport_error(if errors.is_empty() {
                "Unable to connect to the server with any of the available transports: \
                 none of them is enabled in this client."
                    .to_owned()
            } else {
                format!(
                    "Unable to connect to the server with any of the available transports. {}",
                    errors.join(" ")
                )
            }));
        };
        tried.push(transport);
        match open_one(config, &negotiated, transport).await {
            Ok((sink, source)) => {
                // Stateful reconnect: WebSockets only, when the server
                // agreed. A resume opens the same URL with a fresh token.
                let resume = (negotiated.stateful_reconnect
                    && transport == TransportType::WebSockets
                    && config.stateful_reconnect.is_some())
                .then(|| reopen_websocket(config, &negotiated));
                return Ok(Opened {
                    sink,
                    source,
                    transport,
                    connection_id: negotiated.connection_id,
                    resume,
                });
            }
            Err(error) => {
                warn!(?transport, %error, "transport failed to start; trying the next one");
                errors.push(format!("{}: {}", transport.name(), error.message()));
            }
        }
    }
}

/// Where the token of the transport's requests comes from: a redirect's
/// token replaces the provider, as in the official clients.
fn token_source(config: &Config, negotiated: &Negotiated) -> TokenSource {
    match (&negotiated.redirect_token, &config.access_token) {
        (Some(token), _) => TokenSource::Fixed(token.clone()),
        (None, Some(provider)) => TokenSource::Provider(provider.clone()),
        (None, None) => TokenSource::None,
    }
}

fn websocket_target<'a>(
    config: &'a Config,
    hub: &'a HubUrl,
    id: Option<&'a str>,
    token: Option<&'a str>,
) -> WebSocketTarget<'a> {
    WebSocketTarget {
        net: &config.net,
        hub,
        id,
        token,
        headers: &config.headers,
        max_message_size: config.max_message_size,
        timeout: config.http_timeout,
        format: config.protocol.transfer_format(),
    }
}

/// Opens `transport` for a negotiated connection.
async fn open_one(
    config: &Config,
    negotiated: &Negotiated,
    transport: TransportType,
) -> Result<(FrameSink, FrameSource), HubError> {
    let id = negotiated.connection_token.as_deref().unwrap_or_default();
    let tokens = token_source(config, negotiated);
    match transport {
        TransportType::WebSockets => {
            // The token is fetched again for the transport, as the
            // official clients do.
            let token = tokens.token().await;
            debug!("opening a WebSocket");
            websocket::open(websocket_target(
                config,
                &negotiated.url,
                Some(id),
                token.as_deref(),
            ))
            .await
        }
        TransportType::ServerSentEvents => {
            debug!("opening a Server-Sent Events stream");
            sse::open(http_target(config, negotiated, tokens)).await
        }
        TransportType::LongPolling => {
            debug!("starting Long Polling");
            long_polling::open(http_target(config, negotiated, tokens)).await
        }
    }
}

fn http_target(config: &Config, negotiated: &Negotiated, token: TokenSource) -> HttpTarget {
    let id = negotiated.connection_token.as_deref().unwrap_or_default();
    HttpTarget {
        net: config.net.clone(),
        url: negotiated.url.transport_url(Some(id)),
        host: negotiated.url.host().to_owned(),
        token,
        headers: config.headers.clone(),
        timeout: config.http_timeout,
        format: config.protocol.transfer_format(),
    }
}

/// Opens a new WebSocket to the same connection, for stateful reconnect.
fn reopen_websocket(config: &Config, negotiated: &Negotiated) -> Reopen {
    let config = config.clone();
    let url = negotiated.url.clone();
    let id = negotiated.connection_token.clone().unwrap_or_default();
    let tokens = token_source(&config, negotiated);
    Box::new(move || {
        let config = config.clone();
        let url = url.clone();
        let id = id.clone();
        let tokens = tokens.clone();
        Box::pin(async move {
            let token = tokens.token().await;
            websocket::open(websocket_target(&config, &url, Some(&id), token.as_deref())).await
        })
    })
}
