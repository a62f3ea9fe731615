//! The negotiate request: `POST {base}/negotiate?negotiateVersion=1`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH, USER_AGENT};
use http::{HeaderMap, StatusCode};

use crate::client::net::{Net, request_error};
use crate::client::url::HubUrl;
use crate::protocol::TransferFormat;
use crate::protocol::negotiate::{NegotiateResponse, TransportType};
use crate::{HubError, HubErrorKind};

/// The official clients follow at most this many negotiate redirects.
const MAX_REDIRECTS: usize = 100;

/// The largest negotiate response body read.
const MAX_BODY: usize = 1024 * 1024;

/// The `User-Agent` this client sends.
pub(crate) const USER_AGENT_VALUE: &str = concat!(
    "typed-hubs/",
    env!("CARGO_PKG_VERSION"),
    " (Rust; hub-runtime)"
);

/// What a negotiation settled on.
#[derive(Debug, Clone)]
pub(crate) struct Negotiated {
    /// The base URL after redirects.
    pub(crate) url: HubUrl,
    /// The public connection id.
    pub(crate) connection_id: Option<String>,
    /// The `id=` value of transport requests (the connection id under
    /// negotiate version 0).
    pub(crate) connection_token: Option<String>,
    /// A bearer token from a redirect, replacing the token provider.
    pub(crate) redirect_token: Option<String>,
    /// The transports the server offers for the requested transfer
    /// format, in its order.
    pub(crate) transports: Vec<TransportType>,
    /// The server turned stateful reconnect on.
    pub(crate) stateful_reconnect: bool,
}

fn negotiate_error(message: impl Into<String>) -> HubError {
    HubError::with_kind(HubErrorKind::Transport, message.into())
}

/// Negotiates with the server at `url`, following redirects, and checks that
/// it offers WebSockets with `transfer_format` (`Text` or `Binary`).
///
/// `token` is the bearer token for the first request (from the provider).
pub(crate) async fn negotiate(
    net: &Net,
    url: &HubUrl,
    mut token: Option<String>,
    headers: &HeaderMap,
    transfer_format: TransferFormat,
    timeout: Duration,
    stateful_reconnect: bool,
) -> Result<Negotiated, HubError> {
    let mut url = url.clone();
    let mut redirect_token = None;
    for _ in 0..MAX_REDIRECTS {
        let body = post(
            net,
            &url,
            token.as_deref(),
            headers,
            timeout,
            stateful_reconnect,
        )
        .await?;
        let connection = match NegotiateResponse::from_slice(&body) {
            Ok(NegotiateResponse::Connection(connection)) => connection,
            Ok(NegotiateResponse::Redirect(redirect)) => {
                url = HubUrl::parse(&redirect.url)?;
                if let Some(access_token) = redirect.access_token {
                    token = Some(access_token.clone());
                    redirect_token = Some(access_token);
                }
                continue;
            }
            Ok(NegotiateResponse::Error(error)) => {
                return Err(HubError::with_kind(HubErrorKind::Remote, error));
            }
            Err(error) => {
                return Err(negotiate_error(format!(
                    "Failed to complete negotiation with the server: {error}"
                )));
            }
        };
        connection
            .check_stateful_reconnect(stateful_reconnect)
            .map_err(|e| negotiate_error(e.to_string()))?;
        let transports: Vec<TransportType> = connection
            .available_transports
            .iter()
            .filter(|t| t.transfer_formats.contains(&transfer_format))
            .map(|t| t.transport)
            .collect();
        if transports.is_empty() {
            return Err(negotiate_error(format!(
                "Unable to connect to the server with any of the available transports: \
                 none carries the '{}' transfer format.",
                transfer_format.name()
            )));
        }
        let connection_token = connection.token().to_owned();
        return Ok(Negotiated {
            url,
            connection_id: Some(connection.connection_id),
            connection_token: Some(connection_token),
            redirect_token,
            transports,
            stateful_reconnect: connection.use_stateful_reconnect,
        });
    }
    Err(negotiate_error("Negotiate redirection limit exceeded."))
}

/// One `POST` with an empty body; returns the body of a 200 response.
async fn post(
    net: &Net,
    url: &HubUrl,
    token: Option<&str>,
    headers: &HeaderMap,
    timeout: Duration,
    stateful_reconnect: bool,
) -> Result<Bytes, HubError> {
    let failed = |e: &reqwest::Error| {
        request_error(
            "Failed to complete negotiation with the server",
            url.host(),
            e,
        )
    };
    let mut request = net
        .http
        .post(url.negotiate_url(stateful_reconnect))
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header("X-Requested-With", "XMLHttpRequest")
        .headers(headers.clone())
        // Some servers require a length on a POST (411 without one); hyper
        // leaves it out for an empty body.
        .header(CONTENT_LENGTH, "0")
        .timeout(timeout);
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut response = request.send().await.map_err(|e| failed(&e))?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Err(negotiate_error(format!(
            "Failed to complete negotiation with the server: {status}. \
             Either this is not a SignalR endpoint or there is a proxy blocking the connection."
        )));
    }
    if !status.is_success() {
        return Err(negotiate_error(format!(
            "Failed to complete negotiation with the server: {status}"
        )));
    }
    if status != StatusCode::OK {
        return Err(negotiate_error(format!(
            "Unexpected status code returned from negotiate '{}'",
            status.as_u16()
        )));
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(negotiate_error(
                "Failed to complete negotiation with the server: the response is too large",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
