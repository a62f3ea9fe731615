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

use super::users::{Unauthorized, query_parameter};
use super::{Negotiated, Shared};
use crate::Hub;
use crate::clients::ConnectionId;
use crate::connection::{Dispatcher, session};
use crate::protocol::negotiate::{
    AvailableTransport, NegotiateConnection, NegotiateRequest, NegotiateResponse, TransportType,
};
use crate::transport::websocket;

/// The transports this server serves, in the order clients should try them.
const TRANSPORTS: [TransportType; 1] = [TransportType::WebSockets];

pub(super) fn router<H: Hub, S>(shared: Arc<Shared<H>>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/negotiate", any(negotiate::<H>))
        .route("/", any(connect::<H>))
        .with_state(shared)
}

fn text(status: StatusCode, body: &'static str) -> Response {
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
fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

fn user_of<H: Hub>(shared: &Shared<H>, parts: &Parts) -> Result<Option<Arc<str>>, Unauthorized> {
    shared.users.user_id(parts).map(|user| user.map(Arc::from))
}

fn unauthorized() -> Response {
    text(StatusCode::UNAUTHORIZED, "Unauthorized")
}

async fn negotiate<H: Hub>(State(shared): State<Arc<Shared<H>>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    if parts.method != Method::POST {
        return method_not_allowed("POST");
    }
    if *shared.shutdown.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
        );
    }
    if user_of(&shared, &parts).is_err() {
        return unauthorized();
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
            remember(&shared, token.clone(), connection_id.clone());
            NegotiateResponse::Connection(NegotiateConnection {
                negotiate_version: version,
                connection_id,
                connection_token: (version >= 1).then_some(token),
                available_transports: TRANSPORTS
                    .into_iter()
                    .map(AvailableTransport::new)
                    .collect(),
                use_stateful_reconnect: false,
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
/// disconnect timeout.
fn remember<H: Hub>(shared: &Shared<H>, token: String, connection_id: String) {
    let now = Instant::now();
    let limit = shared.options.disconnect_timeout;
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    negotiated.retain(|_, entry| now.duration_since(entry.created) < limit);
    negotiated.insert(
        token,
        Negotiated {
            connection_id,
            created: now,
        },
    );
}

/// Takes the negotiated connection of `token`, if it exists and is fresh.
fn take_negotiated<H: Hub>(shared: &Shared<H>, token: &str) -> Option<String> {
    let entry = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(token)?;
    (entry.created.elapsed() < shared.options.disconnect_timeout).then_some(entry.connection_id)
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
    let (mut parts, _body): (Parts, Body) = request.into_parts();
    let id = parts
        .uri
        .query()
        .and_then(|query| query_parameter(query, "id"))
        .filter(|id| !id.is_empty());
    match parts.method {
        Method::GET => {}
        Method::POST | Method::DELETE => {
            // Only WebSockets exist so far: no POST sends, no DELETE.
            return match id {
                None => text(StatusCode::BAD_REQUEST, "Connection ID required"),
                Some(_) => text(StatusCode::NOT_FOUND, "No Connection with that ID"),
            };
        }
        _ => return method_not_allowed("GET, POST, DELETE"),
    }
    if accepts_event_stream(&parts) {
        return text(
            StatusCode::NOT_FOUND,
            "ServerSentEvents transport not supported by this end point type",
        );
    }
    if !is_websocket_upgrade(&parts) {
        return text(
            StatusCode::NOT_FOUND,
            "LongPolling transport not supported by this end point type",
        );
    }
    if *shared.shutdown.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The server is shutting down.",
        );
    }
    let user = match user_of(&shared, &parts) {
        Ok(user) => user,
        Err(Unauthorized) => return unauthorized(),
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let connection_id = match id {
        Some(token) => match take_negotiated(&shared, &token) {
            Some(connection_id) => connection_id,
            None => return text(StatusCode::NOT_FOUND, "No Connection with that ID"),
        },
        None => match random_id() {
            Some(id) => id,
            None => return text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        },
    };
    let connection_id = ConnectionId::from(connection_id);
    websocket::configure(upgrade, shared.options.maximum_receive_message_size).on_upgrade(
        move |socket| async move {
            let (source, sink) = websocket::split(socket);
            let _session = SessionGuard::new(&shared.sessions);
            let shutdown = shared.shutdown.subscribe();
            let config = shared.session.clone();
            let dispatcher: Arc<dyn Dispatcher> = shared;
            session::run(
                source,
                sink,
                connection_id,
                user,
                config,
                dispatcher,
                shutdown,
            )
            .await;
        },
    )
}

/// Counts a running session for [`super::HubServer::shutdown`].
struct SessionGuard(tokio::sync::watch::Sender<usize>);

impl SessionGuard {
    fn new(sessions: &tokio::sync::watch::Sender<usize>) -> Self {
        sessions.send_modify(|count| *count += 1);
        SessionGuard(sessions.clone())
    }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}
