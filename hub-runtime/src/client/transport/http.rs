//! What the HTTP transports (Server-Sent Events, Long Polling) share: the
//! requests they make and the halves they turn into frames.
//!
//! Each outgoing data frame becomes a `POST {url}?id=<token>`, and
//! [`Frame::Close`] stops the receiving half (and, for Long Polling,
//! sends `DELETE`). The receiving half is fed by the transport's own task
//! through a channel.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method, StatusCode};
use tokio::sync::mpsc;
use url::Url;

use super::frame::{Frame, FrameSink, FrameSource, transport_error};
use super::negotiate::USER_AGENT_VALUE;
use crate::HubError;
use crate::client::net::{Net, request_error};
use crate::client::url::append_pair;
use crate::protocol::TransferFormat;

/// The largest poll response or SSE event accepted.
pub(super) const MAX_RECEIVE: usize = 64 * 1024 * 1024;

/// Where the bearer token of each request comes from.
#[derive(Clone)]
pub(crate) enum TokenSource {
    /// No token.
    None,
    /// A negotiate redirect's token, for the rest of this connection.
    Fixed(String),
    /// The user's provider, asked before every request.
    Provider(crate::client::net::AccessTokenProvider),
}

impl TokenSource {
    /// The token for the next request.
    pub(crate) async fn token(&self) -> Option<String> {
        match self {
            TokenSource::None => None,
            TokenSource::Fixed(token) => Some(token.clone()),
            TokenSource::Provider(provider) => provider().await,
        }
    }
}

/// Where and how an HTTP transport sends its requests.
#[derive(Clone)]
pub(super) struct HttpTarget {
    pub(super) net: Net,
    /// `{hub url}&id=<connection token>`
    pub(super) url: Url,
    pub(super) host: String,
    pub(super) token: TokenSource,
    pub(super) headers: HeaderMap,
    pub(super) timeout: Duration,
    pub(super) format: TransferFormat,
}

impl HttpTarget {
    /// Sends one request on the pooled client; returns the response with
    /// its body still streaming. `query` is appended to the URL.
    pub(super) async fn send(
        &self,
        method: Method,
        query: &[(&str, &str)],
        accept: Option<&'static str>,
        body: Bytes,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, HubError> {
        let mut url = self.url.clone();
        for (key, value) in query {
            append_pair(&mut url, key, value);
        }
        let mut request = self
            .net
            .http
            .request(method, url)
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header("X-Requested-With", "XMLHttpRequest")
            .headers(self.headers.clone());
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        if !body.is_empty() {
            let content_type = match self.format {
                TransferFormat::Text => "text/plain;charset=UTF-8",
                TransferFormat::Binary => "application/octet-stream",
            };
            request = request.header(CONTENT_TYPE, content_type).body(body);
        }
        if let Some(token) = self.token.token().await {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request
            .send()
            .await
            .map_err(|e| request_error("HTTP request failed", &self.host, &e))
    }

    /// A request whose whole body is read (at most [`MAX_RECEIVE`]
    /// bytes); `timeout` bounds all of it.
    pub(super) async fn exchange(
        &self,
        method: Method,
        query: &[(&str, &str)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), HubError> {
        let mut response = self.send(method, query, None, body, Some(timeout)).await?;
        let status = response.status();
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| request_error("HTTP response failed", &self.host, &e))?
        {
            if body.len() + chunk.len() > MAX_RECEIVE {
                return Err(transport_error(
                    "HTTP response failed: the body is too large",
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body.freeze()))
    }
}

/// The sending half of an HTTP transport. A Close frame stops the
/// receiving half and, when `delete_on_close` (Long Polling), sends DELETE.
pub(super) fn post_sink(
    target: HttpTarget,
    stop: mpsc::Sender<()>,
    delete_on_close: bool,
) -> FrameSink {
    Box::pin(futures_util::sink::unfold(
        (target, stop),
        move |(target, stop), frame: Frame| async move {
            let body = match frame {
                Frame::Data(body) => body,
                Frame::Close(_) => {
                    let _ = stop.try_send(());
                    if delete_on_close {
                        // The server answers 202; a 404 (already gone) is fine.
                        let _ = target
                            .exchange(Method::DELETE, &[], Bytes::new(), target.timeout)
                            .await;
                    }
                    return Ok((target, stop));
                }
            };
            let (status, _) = target
                .exchange(Method::POST, &[], body, target.timeout)
                .await?;
            if !status.is_success() {
                return Err(transport_error(format!(
                    "POST failed with status code {status}"
                )));
            }
            Ok((target, stop))
        },
    ))
}

/// The receiving half of an HTTP transport, fed by its task.
pub(super) fn channel_source(mut receiver: mpsc::Receiver<Result<Frame, HubError>>) -> FrameSource {
    Box::pin(futures_util::stream::poll_fn(move |context| {
        receiver.poll_recv(context)
    }))
}
