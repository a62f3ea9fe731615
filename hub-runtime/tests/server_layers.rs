//! The hub router inside an application's own axum `Router`, behind its
//! tower layers: an authentication middleware that answers 401 before the
//! hub sees the request, and a layer that stamps every response. Negotiate
//! and the WebSocket upgrade both pass through them.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::net::SocketAddr;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hub_runtime::server::HubServer;
use serde_json::json;
use server_support::{Client, TestHub, http};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Error as WsError};

const KEY_HEADER: &str = "x-api-key";
const KEY: &str = "let-me-in";

/// The application's authentication: no key, no entry.
async fn require_key(request: Request, next: Next) -> Response {
    match request.headers().get(KEY_HEADER) {
        Some(key) if key == KEY => next.run(request).await,
        _ => (StatusCode::UNAUTHORIZED, "an API key is required").into_response(),
    }
}

async fn stamp(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-served-by", HeaderValue::from_static("my-app"));
    response
}

/// An application with its own route and the hub at `/hubs/test`, both
/// behind the layers (the outer one stamps the 401s too).
async fn serve_app() -> SocketAddr {
    let hub = HubServer::new(TestHub::default());
    let app = axum::Router::new()
        .route("/status", get(|| async { "up" }))
        .nest("/hubs/test", hub.router())
        .layer(
            tower::ServiceBuilder::new()
                .layer(middleware::map_response(stamp))
                .layer(middleware::from_fn(require_key)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Opens the hub's WebSocket at `ws://addr/hubs/test{query}`, with the
/// key when given.
async fn open_ws(
    addr: SocketAddr,
    query: &str,
    key: Option<&str>,
) -> Result<
    (
        server_support::Ws,
        tungstenite::http::Response<Option<Vec<u8>>>,
    ),
    WsError,
> {
    let mut request = format!("ws://{addr}/hubs/test{query}")
        .into_client_request()
        .unwrap();
    if let Some(key) = key {
        request
            .headers_mut()
            .insert(KEY_HEADER, HeaderValue::from_str(key).unwrap());
    }
    tokio_tungstenite::connect_async(request).await
}

fn assert_unauthorized(result: Result<impl Sized, WsError>) {
    match result {
        Err(WsError::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert_eq!(response.headers()["x-served-by"], "my-app");
        }
        Err(other) => panic!("expected a 401 answer, got {other}"),
        Ok(_) => panic!("expected a 401 answer, got a WebSocket"),
    }
}

/// The JSON handshake and one invocation on an opened socket.
async fn echo_over(ws: server_support::Ws) {
    let mut client = Client::empty_with(ws);
    client
        .send_raw("{\"protocol\":\"json\",\"version\":1}\u{1e}")
        .await;
    assert_eq!(client.next_record().await, Some(json!({})));
    let completion = client
        .invoke("1", "Echo", json!(["through the layers"]))
        .await;
    assert_eq!(completion["result"], "through the layers");
}

#[tokio::test]
async fn negotiate_and_websockets_work_through_the_applications_layers() {
    let addr = serve_app().await;
    let key = [(KEY_HEADER, KEY)];

    // The application's own route sits behind the same layers.
    let (status, head, body) = http(addr, "GET", "/status", &key).await;
    assert_eq!((status, body.as_str()), (200, "up"));
    assert!(head.contains("x-served-by: my-app"), "{head}");

    // Negotiate, then the negotiated WebSocket, both with the key.
    let (status, head, body) = http(
        addr,
        "POST",
        "/hubs/test/negotiate?negotiateVersion=1",
        &key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-served-by: my-app"), "{head}");
    let negotiated: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = negotiated["connectionToken"].as_str().unwrap();
    assert!(
        negotiated["availableTransports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["transport"] == "WebSockets"),
        "{negotiated}"
    );

    // Without the key the upgrade never reaches the hub, so the token is
    // still unused afterwards.
    assert_unauthorized(open_ws(addr, &format!("?id={token}"), None).await);
    let (ws, response) = open_ws(addr, &format!("?id={token}"), Some(KEY))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-served-by"], "my-app");
    echo_over(ws).await;

    // skipNegotiation: the WebSocket straight away, with the key.
    let (ws, _) = open_ws(addr, "", Some(KEY)).await.unwrap();
    echo_over(ws).await;
}

#[tokio::test]
async fn requests_without_the_key_get_the_applications_401() {
    let addr = serve_app().await;

    let no_key: &[(&str, &str)] = &[];
    for key in [no_key, &[(KEY_HEADER, "wrong")]] {
        let (status, head, body) = http(addr, "POST", "/hubs/test/negotiate", key).await;
        assert_eq!(status, 401, "{head}");
        assert_eq!(body, "an API key is required");
        assert!(head.contains("x-served-by: my-app"), "{head}");
        let (status, _, _) = http(addr, "GET", "/status", key).await;
        assert_eq!(status, 401);
    }
    assert_unauthorized(open_ws(addr, "", None).await);
    assert_unauthorized(open_ws(addr, "", Some("wrong")).await);
}
