//! Server-Sent Events and Long Polling on the server, over raw HTTP/1.1 on
//! real sockets: statuses, headers, first-poll behaviour, 204 semantics,
//! token binding, DELETE, abandoned connections.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::net::SocketAddr;
use std::time::Duration;

use hub_runtime::server::{HttpTransports, HubOptions};
use serde_json::{Value, json};
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const RS: char = '\u{1e}';

/// One request with a body; (status, head, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .expect("response within 60 s")
        .unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head[9..12].parse().unwrap();
    (status, head, response[split + 4..].to_vec())
}

fn token(negotiated: &Value) -> String {
    negotiated["connectionToken"].as_str().unwrap().to_owned()
}

async fn post(addr: SocketAddr, token: &str, body: &str) -> u16 {
    request(
        addr,
        "POST",
        &format!("/hubs/test?id={token}"),
        &[],
        body.as_bytes(),
    )
    .await
    .0
}

async fn poll(addr: SocketAddr, token: &str) -> (u16, String, Vec<u8>) {
    request(addr, "GET", &format!("/hubs/test?id={token}&_=1"), &[], b"").await
}

/// Polls until `count` records arrived; returns them parsed.
async fn poll_records(addr: SocketAddr, token: &str, count: usize) -> Vec<Value> {
    let mut records = Vec::new();
    while records.len() < count {
        let (status, _, body) = poll(addr, token).await;
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.is_empty() || text.ends_with(RS),
            "whole records: {text:?}"
        );
        records.extend(
            text.split(RS)
                .filter(|r| !r.is_empty())
                .map(|r| serde_json::from_str::<Value>(r).unwrap()),
        );
    }
    records
}

#[tokio::test]
async fn long_polling_round_trip_and_delete() {
    let server = start(HubOptions::default()).await;
    let negotiated = negotiate(server.addr, "?negotiateVersion=1").await;
    let token = token(&negotiated);

    // The first poll returns at once, empty, with the no-cache headers.
    let (status, head, body) = poll(server.addr, &token).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: application/octet-stream"),
        "{head}"
    );
    assert!(head.contains("content-length: 0"), "{head}");
    assert!(head.contains("cache-control: no-cache, no-store"), "{head}");
    assert!(
        head.contains("expires: thu, 01 jan 1970 00:00:00 gmt"),
        "{head}"
    );

    // Handshake and an invocation in one POST body.
    let sent = format!(
        "{{\"protocol\":\"json\",\"version\":1}}{RS}{{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"hi\"]}}{RS}"
    );
    assert_eq!(post(server.addr, &token, &sent).await, 200);
    let records = poll_records(server.addr, &token, 2).await;
    assert_eq!(records[0], json!({}));
    assert_eq!(
        records[1],
        json!({"type":3,"invocationId":"1","result":"hi"})
    );

    // The connection id is the negotiated one.
    let call = format!(
        "{{\"type\":1,\"invocationId\":\"2\",\"target\":\"GetConnectionId\",\"arguments\":[]}}{RS}"
    );
    assert_eq!(post(server.addr, &token, &call).await, 200);
    let records = poll_records(server.addr, &token, 1).await;
    assert_eq!(records[0]["result"], negotiated["connectionId"]);

    // A newer poll ends the waiting one with 204. Which of the two the
    // server saw first is up to the scheduler (the pause only makes it
    // likely): the one that ends first is the one that waited.
    let mut first = tokio::spawn(poll(server.addr, token.clone().leak()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = tokio::spawn(poll(server.addr, token.clone().leak()));
    let (ended, newer) = tokio::select! {
        ended = &mut first => (ended, second),
        ended = &mut second => (ended, first),
    };
    assert_eq!(ended.unwrap().0, 204, "the newer poll ends the waiting one");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!newer.is_finished(), "the newer poll waits");

    // DELETE ends the connection: 202, the pending poll gets 204, then 404.
    let (status, _, _) = request(
        server.addr,
        "DELETE",
        &format!("/hubs/test?id={token}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(newer.await.unwrap().0, 204);
    tokio::time::timeout(Duration::from_secs(10), async {
        while poll(server.addr, &token).await.0 != 404 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(post(server.addr, &token, "x").await, 404);
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn long_polling_messagepack_and_poll_timeout() {
    let server = start(HubOptions {
        long_polling_poll_timeout: Duration::from_millis(500),
        ..HubOptions::default()
    })
    .await;
    let token = token(&negotiate(server.addr, "?negotiateVersion=1").await);
    assert_eq!(poll(server.addr, &token).await.0, 200);
    let handshake = format!("{{\"protocol\":\"messagepack\",\"version\":1}}{RS}");
    assert_eq!(post(server.addr, &token, &handshake).await, 200);
    let (status, _, body) = poll(server.addr, &token).await;
    assert_eq!((status, body.as_slice()), (200, &b"{}\x1e"[..]));
    // Nothing to send: the poll returns empty after the poll timeout.
    let started = std::time::Instant::now();
    let (status, _, body) = poll(server.addr, &token).await;
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn abandoned_long_polling_connection_is_cleaned_up() {
    let server = start(HubOptions {
        disconnect_timeout: Duration::from_millis(500),
        // No client timeout can be the cause: it is far away.
        client_timeout_interval: Duration::from_secs(600),
        ..HubOptions::default()
    })
    .await;
    let token = token(&negotiate(server.addr, "?negotiateVersion=1").await);
    assert_eq!(poll(server.addr, &token).await.0, 200);
    let handshake = format!("{{\"protocol\":\"json\",\"version\":1}}{RS}");
    assert_eq!(post(server.addr, &token, &handshake).await, 200);
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.hub.connection_count() == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    // No poll for longer than the disconnect timeout: gone.
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.hub.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(post(server.addr, &token, "x").await, 404);
}

/// Reads SSE events from a raw response stream until `count` records came.
async fn sse_records(stream: &mut TcpStream, seen: &mut String, count: usize) -> Vec<Value> {
    let mut records = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        // Events are `data: <payload>\r\n\r\n`; chunk sizes sit between them.
        while let Some(start) = seen.find("data: ") {
            let Some(end) = seen[start..].find("\r\n\r\n") else {
                break;
            };
            let payload = seen[start + 6..start + end].to_owned();
            seen.drain(..start + end + 4);
            assert!(
                payload.ends_with(RS),
                "whole records per event: {payload:?}"
            );
            records.extend(
                payload
                    .split(RS)
                    .filter(|r| !r.is_empty())
                    .map(|r| serde_json::from_str::<Value>(r).unwrap()),
            );
        }
        if records.len() >= count {
            return records;
        }
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "the event stream ended");
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

#[tokio::test]
async fn server_sent_events_round_trip_and_binding() {
    let server = start(HubOptions::default()).await;
    let token = token(&negotiate(server.addr, "?negotiateVersion=1").await);

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let get = format!(
        "GET /hubs/test?id={token} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    stream.write_all(get.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buffer = [0u8; 4096];
    while !seen.contains(":\r\n") || !seen.contains("\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0);
        seen.push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
    let lower = seen.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.1 200"), "{seen}");
    assert!(lower.contains("content-type: text/event-stream"), "{seen}");
    assert!(lower.contains("cache-control: no-cache,no-store"), "{seen}");
    assert!(lower.contains("pragma: no-cache"), "{seen}");
    // The `:` comment arrives before any event, flushed at once.
    let body_start = seen.find("\r\n\r\n").unwrap() + 4;
    assert!(seen[body_start..].contains(":\r\n"), "{seen:?}");
    seen.drain(..body_start);

    // A second stream, a poll, a WebSocket, another user: all refused.
    let (status, _, _) = request(
        server.addr,
        "GET",
        &format!("/hubs/test?id={token}"),
        &[("Accept", "text/event-stream")],
        b"",
    )
    .await;
    assert_eq!(status, 409);
    let (status, _, body) = poll(server.addr, &token).await;
    assert_eq!(
        (status, body.as_slice()),
        (400, &b"Cannot change transports mid-connection"[..])
    );
    let error = open(server.addr, &format!("?id={token}"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");
    let (status, _, _) = request(
        server.addr,
        "POST",
        &format!("/hubs/test?id={token}"),
        &[("Authorization", "Bearer user-mallory")],
        b"{}",
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, body) = request(
        server.addr,
        "DELETE",
        &format!("/hubs/test?id={token}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(
        (status, String::from_utf8(body).unwrap().as_str()),
        (
            400,
            "Cannot terminate this connection using the DELETE endpoint."
        )
    );

    // MessagePack cannot run over SSE.
    let token2 = self::token(&negotiate(server.addr, "?negotiateVersion=1").await);
    let mut stream2 = TcpStream::connect(server.addr).await.unwrap();
    let get2 = format!(
        "GET /hubs/test?id={token2} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.addr
    );
    stream2.write_all(get2.as_bytes()).await.unwrap();
    let handshake = format!("{{\"protocol\":\"messagepack\",\"version\":1}}{RS}");
    assert_eq!(post(server.addr, &token2, &handshake).await, 200);
    let mut seen2 = String::new();
    let error = sse_records(&mut stream2, &mut seen2, 1).await;
    assert!(
        error[0]["error"]
            .as_str()
            .unwrap()
            .contains("Cannot use the 'messagepack' protocol"),
        "{error:?}"
    );

    // Handshake, two invocations in one POST: events with whole records.
    let sent = format!(
        "{{\"protocol\":\"json\",\"version\":1}}{RS}{{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"line\\nbreak\"]}}{RS}{{\"type\":1,\"invocationId\":\"2\",\"target\":\"Add\",\"arguments\":[2,3]}}{RS}"
    );
    assert_eq!(post(server.addr, &token, &sent).await, 200);
    let records = sse_records(&mut stream, &mut seen, 3).await;
    assert_eq!(records[0], json!({}));
    assert_eq!(
        records[1],
        json!({"type":3,"invocationId":"1","result":"line\nbreak"})
    );
    assert_eq!(records[2], json!({"type":3,"invocationId":"2","result":5}));
    assert_eq!(server.hub.connection_count(), 1);

    // Closing the event stream ends the connection.
    drop(stream);
    drop(stream2);
    tokio::time::timeout(Duration::from_secs(10), async {
        while server.hub.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(post(server.addr, &token, "x").await, 404);
}

#[tokio::test]
async fn transports_can_be_disabled_and_ids_are_required() {
    let server = start(HubOptions {
        transports: HttpTransports {
            web_sockets: false,
            ..HttpTransports::ALL
        },
        ..HubOptions::default()
    })
    .await;
    let negotiated = negotiate(server.addr, "?negotiateVersion=1").await;
    assert_eq!(
        negotiated["availableTransports"],
        json!([
            {"transport":"ServerSentEvents","transferFormats":["Text"]},
            {"transport":"LongPolling","transferFormats":["Text","Binary"]},
        ])
    );
    let error = open(server.addr, &format!("?id={}", token(&negotiated)))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");

    for (method, headers) in [
        ("GET", &[][..]),
        ("GET", &[("Accept", "text/event-stream")][..]),
        ("POST", &[][..]),
        ("DELETE", &[][..]),
    ] {
        let (status, _, body) = request(server.addr, method, "/hubs/test", headers, b"").await;
        assert_eq!(
            (status, String::from_utf8(body).unwrap().as_str()),
            (400, "Connection ID required"),
            "{method} {headers:?}"
        );
    }
    let (status, _, _) = request(server.addr, "POST", "/hubs/test?id=nope", &[], b"x").await;
    assert_eq!(status, 404);

    // POST to a WebSocket connection.
    let server = start(HubOptions::default()).await;
    let token = token(&negotiate(server.addr, "?negotiateVersion=1").await);
    let _client = Client::connect_query(server.addr, &format!("?id={token}")).await;
    let (status, _, body) = request(
        server.addr,
        "POST",
        &format!("/hubs/test?id={token}"),
        &[],
        b"x",
    )
    .await;
    assert_eq!(
        (status, String::from_utf8(body).unwrap().as_str()),
        (
            405,
            "POST requests are not allowed for WebSocket connections."
        )
    );
}
