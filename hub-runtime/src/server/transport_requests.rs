//! The transport requests after negotiate: Server-Sent Events streams,
//! Long Polling polls, POSTed client frames, DELETE, and the live-connection
//! table that binds each connection token to one transport.
//!
//! A token is taken from the negotiated table by the first transport
//! request and moves into [`LiveConnections`], where it stays until the
//! session ends. Later requests with that token must use the same
//! transport (`400 Cannot change transports mid-connection`), must name the
//! same user as the first one (`403`), and cannot open a second stream
//! (`409`), so a token seen by someone else cannot take the connection
//! over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tokio::sync::mpsc;
use tracing::Instrument as _;

use super::negotiated::{negotiated_user_matches, queue_early_post, random_id, take_negotiated};
use super::responses::{text, unauthorized};
use super::users::Unauthorized;
use super::{Negotiated, Shared};
use crate::authorization::AuthorizationRequest;
use crate::hub::ConnectionContext;
use crate::server::connection::{CloseReason, Dispatcher, session};
use crate::server::transport::long_polling::Polls;
use crate::server::transport::websocket::{WebSocketSink, WebSocketSource};
use crate::server::transport::{FrameSink, FrameSource, PostSender, post_channel, sse};
use crate::targets::ConnectionId;
use crate::telemetry::hub_metrics::{ConnectionStatus, TransportLabel};
use crate::{Hub, Identity};

/// The transport a live connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TransportKind {
    WebSockets,
    ServerSentEvents,
    LongPolling,
}

/// A new WebSocket for a stateful-reconnect connection.
pub(crate) type ResumeSocket = (WebSocketSource, WebSocketSink);

/// One connection whose transport request has come.
#[derive(Clone)]
pub(super) struct Live {
    kind: TransportKind,
    user: Option<Arc<str>>,
    /// Where POST bodies go (SSE, Long Polling).
    input: Option<PostSender>,
    /// The poll state (Long Polling).
    polls: Option<Arc<Polls>>,
    /// Where a resuming WebSocket goes (stateful reconnect).
    resume: Option<mpsc::Sender<ResumeSocket>>,
}

/// The live connections by token.
#[derive(Default)]
pub(super) struct LiveConnections(Mutex<HashMap<String, Live>>);

impl LiveConnections {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // A map of plain entries stays consistent whatever panicked.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, token: &str) -> Option<Live> {
        self.lock().get(token).cloned()
    }
}

/// Removes a live connection when its session ends.
pub(super) struct LiveGuard<H: Hub> {
    shared: Arc<Shared<H>>,
    token: Option<String>,
}

impl<H: Hub> Drop for LiveGuard<H> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            self.shared.live.lock().remove(&token);
        }
    }
}

/// Registers a live connection for `token` (none for a WebSocket that
/// skipped negotiate).
pub(super) fn register<H: Hub>(
    shared: &Arc<Shared<H>>,
    token: Option<String>,
    kind: TransportKind,
    user: Option<Arc<str>>,
    input: Option<PostSender>,
    polls: Option<Arc<Polls>>,
    resume: Option<mpsc::Sender<ResumeSocket>>,
) -> LiveGuard<H> {
    if let Some(token) = &token {
        shared.live.lock().insert(
            token.clone(),
            Live {
                kind,
                user,
                input,
                polls,
                resume,
            },
        );
    }
    LiveGuard {
        shared: shared.clone(),
        token,
    }
}

impl TransportKind {
    fn label(self) -> TransportLabel {
        match self {
            TransportKind::WebSockets => TransportLabel::WebSockets,
            TransportKind::ServerSentEvents => TransportLabel::ServerSentEvents,
            TransportKind::LongPolling => TransportLabel::LongPolling,
        }
    }
}

/// Runs a session to its end, counted for shutdown and in the metrics,
/// inside its connection span, its live entry removed afterwards.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_session<H: Hub, Src: FrameSource, Snk: FrameSink>(
    shared: Arc<Shared<H>>,
    source: Src,
    sink: Snk,
    context: Arc<ConnectionContext>,
    resume: Option<session::Resume<Src, Snk>>,
    live: LiveGuard<H>,
    kind: TransportKind,
    hub_path: String,
) {
    let _session = SessionGuard::new(&shared.sessions);
    let metrics = shared.metrics.get(&hub_path, || {
        H::METHODS.iter().map(|method| method.name).collect()
    });
    let mut connection_metrics = metrics.connection_started(kind.label());
    let span = tracing::info_span!(
        "signalr.connection",
        rpc.system = "signalr",
        rpc.service = shared.service,
        signalr.hub.path = %hub_path,
        signalr.connection.id = %context.connection_id(),
        signalr.transport = kind.label().as_str(),
        signalr.protocol = tracing::field::Empty,
        enduser.id = context.identity().user_id(),
        signalr.connection.status = tracing::field::Empty,
    );
    let shutdown = shared.shutdown.subscribe();
    let config = shared.session.clone();
    let dispatcher: Arc<dyn Dispatcher> = shared;
    // Pinned where it is built and instrumented through the pin: moved
    // into `Instrumented` by value, the session's future could take a
    // second slot in this one.
    let run = std::pin::pin!(session::run(
        source, sink, context, config, dispatcher, shutdown, resume, metrics,
    ));
    let reason = run.instrument(span.clone()).await;
    let status = match reason {
        Some(CloseReason::ClientTimeout) => ConnectionStatus::Timeout,
        Some(CloseReason::TransportError(error))
            if error == session::DISCONNECT_TIMEOUT
                || error == crate::server::transport::long_polling::STOPPED_POLLING =>
        {
            ConnectionStatus::Timeout
        }
        Some(CloseReason::Shutdown) => ConnectionStatus::AppShutdown,
        _ => ConnectionStatus::NormalClosure,
    };
    span.record("signalr.connection.status", status.as_str());
    connection_metrics.set_status(status);
    drop(live);
}

/// What the live table says about a request for `token` over `kind`.
pub(super) enum Lookup {
    /// Not live: the token may still be negotiated.
    NotLive,
    /// Live over `kind`, same user.
    Same(Live),
    /// Refused with this response.
    Refused(Response),
}

/// Looks `token` up for a request of `user` over `kind`.
pub(super) fn lookup<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    kind: TransportKind,
    user: &Option<Arc<str>>,
) -> Lookup {
    let Some(live) = shared.live.get(token) else {
        return Lookup::NotLive;
    };
    if live.kind != kind {
        return Lookup::Refused(text(
            StatusCode::BAD_REQUEST,
            "Cannot change transports mid-connection",
        ));
    }
    if live.user != *user {
        return Lookup::Refused(text(StatusCode::FORBIDDEN, "Forbidden"));
    }
    Lookup::Same(live)
}

impl Live {
    /// The channel a resuming WebSocket is handed to, if the connection
    /// accepts one.
    pub(super) fn resume(&self) -> Option<&mpsc::Sender<ResumeSocket>> {
        self.resume.as_ref().filter(|sender| !sender.is_closed())
    }
}

fn no_connection() -> Response {
    text(StatusCode::NOT_FOUND, "No Connection with that ID")
}

fn id_required() -> Response {
    text(StatusCode::BAD_REQUEST, "Connection ID required")
}

fn shutting_down() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is shutting down.",
    )
}

/// The token an HTTP transport request names and the identity it comes
/// from, or the answer that refuses it (no token: 400; refused identity:
/// 401), boxed: a refusal is the rare path.
async fn token_and_identity<H: Hub>(
    shared: &Shared<H>,
    parts: &Parts,
    id: Option<String>,
) -> Result<(String, Identity), Box<Response>> {
    let token = id.ok_or_else(|| Box::new(id_required()))?;
    let identity = identity_of(shared, parts)
        .await
        .map_err(|_| Box::new(unauthorized()))?;
    Ok((token, identity))
}

/// [`token_and_identity`], with the identity's user id.
async fn token_and_user<H: Hub>(
    shared: &Shared<H>,
    parts: &Parts,
    id: Option<String>,
) -> Result<(String, Option<Arc<str>>), Box<Response>> {
    let (token, identity) = token_and_identity(shared, parts, id).await?;
    Ok((token, identity.user_id_arc().cloned()))
}

/// A negotiated connection that an HTTP transport (SSE, Long Polling)
/// starts.
struct HttpSession {
    token: String,
    kind: TransportKind,
    connection_id: String,
    identity: Identity,
    /// The transport's first request: the connection's request.
    request: Parts,
    /// Where its POST bodies go.
    input: PostSender,
    polls: Option<Arc<Polls>>,
    /// The hub's path: the `hub` label of its metrics.
    hub_path: String,
}

/// Makes the connection live under its token and runs its session.
fn spawn_http_session<H: Hub, Src: FrameSource, Snk: FrameSink>(
    shared: Arc<Shared<H>>,
    session: HttpSession,
    source: Src,
    sink: Snk,
) {
    let live = register(
        &shared,
        Some(session.token),
        session.kind,
        session.identity.user_id_arc().cloned(),
        Some(session.input),
        session.polls,
        None,
    );
    let context = Arc::new(ConnectionContext::new(
        ConnectionId::from(session.connection_id),
        session.identity,
        Some(owned_head(session.request)),
    ));
    tokio::spawn(run_session(
        shared,
        source,
        sink,
        context,
        None,
        live,
        session.kind,
        session.hub_path,
    ));
}

/// Admits the first request of an HTTP transport for `token`: refused
/// while the server shuts down or is at its connection limit, otherwise
/// the negotiated connection is taken (404/403 as `take_negotiated` says).
#[allow(clippy::result_large_err)]
fn admit<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    user: &Option<Arc<str>>,
) -> Result<Negotiated, Box<Response>> {
    if *shared.shutdown.borrow() {
        return Err(Box::new(shutting_down()));
    }
    if let Some(refused) = super::limits::refuse_new_connection(shared) {
        return Err(Box::new(refused));
    }
    take_negotiated(shared, token, user)
}

/// `GET {base}?id=…` with `Accept: text/event-stream`.
pub(super) async fn server_sent_events<H: Hub>(
    shared: Arc<Shared<H>>,
    parts: &Parts,
    id: Option<String>,
) -> Response {
    let (token, identity) = match token_and_identity(&shared, parts, id).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let user = identity.user_id_arc().cloned();
    match lookup(&shared, &token, TransportKind::ServerSentEvents, &user) {
        Lookup::NotLive => {}
        Lookup::Same(_) => return text(StatusCode::CONFLICT, "Conflict"),
        Lookup::Refused(response) => return response,
    }
    let mut negotiated = match admit(&shared, &token, &user) {
        Ok(negotiated) => negotiated,
        Err(refused) => return *refused,
    };
    let (input_sender, input) = negotiated.early_input.take().unwrap_or_else(post_channel);
    let (source, sink, response) = sse::open(input, shared.options.transport_max_buffer_size);
    spawn_http_session(
        shared,
        HttpSession {
            token,
            kind: TransportKind::ServerSentEvents,
            connection_id: negotiated.connection_id,
            identity,
            request: parts.clone(),
            input: input_sender,
            polls: None,
            hub_path: hub_path(parts),
        },
        source,
        sink,
    );
    response
}

/// A Long Polling `GET {base}?id=…`: the first one starts the connection
/// and returns at once; later ones wait for data.
pub(super) async fn long_poll<H: Hub>(
    shared: Arc<Shared<H>>,
    parts: &Parts,
    id: Option<String>,
) -> Response {
    let (token, identity) = match token_and_identity(&shared, parts, id).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let user = identity.user_id_arc().cloned();
    match lookup(&shared, &token, TransportKind::LongPolling, &user) {
        Lookup::NotLive => {}
        Lookup::Same(live) => {
            return match live.polls {
                Some(polls) => Polls::response(polls.poll().await),
                None => no_connection(),
            };
        }
        Lookup::Refused(response) => return response,
    }
    let mut negotiated = match admit(&shared, &token, &user) {
        Ok(negotiated) => negotiated,
        Err(refused) => return *refused,
    };
    let polls = Polls::new(
        shared.options.long_polling_poll_timeout,
        shared.options.disconnect_timeout,
        shared.options.transport_max_buffer_size,
    );
    let (input_sender, input) = negotiated.early_input.take().unwrap_or_else(post_channel);
    let (source, sink) = polls.halves(input);
    spawn_http_session(
        shared,
        HttpSession {
            token,
            kind: TransportKind::LongPolling,
            connection_id: negotiated.connection_id,
            identity,
            request: parts.clone(),
            input: input_sender,
            polls: Some(polls),
            hub_path: hub_path(parts),
        },
        source,
        sink,
    );
    Polls::response(crate::server::transport::long_polling::PollOutcome::Data(
        Bytes::new(),
    ))
}

/// `POST {base}?id=…`: client frames for an SSE or Long Polling connection.
pub(super) async fn post<H: Hub>(
    shared: Arc<Shared<H>>,
    parts: &Parts,
    body: Body,
    id: Option<String>,
) -> Response {
    let (token, user) = match token_and_user(&shared, parts, id).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let live = shared.live.get(&token);
    if live.is_none() && !negotiated_user_matches(&shared, &token, &user) {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    if let Some(live) = &live {
        if live.user != user {
            return text(StatusCode::FORBIDDEN, "Forbidden");
        }
        if live.input.is_none() {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST requests are not allowed for WebSocket connections.",
            );
        }
    }
    // Several records may come in one body; a body far beyond the record
    // limit is refused before it is buffered.
    let limit = crate::server::transport::long_polling::post_body_limit(
        shared.options.maximum_receive_message_size,
    );
    // A body trickled in byte by byte (slowloris) must not hold the
    // request for ever: it has the client timeout to arrive whole.
    let read = tokio::time::timeout(
        shared.options.client_timeout_interval,
        axum::body::to_bytes(body, limit),
    );
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return text(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "Request Timeout"),
    };
    match live.and_then(|live| live.input) {
        Some(input) => {
            if input.send(bytes).await.is_err() {
                return no_connection();
            }
        }
        // Negotiated, transport not started yet: kept for the session.
        None => match queue_early_post(&shared, &token, bytes) {
            None => return no_connection(),
            Some(false) => {
                return text(
                    StatusCode::CONFLICT,
                    "Too many requests before the transport started",
                );
            }
            Some(true) => {}
        },
    }
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// `DELETE {base}?id=…`: the client ends its Long Polling connection.
pub(super) async fn delete<H: Hub>(
    shared: &Shared<H>,
    parts: &Parts,
    id: Option<String>,
) -> Response {
    let (token, user) = match token_and_user(shared, parts, id).await {
        Ok(found) => found,
        Err(response) => return *response,
    };
    let Some(live) = shared.live.get(&token) else {
        return no_connection();
    };
    if live.user != user {
        return text(StatusCode::FORBIDDEN, "Forbidden");
    }
    match live.polls {
        Some(polls) => {
            polls.delete();
            text(StatusCode::ACCEPTED, "")
        }
        None => text(
            StatusCode::BAD_REQUEST,
            "Cannot terminate this connection using the DELETE endpoint.",
        ),
    }
}

/// A fresh connection id for a WebSocket that skipped negotiate.
pub(super) fn fresh_id() -> Option<String> {
    random_id()
}

/// The identity behind a request, from the server's authenticator, if it
/// passes the hub's `#[authorize]`; a refusal is answered with 401.
/// The path the hub is served at (`/hubs/chat`), from a transport request
/// to it: the `hub` label of its metrics.
pub(super) fn hub_path(parts: &Parts) -> String {
    let path = parts
        .extensions
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| parts.uri.path(), |original| original.path());
    match path.trim_end_matches('/') {
        "" => "/".to_owned(),
        trimmed => trimmed.to_owned(),
    }
}

pub(super) async fn identity_of<H: Hub>(
    shared: &Shared<H>,
    parts: &Parts,
) -> Result<Identity, Unauthorized> {
    let identity = shared.authenticator.authenticate_boxed(parts).await?;
    if let Some(authorization) = H::AUTHORIZATION {
        let request = AuthorizationRequest {
            identity: &identity,
            request: Some(parts),
            method: None,
            arguments: None,
        };
        if !shared.policies.allows(authorization, &request).await {
            return Err(Unauthorized);
        }
    }
    Ok(identity)
}

/// Counts a running session for [`super::HubServer::shutdown`].
pub(super) struct SessionGuard(tokio::sync::watch::Sender<usize>);

impl SessionGuard {
    pub(super) fn new(sessions: &tokio::sync::watch::Sender<usize>) -> Self {
        sessions.send_modify(|count| *count += 1);
        SessionGuard(sessions.clone())
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}

/// A copy of a request head that owns its bytes.
///
/// hyper parses a request head without copying: the URI and every header
/// value are slices of the HTTP connection's read buffer (8 to 16 KiB),
/// which stays allocated as long as any of them lives. A connection keeps
/// its opening request for its whole life
/// ([`ConnectionContext::request`](crate::hub::ConnectionContext::request)),
/// on every transport (the WebSocket upgrade, the SSE stream's or the first
/// Long Polling GET), so it keeps a copy instead: a few hundred bytes, not
/// the buffer (under heaptrack, 16.6 kB per idle WebSocket connection was
/// hyper's read buffer; a Long Polling connection's later polls come on
/// other requests, so the first one's buffer was pinned by nothing else).
pub(crate) fn owned_head(mut parts: Parts) -> Parts {
    parts.uri = owned_uri(&parts.uri);
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        // Standard names are static; a custom one is copied.
        let name = header::HeaderName::from_bytes(name.as_str().as_bytes())
            .unwrap_or_else(|_| name.clone());
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        headers.append(name, copy);
    }
    parts.headers = headers;
    // axum's nesting keeps the URI as received, a slice of the buffer too.
    if let Some(original) = parts.extensions.get_mut::<axum::extract::OriginalUri>() {
        original.0 = owned_uri(&original.0);
    }
    parts
}

/// A copy of `uri` that owns its bytes.
fn owned_uri(uri: &http::Uri) -> http::Uri {
    http::Uri::from_maybe_shared(Bytes::copy_from_slice(uri.to_string().as_bytes()))
        .unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owned_head_keeps_the_request_but_not_the_buffer_it_was_parsed_from() {
        let buffer = Bytes::from_static(b"/hub?id=abc user-agent-value x-custom-value");
        let (mut parts, ()) = http::Request::builder()
            .uri(http::Uri::from_maybe_shared(buffer.slice(0..11)).expect("a URI"))
            .header(
                header::USER_AGENT,
                HeaderValue::from_maybe_shared(buffer.slice(12..28)).expect("a value"),
            )
            .header(
                "x-custom",
                HeaderValue::from_maybe_shared(buffer.slice(29..)).expect("a value"),
            )
            .body(())
            .expect("a request")
            .into_parts();
        parts
            .extensions
            .insert(axum::extract::OriginalUri(parts.uri.clone()));
        let owned = owned_head(parts);
        assert_eq!(owned.uri, "/hub?id=abc", "the URI is kept");
        assert_eq!(owned.headers[header::USER_AGENT], "user-agent-value");
        assert_eq!(owned.headers["x-custom"], "x-custom-value");
        let range = buffer.as_ptr_range();
        for value in owned.headers.values() {
            assert!(
                !range.contains(&value.as_bytes().as_ptr()),
                "a header value of the owned head is not a slice of the read buffer"
            );
        }
        assert!(
            !range.contains(&owned.uri.path().as_ptr()),
            "the owned URI is not a slice of the read buffer"
        );
        let original = owned
            .extensions
            .get::<axum::extract::OriginalUri>()
            .expect("the original URI is kept");
        assert!(
            !range.contains(&original.0.path().as_ptr()),
            "the original URI is not a slice of the read buffer"
        );
    }
}
