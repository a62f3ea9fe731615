//! Protocol-level tests of `HubConnection` against a hand-written peer
//! (negotiate responder + tokio-tungstenite WebSocket server on 127.0.0.1).

#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)]

mod client_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use client_support::{MockServer, standard_negotiate};
use hub_runtime::client::{HubConnection, HubConnectionEvent, HubConnectionState};
use hub_runtime::protocol::Payload;
use hub_runtime::{HubError, HubErrorKind};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

async fn next_event(events: &mut broadcast::Receiver<HubConnectionEvent>) -> HubConnectionEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no event within 10 s")
        .expect("event channel open")
}

/// Starts `connection` while the peer accepts and handshakes.
async fn start(
    server: &mut MockServer,
    connection: &HubConnection,
) -> (client_support::Recorded, client_support::Peer) {
    let (started, accepted) = tokio::join!(connection.start(), server.accept_connected());
    started.unwrap();
    accepted
}

#[tokio::test]
async fn negotiates_connects_handshakes_and_pings() {
    let mut server = MockServer::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let connection = HubConnection::builder(server.url("/hub"))
        .access_token_factory(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move { Some(format!("secret {n}")) }
        })
        .header("X-Custom", "yes")
        .build()
        .unwrap();
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
    let (ws_request, mut peer) = start(&mut server, &connection).await;

    let negotiate = server.negotiates.lock().unwrap()[0].clone();
    assert_eq!(negotiate.method, "POST");
    assert_eq!(negotiate.target, "/hub/negotiate?negotiateVersion=1");
    assert_eq!(negotiate.header("authorization"), Some("Bearer secret 0"));
    assert_eq!(negotiate.header("content-length"), Some("0"));
    assert_eq!(negotiate.header("x-requested-with"), Some("XMLHttpRequest"));
    assert_eq!(negotiate.header("x-custom"), Some("yes"));

    // The provider is called again for the socket.
    assert_eq!(ws_request.target, "/hub?id=tok-0&access_token=secret%201");
    assert_eq!(ws_request.header("authorization"), Some("Bearer secret 1"));
    assert_eq!(ws_request.header("x-custom"), Some("yes"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A Ping right after the handshake.
    assert_eq!(peer.recv().await, Some(json!({"type": 6})));
    assert_eq!(connection.state(), HubConnectionState::Connected);
    assert_eq!(connection.connection_id().as_deref(), Some("cid-0"));
    connection.stop().await;
}

#[tokio::test]
async fn invoke_awaits_completion() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (_, mut peer) = start(&mut server, &connection).await;

    let peer_task = tokio::spawn(async move {
        let add = peer.recv_non_ping().await.unwrap();
        assert_eq!(
            add,
            json!({"type": 1, "invocationId": "0", "target": "Add", "arguments": [2, 3]})
        );
        peer.send_json(json!({"type": 3, "invocationId": "0", "result": 5}))
            .await;
        let echo = peer.recv_non_ping().await.unwrap();
        assert_eq!(echo["invocationId"], "1");
        assert_eq!(echo["arguments"], json!([{"a": [1, null]}]));
        peer.send_json(json!({"type": 3, "invocationId": "1", "result": {"a": [1, null]}}))
            .await;
        let fail = peer.recv_non_ping().await.unwrap();
        peer.send_json(json!({"type": 3, "invocationId": fail["invocationId"], "error": "boom"}))
            .await;
        let void = peer.recv_non_ping().await.unwrap();
        assert_eq!(void["arguments"], json!([]));
        // Without a result key, as JS answers a void method.
        peer.send_json(json!({"type": 3, "invocationId": void["invocationId"]}))
            .await;
        peer
    });

    let sum: i64 = connection.invoke("Add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);
    let echoed: serde_json::Value = connection
        .invoke("Echo2", (json!({"a": [1, null]}),))
        .await
        .unwrap();
    assert_eq!(echoed, json!({"a": [1, null]}));
    let error = connection.invoke::<()>("Fail", ("x",)).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert_eq!(error.message(), "boom");
    connection.invoke::<()>("Nothing", ()).await.unwrap();
    let _peer = peer_task.await.unwrap();
    connection.stop().await;
}

#[tokio::test]
async fn send_is_fire_and_forget() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (_, mut peer) = start(&mut server, &connection).await;
    let name = String::from("ann");
    connection.send("Broadcast", (&name, 1.5)).await.unwrap();
    connection
        .send("Raw", vec![Payload::from_value("p")])
        .await
        .unwrap();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 1, "target": "Broadcast", "arguments": ["ann", 1.5]}))
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 1, "target": "Raw", "arguments": ["p"]}))
    );
    connection.stop().await;
}

#[tokio::test]
async fn server_invocations_reach_handlers_and_client_results_are_answered() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    connection.on("Receive", 1, move |args| {
        let received_tx = received_tx.clone();
        async move {
            let message: String = args.bind(0)?;
            received_tx.send(message).unwrap();
            Ok(None)
        }
    });
    connection.on("Question", 1, |args| async move {
        let question: String = args.bind(0)?;
        Ok(Some(Payload::from_value(format!("answer to {question}"))))
    });
    connection.on("Silent", 0, |_| async { Ok(None) });
    connection.on("Failing", 0, |_| async {
        Err(HubError::new("handler failed").into())
    });
    let (_, mut peer) = start(&mut server, &connection).await;

    // Fire-and-forget, matched case-insensitively: no reply.
    peer.send_json(json!({"type": 1, "target": "receive", "arguments": ["hi"]}))
        .await;
    assert_eq!(received.recv().await.as_deref(), Some("hi"));

    peer.send_json(
        json!({"type": 1, "invocationId": "7", "target": "QUESTION", "arguments": ["q"]}),
    )
    .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "7", "result": "answer to q"}))
    );

    for (id, target) in [("8", "Silent"), ("9", "Unknown")] {
        peer.send_json(json!({"type": 1, "invocationId": id, "target": target, "arguments": []}))
            .await;
        assert_eq!(
            peer.recv_non_ping().await,
            Some(
                json!({"type": 3, "invocationId": id, "error": "Client didn't provide a result."})
            )
        );
    }
    peer.send_json(json!({"type": 1, "invocationId": "10", "target": "Failing", "arguments": []}))
        .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "10", "error": "handler failed"}))
    );

    // Fire-and-forget to an unknown method: nothing comes back (the next
    // record is the answer to the following question).
    peer.send_json(json!({"type": 1, "target": "Unknown", "arguments": []}))
        .await;
    peer.send_json(
        json!({"type": 1, "invocationId": "11", "target": "Question", "arguments": ["z"]}),
    )
    .await;
    assert_eq!(peer.recv_non_ping().await.unwrap()["invocationId"], "11");
    connection.stop().await;
}

#[tokio::test]
async fn messages_in_the_handshake_frame_are_processed() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    connection.on("Receive", 1, move |args| {
        let received_tx = received_tx.clone();
        async move {
            received_tx.send(args.bind::<String>(0)?).unwrap();
            Ok(None)
        }
    });
    let (started, accepted) = tokio::join!(connection.start(), async {
        let (_, mut peer) = server.accept().await;
        peer.next_frame().await.unwrap();
        peer.send_text(
            "{}\u{1e}{\"type\":1,\"target\":\"Receive\",\"arguments\":[\"early\"]}\u{1e}",
        )
        .await;
        peer
    });
    started.unwrap();
    assert_eq!(received.recv().await.as_deref(), Some("early"));
    drop(accepted);
}

#[tokio::test]
async fn handshake_error_fails_start() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (started, _peer) = tokio::join!(connection.start(), async {
        let (_, mut peer) = server.accept().await;
        peer.next_frame().await.unwrap();
        peer.send_text("{\"error\":\"The protocol 'json' is not supported.\"}\u{1e}")
            .await;
        peer
    });
    let error = started.unwrap_err();
    assert_eq!(
        error.message(),
        "Server returned handshake error: The protocol 'json' is not supported."
    );
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
}

#[tokio::test]
async fn negotiate_error_redirect_and_version_0() {
    // `{"error":…}` fails start with the server's text.
    let server = MockServer::with_negotiator(Arc::new(|_, _| {
        (200, r#"{"error":"This connection is not allowed."}"#.into())
    }))
    .await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let error = connection.start().await.unwrap_err();
    assert_eq!(error.message(), "This connection is not allowed.");
    assert_eq!(connection.state(), HubConnectionState::Disconnected);

    // A 404 names the likely cause.
    let server = MockServer::with_negotiator(Arc::new(|_, _| (404, String::new()))).await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let error = connection.start().await.unwrap_err();
    assert!(
        error
            .message()
            .contains("Either this is not a SignalR endpoint"),
        "{error}"
    );

    // A redirect with a token, then version 0 (the connection id is the id).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = MockServer::on_listener(
        listener,
        Arc::new(move |n, _| {
            match n {
            0 => (
                200,
                json!({"url": format!("http://127.0.0.1:{port}/other?x=1"), "accessToken": "redir"})
                    .to_string(),
            ),
            _ => (
                200,
                json!({"connectionId": "v0-id", "availableTransports": [
                    {"transport": "WebSockets", "transferFormats": ["Text"]}]})
                .to_string(),
            ),
        }
        }),
    );
    let connection = HubConnection::builder(server.url("/hub"))
        .access_token(|| Some("original".into()))
        .build()
        .unwrap();
    let (ws_request, _peer) = start(&mut server, &connection).await;
    let negotiates = server.negotiates.lock().unwrap().clone();
    assert_eq!(
        negotiates[0].header("authorization"),
        Some("Bearer original")
    );
    assert_eq!(
        negotiates[1].target,
        "/other/negotiate?x=1&negotiateVersion=1"
    );
    assert_eq!(negotiates[1].header("authorization"), Some("Bearer redir"));
    assert_eq!(ws_request.target, "/other?x=1&id=v0-id&access_token=redir");
    assert_eq!(connection.connection_id().as_deref(), Some("v0-id"));
    connection.stop().await;
}

#[tokio::test]
async fn negotiate_without_websockets_fails() {
    let server = MockServer::with_negotiator(Arc::new(|_, _| {
        (
            200,
            json!({"negotiateVersion": 1, "connectionId": "a", "connectionToken": "b",
                   "availableTransports": [{"transport": "LongPolling", "transferFormats": ["Text"]}]})
            .to_string(),
        )
    }))
    .await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let error = connection.start().await.unwrap_err();
    assert!(
        error
            .message()
            .starts_with("Unable to connect to the server with any of the available transports.")
    );
}

#[tokio::test]
async fn skip_negotiation_opens_the_socket_directly() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .skip_negotiation(true)
        .build()
        .unwrap();
    let (ws_request, _peer) = start(&mut server, &connection).await;
    assert_eq!(ws_request.target, "/hub");
    assert_eq!(server.negotiate_count(), 0);
    assert_eq!(connection.connection_id(), None);
    connection.stop().await;
}

#[tokio::test]
async fn stop_sends_close_and_does_not_reconnect() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .automatic_reconnect()
        .build()
        .unwrap();
    let mut events = connection.events();
    let (_, mut peer) = start(&mut server, &connection).await;
    let (_, seen) = tokio::join!(connection.stop(), peer.until_closed());
    assert_eq!(seen.last(), Some(&json!({"type": 7})));
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
    match next_event(&mut events).await {
        HubConnectionEvent::Closed { error: None, .. } => {}
        other => panic!("unexpected {other:?}"),
    }
    let error = connection.invoke::<()>("Echo", ("x",)).await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.negotiate_count(), 1);
    // A stopped connection can start again.
    let (_, _peer) = start(&mut server, &connection).await;
    assert_eq!(connection.connection_id().as_deref(), Some("cid-1"));
    connection.stop().await;
}

#[tokio::test]
async fn close_without_allow_reconnect_is_final() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .reconnect_delays([Duration::ZERO])
        .build()
        .unwrap();
    let mut events = connection.events();
    let (_, mut peer) = start(&mut server, &connection).await;
    let pending = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.invoke::<i64>("Slow", ()).await })
    };
    peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 7, "error": "Connection closed with an error."}))
        .await;
    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            error: Some(error), ..
        } => assert_eq!(
            error.message(),
            "Server returned an error on close: Connection closed with an error."
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
    let error = pending.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
    // The client closes its socket.
    peer.until_closed().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.negotiate_count(), 1);
}

#[tokio::test]
async fn close_with_allow_reconnect_reconnects_with_a_new_connection() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .reconnect_delays([Duration::ZERO])
        .build()
        .unwrap();
    let mut events = connection.events();
    let mut states = connection.state_changes();
    let (_, mut peer) = start(&mut server, &connection).await;
    assert_eq!(connection.connection_id().as_deref(), Some("cid-0"));
    peer.send_json(json!({"type": 7, "allowReconnect": true}))
        .await;

    match next_event(&mut events).await {
        HubConnectionEvent::Reconnecting { error: None } => {}
        other => panic!("unexpected {other:?}"),
    }
    let (ws_request, mut peer) = server.accept_connected().await;
    assert_eq!(ws_request.target, "/hub?id=tok-1");
    match next_event(&mut events).await {
        HubConnectionEvent::Reconnected { connection_id } => {
            assert_eq!(connection_id.as_deref(), Some("cid-1"))
        }
        other => panic!("unexpected {other:?}"),
    }
    states
        .wait_for(|s| *s == HubConnectionState::Connected)
        .await
        .unwrap();
    assert_eq!(connection.connection_id().as_deref(), Some("cid-1"));
    // The new connection works; invocation ids continue.
    let invoke = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.invoke::<String>("Echo", ("again",)).await })
    };
    let message = peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 3, "invocationId": message["invocationId"], "result": "again"}))
        .await;
    assert_eq!(invoke.await.unwrap().unwrap(), "again");
    connection.stop().await;
}

#[tokio::test]
async fn dropped_socket_fails_pending_invocations_and_reconnect_gives_up() {
    let negotiates = Arc::new(AtomicUsize::new(0));
    let count = negotiates.clone();
    let mut server = MockServer::with_negotiator(Arc::new(move |n, _| {
        count.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            standard_negotiate(n)
        } else {
            (500, "oops".into())
        }
    }))
    .await;
    let connection = HubConnection::builder(server.url("/hub"))
        .reconnect_delays([Duration::from_millis(10), Duration::from_millis(20)])
        .build()
        .unwrap();
    let mut events = connection.events();
    let (_, mut peer) = start(&mut server, &connection).await;
    let pending = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.invoke::<i64>("Slow", ()).await })
    };
    peer.recv_non_ping().await.unwrap();
    drop(peer); // no Close message, no close frame

    let error = pending.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
    match next_event(&mut events).await {
        HubConnectionEvent::Reconnecting { error: Some(_) } => {}
        other => panic!("unexpected {other:?}"),
    }
    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            error: Some(error), ..
        } => {
            assert!(error.message().contains("500"), "{error}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(negotiates.load(Ordering::SeqCst), 3);
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
}

#[tokio::test]
async fn server_timeout_closes_and_keep_alive_pings() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .server_timeout(Duration::from_millis(600))
        .keep_alive_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let mut events = connection.events();
    let (_, mut peer) = start(&mut server, &connection).await;
    // Silence from the server: the client keeps pinging, then gives up.
    let seen = peer.until_closed().await;
    let pings = seen.iter().filter(|r| **r == json!({"type": 6})).count();
    assert!(pings >= 3, "expected several pings, saw {seen:?}");
    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            error: Some(error), ..
        } => {
            assert_eq!(
                error.message(),
                "Server timeout elapsed without receiving a message from the server."
            );
            assert_eq!(error.kind(), HubErrorKind::Timeout);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn server_messages_reset_the_server_timeout() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .server_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let (_, mut peer) = start(&mut server, &connection).await;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peer.send_json(json!({"type": 6})).await;
    }
    assert_eq!(connection.state(), HubConnectionState::Connected);
    connection.stop().await;
}

#[tokio::test]
async fn invalid_message_closes_the_connection() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let mut events = connection.events();
    let (_, mut peer) = start(&mut server, &connection).await;
    peer.send_text("{\"type\":1,\"target\":5}\u{1e}").await;
    match next_event(&mut events).await {
        HubConnectionEvent::Closed {
            error: Some(error), ..
        } => {
            assert_eq!(error.kind(), HubErrorKind::Protocol)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn stop_during_reconnect_delay() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .reconnect_delays([Duration::from_secs(60)])
        .build()
        .unwrap();
    let mut events = connection.events();
    let (_, peer) = start(&mut server, &connection).await;
    drop(peer);
    assert!(matches!(
        next_event(&mut events).await,
        HubConnectionEvent::Reconnecting { .. }
    ));
    assert_eq!(connection.state(), HubConnectionState::Reconnecting);
    tokio::time::timeout(Duration::from_secs(5), connection.stop())
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        HubConnectionEvent::Closed { error: None, .. }
    ));
    assert_eq!(server.negotiate_count(), 1);
}

#[tokio::test]
async fn start_twice_fails_and_bad_urls_are_refused() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (_, _peer) = start(&mut server, &connection).await;
    assert!(connection.start().await.is_err());
    connection.stop().await;
    assert!(
        HubConnection::builder("ftp://example.com/hub")
            .build()
            .is_err()
    );
    assert!(HubConnection::builder("not a url").build().is_err());
}

#[tokio::test]
async fn stop_during_start_fails_the_start() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let starting = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.start().await })
    };
    // The peer reads the handshake request but never answers it.
    let (_, mut peer) = server.accept().await;
    peer.next_frame().await.unwrap();
    assert_eq!(connection.state(), HubConnectionState::Connecting);
    tokio::time::timeout(Duration::from_secs(5), connection.stop())
        .await
        .unwrap();
    let error = starting.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
    assert_eq!(connection.state(), HubConnectionState::Disconnected);
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_connection() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let (_, mut peer) = start(&mut server, &connection).await;
    drop(connection);
    let seen = peer.until_closed().await;
    assert_eq!(seen.last(), Some(&json!({"type": 7})));
}
