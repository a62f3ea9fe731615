//! The HTTP side: routes, negotiate, the transport request.

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};

use super::transports::{self, Lookup, TransportKind};
use super::users::{Unauthorized, query_parameter};
use super::{Negotiated, Shared};
use crate::authorization::AuthorizationRequest;
use crate::clients::ConnectionId;
use crate::connection::session::Resume;
use crate::hub::ConnectionContext;
use crate::protocol::negotiate::{
    AvailableTransport, NegotiateConnection, NegotiateRequest, NegotiateResponse, TransportType,
};
use crate::transport::websocket;
use crate::{Hub, Identity};

/// The transports `shared` serves, in the order clients should try them.
fn transports<H: Hub>(shared: &Shared<H>) -> Vec<AvailableTransport> {
    let enabled = shared.options.transports;
    [
        (enabled.web_sockets, TransportType::WebSockets),
        (enabled.server_sent_events, TransportType::ServerSentEvents),
        (enabled.long_polling, TransportType::LongPolling),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, transport)| AvailableTransport::new(transport))
    .collect()
}

pub(super) fn router<H: Hub, S>(shared: Arc<Shared<H>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/negotiate", any(negotiate::<H>))
        .route("/", any(connect::<H>))
        .with_state(shared)
}

pub(super) fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        body,
    )
        .into_response()
}

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// 16 random bytes from the OS, base64url without padding (22 URL-safe
/// characters), as ASP.NET Core makes connection ids and tokens.
pub(super) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// The identity behind a request, from the server's authenticator, if it
/// passes the hub's `#[authorize]`; a refusal is answered with 401.
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

pub(super) fn unauthorized() -> Response {
    text(StatusCode::UNAUTHORIZED, "Unauthorized")
}

/// The answer to a request from a browser origin not in
/// [`super::HubOptions::allowed_origins`].
fn origin_refused<H: Hub>(shared: &Shared<H>, parts: &Parts) -> Option<Response> {
    if super::origins::allowed(shared.options.allowed_origins.as_deref(), parts) {
        return None;
    }
    tracing::debug!(origin = ?parts.headers.get(header::ORIGIN), "request from an origin not allowed; refused");
    Some(text(StatusCode::FORBIDDEN, "Origin not allowed"))
}

async fn negotiate<H: Hub>(State(shared): State<Arc<Shared<H>>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    if let Some(refused) = origin_refused(&shared, &parts) {
        return refused;
    }
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    if *shared.shutdown.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
        );
    }
    let Ok(identity) = identity_of(&shared, &parts).await else {
        return unauthorized();
    };
    let user = identity.user_id_arc().cloned();
    if let Some(refused) = super::limits::refuse_new_connection(&shared) {
        return refused;
    }
    let body = match NegotiateRequest::from_query(parts.uri.query().unwrap_or_default()) {
        Err(error) => error.response(),
        Ok(request) => {
            let (Some(connection_id), Some(token)) = (random_id(), random_id()) else {
                tracing::error!("the OS random number generator failed");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            };
            let version = request.negotiate_version;
            let token = if version >= 1 {
                token
            } else {
                connection_id.clone()
            };
            let stateful =
                shared.options.allow_stateful_reconnects && request.use_stateful_reconnect;
            if let Err(refused) = remember(
                &shared,
                token.clone(),
                Negotiated {
                    connection_id: connection_id.clone(),
                    created: Instant::now(),
                    stateful,
                    user,
                    early_input: None,
                },
            ) {
                return *refused;
            }
            NegotiateResponse::Connection(NegotiateConnection {
                negotiate_version: version,
                connection_id,
                connection_token: (version >= 1).then_some(token),
                available_transports: transports(&shared),
                use_stateful_reconnect: stateful,
            })
        }
    };
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_vec(),
    )
        .into_response()
}

/// Stores a negotiated connection, forgetting those older than the
/// disconnect timeout; refused when too many wait already.
/// (The refusal is boxed: it is the rare path; clippy `result_large_err`.)
fn remember<H: Hub>(
    shared: &Shared<H>,
    token: String,
    entry: Negotiated,
) -> Result<(), Box<Response>> {
    let now = Instant::now();
    let limit = shared.options.disconnect_timeout;
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    negotiated.retain(|_, entry| now.duration_since(entry.created) < limit);
    if let Some(refused) = super::limits::refuse_negotiate(shared, negotiated.len()) {
        return Err(Box::new(refused));
    }
    negotiated.insert(token, entry);
    Ok(())
}

/// Takes the negotiated connection of `token` for a transport request of
/// `user`: 404 when it does not exist or is stale, 403 (and the token
/// stays negotiated for its owner) when `user` is not the user who
/// negotiated it — a token seen by someone else does not let them in.
#[allow(clippy::result_large_err)]
pub(super) fn take_negotiated<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    user: &Option<Arc<str>>,
) -> Result<Negotiated, Box<Response>> {
    let not_found = || Box::new(text(StatusCode::NOT_FOUND, "No Connection with that ID"));
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(entry) = negotiated.get(token) else {
        return Err(not_found());
    };
    if entry.created.elapsed() >= shared.options.disconnect_timeout {
        negotiated.remove(token);
        return Err(not_found());
    }
    if entry.user != *user {
        return Err(Box::new(text(StatusCode::FORBIDDEN, "Forbidden")));
    }
    negotiated.remove(token).ok_or_else(not_found)
}

/// Queues a POST body for a negotiated connection whose transport request
/// has not come yet. Returns `None` when `token` is not negotiated, and
/// `Some(false)` when too many bodies wait already. The caller has checked
/// the user with [`negotiated_user_matches`].
pub(super) fn queue_early_post<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    body: bytes::Bytes,
) -> Option<bool> {
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let entry = negotiated
        .get_mut(token)
        .filter(|entry| entry.created.elapsed() < shared.options.disconnect_timeout)?;
    let (sender, _) = entry
        .early_input
        .get_or_insert_with(crate::transport::post_channel);
    Some(sender.try_send(body).is_ok())
}

/// Whether a request of `user` may use the negotiated (not yet live)
/// token `token`: `true` when the token is not negotiated (the caller then
/// answers 404) or was negotiated by `user`.
pub(super) fn negotiated_user_matches<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    user: &Option<Arc<str>>,
) -> bool {
    shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(token)
        .is_none_or(|entry| entry.user == *user)
}

fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

fn accepts_event_stream(parts: &Parts) -> bool {
    parts
        .headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/event-stream"))
}

async fn connect<H: Hub>(State(shared): State<Arc<Shared<H>>>, request: Request) -> Response {
    let (mut parts, body): (Parts, Body) = request.into_parts();
    if let Some(refused) = origin_refused(&shared, &parts) {
        return refused;
    }
    let id = parts
        .uri
        .query()
        .and_then(|query| query_parameter(query, "id"))
        .filter(|id| !id.is_empty());
    match parts.method {
        Method::GET => {}
        Method::POST => return transports::post(shared, &parts, body, id).await,
        Method::DELETE => return transports::delete(&shared, &parts, id).await,
        _ => return method_not_allowed("GET, POST, DELETE"),
    }
    let enabled = shared.options.transports;
    if accepts_event_stream(&parts) {
        if !enabled.server_sent_events {
            return text(
                StatusCode::NOT_FOUND,
                "ServerSentEvents transport not supported by this end point type",
            );
        }
        return transports::server_sent_events(shared, &parts, id).await;
    }
    if !is_websocket_upgrade(&parts) {
        if !enabled.long_polling {
            return text(
                StatusCode::NOT_FOUND,
                "LongPolling transport not supported by this end point type",
            );
        }
        return transports::long_poll(shared, &parts, id).await;
    }
    if !enabled.web_sockets {
        return text(
            StatusCode::NOT_FOUND,
            "WebSockets transport not supported by this end point type",
        );
    }
    let identity = match identity_of(&shared, &parts).await {
        Ok(identity) => identity,
        Err(Unauthorized) => return unauthorized(),
    };
    let user = identity.user_id_arc().cloned();
    // A stateful-reconnect connection whose WebSocket dropped: hand the
    // new socket to the running session.
    let live = match &id {
        Some(token) => match transports::lookup(&shared, token, TransportKind::WebSockets, &user) {
            Lookup::NotLive => None,
            Lookup::Same(live) => Some(live),
            Lookup::Refused(response) => return response,
        },
        None => None,
    };
    if let Some(live) = live {
        let Some(resume) = live.resume().cloned() else {
            return text(StatusCode::NOT_FOUND, "No Connection with that ID");
        };
        let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(upgrade) => upgrade,
            Err(rejection) => return rejection.into_response(),
        };
        return websocket::configure(upgrade, shared.options.maximum_receive_message_size)
            .on_upgrade(move |socket| async move {
                // A closed channel means the session ended meanwhile: the
                // socket is dropped and the client sees it close.
                let _ = resume.send(websocket::split(socket)).await;
            });
    }
    if *shared.shutdown.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
        );
    }
    if let Some(refused) = super::limits::refuse_new_connection(&shared) {
        return refused;
    }
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let (connection_id, stateful) = match &id {
        Some(token) => match take_negotiated(&shared, token, &user) {
            Ok(negotiated) => (negotiated.connection_id, negotiated.stateful),
            Err(refused) => return *refused,
        },
        None => match transports::fresh_id() {
            Some(id) => (id, false),
            None => return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        },
    };
    let (resume_sender, resume) = if stateful {
        let (sender, sockets) = tokio::sync::mpsc::channel(1);
        (
            Some(sender),
            Some(Resume {
                sockets,
                buffer_limit: shared.options.stateful_reconnect_buffer_size,
                disconnect_timeout: shared.options.disconnect_timeout,
            }),
        )
    } else {
        (None, None)
    };
    let hub_path = hub_path(&parts);
    let live = transports::register(
        &shared,
        id,
        TransportKind::WebSockets,
        user.clone(),
        None,
        None,
        resume_sender,
    );
    let context = Arc::new(ConnectionContext::new(
        ConnectionId::from(connection_id),
        identity,
        Some(parts),
    ));
    websocket::configure(upgrade, shared.options.maximum_receive_message_size).on_upgrade(
        move |socket| async move {
            let (source, sink) = websocket::split(socket);
            transports::run_session(
                shared,
                source,
                sink,
                context,
                resume,
                live,
                TransportKind::WebSockets,
                hub_path,
            )
            .await;
        },
    )
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
