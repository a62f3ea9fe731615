//! The HTTP side: routes, negotiate, the transport request.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};

use super::negotiated::{random_id_pair, remember, take_negotiated};
use super::responses::{text, unauthorized};
use super::transport_requests::{self, Lookup, TransportKind, hub_path, identity_of};
use super::users::{Unauthorized, query_parameter};
use super::{Negotiated, Shared};
use crate::Hub;
use crate::hub::ConnectionContext;
use crate::protocol::negotiate::{
    AvailableTransport, NegotiateConnection, NegotiateRequest, NegotiateResponse, TransportType,
};
use crate::server::connection::session::Resume;
use crate::server::transport::websocket;
use crate::targets::ConnectionId;

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

fn method_not_allowed(allow: &'static str) -> Response {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
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
            let Some((connection_id, token)) = random_id_pair() else {
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
        Method::POST => return transport_requests::post(shared, &parts, body, id).await,
        Method::DELETE => return transport_requests::delete(&shared, &parts, id).await,
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
        return transport_requests::server_sent_events(shared, &parts, id).await;
    }
    if !is_websocket_upgrade(&parts) {
        if !enabled.long_polling {
            return text(
                StatusCode::NOT_FOUND,
                "LongPolling transport not supported by this end point type",
            );
        }
        return transport_requests::long_poll(shared, &parts, id).await;
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
        Some(token) => {
            match transport_requests::lookup(&shared, token, TransportKind::WebSockets, &user) {
                Lookup::NotLive => None,
                Lookup::Same(live) => Some(live),
                Lookup::Refused(response) => return response,
            }
        }
        None => None,
    };
    if let Some(live) = live {
        let Some(resume) = live.resume().cloned() else {
            return text(StatusCode::NOT_FOUND, "No Connection with that ID");
        };
        let upgrade = match websocket::Upgrade::from_parts(&mut parts) {
            Ok(upgrade) => upgrade,
            Err(refused) => return *refused,
        };
        return upgrade.on_upgrade(
            shared.options.maximum_receive_message_size,
            move |source, sink| async move {
                // A closed channel means the session ended meanwhile: the
                // socket is dropped and the client sees it close.
                let _ = resume.send((source, sink)).await;
            },
        );
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
    let upgrade = match websocket::Upgrade::from_parts(&mut parts) {
        Ok(upgrade) => upgrade,
        Err(refused) => return *refused,
    };
    let (connection_id, stateful) = match &id {
        Some(token) => match take_negotiated(&shared, token, &user) {
            Ok(negotiated) => (negotiated.connection_id, negotiated.stateful),
            Err(refused) => return *refused,
        },
        None => match transport_requests::fresh_id() {
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
    let live = transport_requests::register(
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
        Some(transport_requests::owned_head(parts)),
    ));
    upgrade.on_upgrade(
        shared.options.maximum_receive_message_size,
        move |source, sink| async move {
            transport_requests::run_session(
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
