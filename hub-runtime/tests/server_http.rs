//! Negotiate and the transport endpoint over real sockets.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use hub_runtime::server::HubOptions;
use serde_json::json;
use server_support::*;

fn is_token(value: &serde_json::Value) -> bool {
    let text = value.as_str().unwrap();
    text.len() == 22
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test]
async fn negotiate_versions() {
    let server = start(HubOptions::default()).await;
    let transports = json!([
        {"transport":"WebSockets","transferFormats":["Text","Binary"]},
        {"transport":"ServerSentEvents","transferFormats":["Text"]},
        {"transport":"LongPolling","transferFormats":["Text","Binary"]},
    ]);

    let v1 = negotiate(server.addr, "?negotiateVersion=1").await;
    assert_eq!(v1["negotiateVersion"], 1);
    assert!(is_token(&v1["connectionId"]) && is_token(&v1["connectionToken"]));
    assert_ne!(v1["connectionId"], v1["connectionToken"]);
    assert_eq!(v1["availableTransports"], transports);

    let v0 = negotiate(server.addr, "").await;
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(is_token(&v0["connectionId"]));
    assert!(v0.get("connectionToken").is_none());

    let clamped = negotiate(server.addr, "?negotiateVersion=7").await;
    assert_eq!(clamped["negotiateVersion"], 1);

    let error = negotiate(server.addr, "?negotiateVersion=abc").await;
    assert_eq!(
        error,
        json!({"error": "The client requested a non-integer protocol version."})
    );

    let (status, head, _) = http(server.addr, "GET", "/hubs/test/negotiate", &[]).await;
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain")
    );
}

#[tokio::test]
async fn negotiate_auth() {
    let server = start(HubOptions::default()).await;
    let (status, _, _) = http(
        server.addr,
        "POST",
        "/hubs/test/negotiate?negotiateVersion=1",
        &[("Authorization", "Bearer bad")],
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = http(
        server.addr,
        "POST",
        "/hubs/test/negotiate?negotiateVersion=1",
        &[("Authorization", "Bearer user-ann")],
    )
    .await;
    assert_eq!(status, 200);
    // WebSocket request with a refused token.
    let error = open(server.addr, "?access_token=nope").await.unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
}

#[tokio::test]
async fn websocket_ids() {
    let server = start(HubOptions::default()).await;
    // Unknown id.
    let error = open(server.addr, "?id=unknown").await.unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");

    // Negotiated v1: the token opens it once.
    let v1 = negotiate(server.addr, "?negotiateVersion=1").await;
    let token = v1["connectionToken"].as_str().unwrap();
    let mut client = Client::connect_query(server.addr, &format!("?id={token}")).await;
    let id = client.invoke("1", "GetConnectionId", json!([])).await;
    assert_eq!(id["result"], v1["connectionId"]);
    let error = open(server.addr, &format!("?id={token}"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");

    // v0: the connection id is the id.
    let v0 = negotiate(server.addr, "").await;
    let id0 = v0["connectionId"].as_str().unwrap();
    let mut client0 = Client::connect_query(server.addr, &format!("?id={id0}")).await;
    assert_eq!(
        client0.invoke("1", "GetConnectionId", json!([])).await["result"],
        v0["connectionId"]
    );

    // skipNegotiation: no id.
    let mut skip = Client::connect(server.addr).await;
    assert!(is_token(
        &skip.invoke("1", "GetConnectionId", json!([])).await["result"]
    ));

    // Long Polling and SSE with an unknown id (see transport_http.rs).
    let (status, _, body) = http(server.addr, "GET", "/hubs/test?id=x", &[]).await;
    assert_eq!((status, body.as_str()), (404, "No Connection with that ID"));
    let (status, _, _) = http(
        server.addr,
        "GET",
        "/hubs/test?id=x",
        &[("Accept", "text/event-stream")],
    )
    .await;
    assert_eq!(status, 404);
    let (status, _, _) = http(server.addr, "PUT", "/hubs/test", &[]).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn negotiated_ids_expire() {
    let server = start(HubOptions {
        disconnect_timeout: std::time::Duration::from_millis(200),
        ..HubOptions::default()
    })
    .await;
    let v1 = negotiate(server.addr, "?negotiateVersion=1").await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let error = open(
        server.addr,
        &format!("?id={}", v1["connectionToken"].as_str().unwrap()),
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
}
