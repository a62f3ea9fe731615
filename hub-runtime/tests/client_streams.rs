//! Streams both ways, at the wire level: `HubConnection::stream` and upload
//! arguments against a hand-written peer (negotiate responder +
//! tokio-tungstenite WebSocket server on 127.0.0.1), in JSON and
//! MessagePack.

#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)]

mod client_support;

use std::time::Duration;

use client_support::{MockServer, Peer};
use futures_util::{StreamExt, stream};
use hub_runtime::HubErrorKind;
use hub_runtime::client::{HubConnection, HubStream, try_upload, upload};
use hub_runtime::protocol::HubProtocol;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream_shim::UnboundedReceiverStream;

/// `tokio-stream` is not a dependency: a small adapter for the tests.
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    pub struct UnboundedReceiverStream<T>(pub mpsc::UnboundedReceiver<T>);

    impl<T> futures_util::Stream for UnboundedReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

/// A scripted peer, a client with default options, and the peer's end of
/// the client's started connection (JSON over WebSockets).
async fn connected() -> (MockServer, HubConnection, Peer) {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub")).build().unwrap();
    let peer = start(&mut server, &connection).await;
    (server, connection, peer)
}

async fn start(server: &mut MockServer, connection: &HubConnection) -> Peer {
    let (started, (_, peer)) = tokio::join!(connection.start(), server.accept_connected());
    started.unwrap();
    peer
}

async fn start_msgpack(server: &mut MockServer, connection: &HubConnection) -> Peer {
    let accept = async {
        let (_, mut peer) = server.accept().await;
        peer.handshake_msgpack().await;
        peer
    };
    let (started, peer) = tokio::join!(connection.start(), accept);
    started.unwrap();
    peer
}

async fn next<T: serde::de::DeserializeOwned>(
    stream: &mut HubStream<T>,
) -> Option<Result<T, hub_runtime::HubError>> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("no stream item within 10 s")
}

/// A MessagePack fixstr.
fn s(text: &str) -> Vec<u8> {
    assert!(text.len() < 32);
    let mut out = vec![0xa0 | text.len() as u8];
    out.extend_from_slice(text.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[tokio::test]
async fn stream_items_arrive_in_order_and_completion_ends_the_stream() {
    let (_server, connection, mut peer) = connected().await;

    let mut counter = connection.stream::<i64>("Counter", (3, 10)).unwrap();
    assert_eq!(counter.invocation_id(), Some("0"));
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 4, "invocationId": "0", "target": "Counter", "arguments": [3, 10]}))
    );
    for n in 0..3 {
        peer.send_json(json!({"type": 2, "invocationId": "0", "item": n}))
            .await;
    }
    peer.send_json(json!({"type": 3, "invocationId": "0"}))
        .await;
    for n in 0..3 {
        assert_eq!(next(&mut counter).await.unwrap().unwrap(), n);
    }
    assert!(next(&mut counter).await.is_none());
    assert!(next(&mut counter).await.is_none());
    assert_eq!(counter.invocation_id(), None);
    // Ended by the server: dropping it sends no CancelInvocation, and the
    // next id follows on.
    drop(counter);
    let invoke = tokio::spawn({
        let connection = connection.clone();
        async move { connection.invoke::<i64>("Add", (1, 2)).await }
    });
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 1, "invocationId": "1", "target": "Add", "arguments": [1, 2]}))
    );
    peer.send_json(json!({"type": 3, "invocationId": "1", "result": 3}))
        .await;
    assert_eq!(invoke.await.unwrap().unwrap(), 3);
    connection.stop().await;
}

#[tokio::test]
async fn an_error_completion_is_the_last_item_and_bad_items_are_errors() {
    let (_server, connection, mut peer) = connected().await;

    let mut numbers = connection.stream::<i64>("Numbers", ()).unwrap();
    let request = peer.recv_non_ping().await.unwrap();
    assert_eq!(request["type"], 4);
    assert_eq!(request["arguments"], json!([]));
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 1}))
        .await;
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": "not a number"}))
        .await;
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 2}))
        .await;
    peer.send_json(json!({"type": 3, "invocationId": "0", "error": "An error occurred on the server while streaming results."}))
        .await;
    assert_eq!(next(&mut numbers).await.unwrap().unwrap(), 1);
    let bad = next(&mut numbers).await.unwrap().unwrap_err();
    assert_eq!(bad.kind(), HubErrorKind::Serialization);
    assert!(bad.message().contains("'Numbers'"), "{bad}");
    assert_eq!(next(&mut numbers).await.unwrap().unwrap(), 2);
    let error = next(&mut numbers).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert_eq!(
        error.message(),
        "An error occurred on the server while streaming results."
    );
    assert!(next(&mut numbers).await.is_none());

    // A result in the final Completion is ignored, as the JS client does.
    let mut other = connection.stream::<String>("Other", ("x",)).unwrap();
    peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 3, "invocationId": "1", "result": 5}))
        .await;
    assert!(next(&mut other).await.is_none());
    connection.stop().await;
}

#[tokio::test]
async fn dropping_or_canceling_a_stream_sends_cancel_and_ignores_late_items() {
    let (_server, connection, mut peer) = connected().await;

    let mut counter = connection.stream::<i64>("Counter", (100, 10)).unwrap();
    peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 0}))
        .await;
    assert_eq!(next(&mut counter).await.unwrap().unwrap(), 0);
    drop(counter);
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 5, "invocationId": "0"}))
    );
    // The server may still send items and its Completion: ignored.
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 1}))
        .await;
    peer.send_json(json!({"type": 3, "invocationId": "0"}))
        .await;

    let mut second = connection.stream::<i64>("Counter", (100, 10)).unwrap();
    assert_eq!(peer.recv_non_ping().await.unwrap()["invocationId"], "1");
    peer.send_json(json!({"type": 2, "invocationId": "1", "item": 0}))
        .await;
    peer.send_json(json!({"type": 2, "invocationId": "1", "item": 1}))
        .await;
    assert_eq!(next(&mut second).await.unwrap().unwrap(), 0);
    second.cancel();
    // Ends at once; the buffered item is discarded.
    assert!(next(&mut second).await.is_none());
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 5, "invocationId": "1"}))
    );
    // Cancel is sent once, not again on drop.
    drop(second);

    let invoke = tokio::spawn({
        let connection = connection.clone();
        async move { connection.invoke::<String>("Echo", ("still here",)).await }
    });
    let echo = peer.recv_non_ping().await.unwrap();
    assert_eq!(echo["type"], 1);
    assert_eq!(echo["invocationId"], "2");
    peer.send_json(json!({"type": 3, "invocationId": "2", "result": "still here"}))
        .await;
    assert_eq!(invoke.await.unwrap().unwrap(), "still here");
    connection.stop().await;
}

#[tokio::test]
async fn a_lost_connection_ends_the_stream_with_connection_closed() {
    let (_server, connection, mut peer) = connected().await;

    let mut counter = connection.stream::<i64>("Counter", (100, 10)).unwrap();
    peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 7}))
        .await;
    assert_eq!(next(&mut counter).await.unwrap().unwrap(), 7);
    drop(peer);
    let error = next(&mut counter).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
    assert!(next(&mut counter).await.is_none());

    // Not connected: stream() fails at once.
    let refused = connection.stream::<i64>("Counter", (1, 1)).unwrap_err();
    assert_eq!(refused.kind(), HubErrorKind::ConnectionClosed);
    connection.stop().await;
}

#[tokio::test]
async fn a_stream_item_for_a_plain_invoke_fails_it() {
    let (_server, connection, mut peer) = connected().await;
    let invoke = tokio::spawn({
        let connection = connection.clone();
        async move { connection.invoke::<i64>("Add", (1, 2)).await }
    });
    peer.recv_non_ping().await.unwrap();
    peer.send_json(json!({"type": 2, "invocationId": "0", "item": 1}))
        .await;
    let error = invoke.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Protocol);
    assert_eq!(error.message(), "Unexpected message type: 2");
    connection.stop().await;
}

#[tokio::test]
async fn a_stalled_consumer_loses_its_stream_but_not_the_connection() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .stream_buffer_capacity(4)
        .stream_buffer_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut peer = start(&mut server, &connection).await;

    let mut stalled = connection.stream::<i64>("Counter", (10, 0)).unwrap();
    peer.recv_non_ping().await.unwrap();
    for n in 0..10 {
        peer.send_json(json!({"type": 2, "invocationId": "0", "item": n}))
            .await;
    }
    // Nobody reads `stalled`: the reader gives up on it and cancels it.
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 5, "invocationId": "0"}))
    );
    // The connection goes on.
    let invoke = tokio::spawn({
        let connection = connection.clone();
        async move { connection.invoke::<i64>("Add", (1, 2)).await }
    });
    assert_eq!(peer.recv_non_ping().await.unwrap()["invocationId"], "1");
    peer.send_json(json!({"type": 3, "invocationId": "1", "result": 3}))
        .await;
    assert_eq!(invoke.await.unwrap().unwrap(), 3);

    // The buffered items, then the error.
    for n in 0..4 {
        assert_eq!(next(&mut stalled).await.unwrap().unwrap(), n);
    }
    let error = next(&mut stalled).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Transport);
    assert!(error.message().contains("consumer"), "{error}");
    assert!(next(&mut stalled).await.is_none());
    connection.stop().await;
}

#[tokio::test]
async fn a_lagging_consumer_gets_backpressure_and_every_item() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .stream_buffer_capacity(2)
        .build()
        .unwrap();
    let mut peer = start(&mut server, &connection).await;

    let mut lagging = connection.stream::<i64>("Counter", (50, 0)).unwrap();
    peer.recv_non_ping().await.unwrap();
    // Everything in one frame, as a server coalescing its writes sends it.
    let mut frame = String::new();
    for n in 0..50 {
        frame.push_str(&format!(
            "{}\u{1e}",
            json!({"type": 2, "invocationId": "0", "item": n})
        ));
    }
    frame.push_str("{\"type\":3,\"invocationId\":\"0\"}\u{1e}");
    peer.send_text(&frame).await;
    let mut seen = Vec::new();
    while let Some(item) = next(&mut lagging).await {
        seen.push(item.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, (0..50).collect::<Vec<i64>>());
    connection.stop().await;
}

#[tokio::test]
async fn uploads_become_stream_ids_items_and_completions() {
    let (_server, connection, mut peer) = connected().await;

    // The conformance hub's Sum: the stream id comes first, then the
    // invocation id, from one counter (as the JS client).
    let sum = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<i64>("Sum", (upload(stream::iter([1, 2, 3])),))
                .await
        }
    });
    assert_eq!(
        peer.recv_non_ping().await,
        Some(
            json!({"type": 1, "invocationId": "1", "target": "Sum", "arguments": [], "streamIds": ["0"]})
        )
    );
    for n in 1..=3 {
        assert_eq!(
            peer.recv_non_ping().await,
            Some(json!({"type": 2, "invocationId": "0", "item": n}))
        );
    }
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "0"}))
    );
    peer.send_json(json!({"type": 3, "invocationId": "1", "result": 6}))
        .await;
    assert_eq!(sum.await.unwrap().unwrap(), 6);

    // Stream arguments are cut out of `arguments`, in order.
    let mixed = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<()>(
                    "Mixed",
                    (
                        "a",
                        upload(stream::iter(["x"])),
                        5,
                        try_upload(stream::iter([Ok(1), Err("bad item")])),
                    ),
                )
                .await
        }
    });
    assert_eq!(
        peer.recv_non_ping().await,
        Some(
            json!({"type": 1, "invocationId": "4", "target": "Mixed", "arguments": ["a", 5], "streamIds": ["2", "3"]})
        )
    );
    let mut rest = Vec::new();
    for _ in 0..4 {
        rest.push(peer.recv_non_ping().await.unwrap());
    }
    // Two uploads interleave; each is in order.
    let of = |id: &str| -> Vec<serde_json::Value> {
        rest.iter()
            .filter(|r| r["invocationId"] == id)
            .cloned()
            .collect()
    };
    assert_eq!(
        of("2"),
        vec![
            json!({"type": 2, "invocationId": "2", "item": "x"}),
            json!({"type": 3, "invocationId": "2"})
        ]
    );
    assert_eq!(
        of("3"),
        vec![
            json!({"type": 2, "invocationId": "3", "item": 1}),
            json!({"type": 3, "invocationId": "3", "error": "bad item"})
        ]
    );
    peer.send_json(json!({"type": 3, "invocationId": "4", "result": null}))
        .await;
    mixed.await.unwrap().unwrap();
    connection.stop().await;
}

#[tokio::test]
async fn send_and_stream_carry_uploads_too() {
    let (_server, connection, mut peer) = connected().await;

    connection
        .send("Collect", (upload(stream::iter([true, false])),))
        .await
        .unwrap();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 1, "target": "Collect", "arguments": [], "streamIds": ["0"]}))
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 2, "invocationId": "0", "item": true}))
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 2, "invocationId": "0", "item": false}))
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "0"}))
    );

    let mut doubled = connection
        .stream::<i64>("Double", (upload(stream::iter([4])),))
        .unwrap();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(
            json!({"type": 4, "invocationId": "2", "target": "Double", "arguments": [], "streamIds": ["1"]})
        )
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 2, "invocationId": "1", "item": 4}))
    );
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "1"}))
    );
    peer.send_json(json!({"type": 2, "invocationId": "2", "item": 8}))
        .await;
    peer.send_json(json!({"type": 3, "invocationId": "2"}))
        .await;
    assert_eq!(next(&mut doubled).await.unwrap().unwrap(), 8);
    assert!(next(&mut doubled).await.is_none());
    connection.stop().await;
}

#[tokio::test]
async fn uploads_stop_when_the_server_answers_or_the_caller_gives_up() {
    let (_server, connection, mut peer) = connected().await;

    // The server answers before the upload ends: the upload stops without
    // a Completion, even for an endless source.
    let endless = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<i64>("TakeTen", (upload(stream::repeat(1)),))
                .await
        }
    });
    assert_eq!(
        peer.recv_non_ping().await.unwrap()["streamIds"],
        json!(["0"])
    );
    for _ in 0..10 {
        assert_eq!(
            peer.recv_non_ping().await,
            Some(json!({"type": 2, "invocationId": "0", "item": 1}))
        );
    }
    peer.send_json(json!({"type": 3, "invocationId": "1", "result": 10}))
        .await;
    assert_eq!(endless.await.unwrap().unwrap(), 10);
    // Items already queued may still arrive; then nothing more for "0".
    let marker = tokio::spawn({
        let connection = connection.clone();
        async move { connection.send("Marker", ()).await }
    });
    loop {
        let record = peer.recv_non_ping().await.unwrap();
        if record["type"] == 1 {
            assert_eq!(record["target"], "Marker");
            break;
        }
        assert_eq!(record, json!({"type": 2, "invocationId": "0", "item": 1}));
    }
    marker.await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The caller drops the invoke future while the upload waits for items:
    // the upload ends with an error Completion so the server's stream ends.
    let (items_tx, items_rx) = mpsc::unbounded_channel::<i32>();
    let pending = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<i64>("Sum", (upload(UnboundedReceiverStream(items_rx)),))
                .await
        }
    });
    let invocation = loop {
        let record = peer.recv_non_ping().await.unwrap();
        if record["type"] == 1 {
            break record;
        }
        // At most an item the first upload had already taken from its
        // source when the answer arrived.
        assert_eq!(record, json!({"type": 2, "invocationId": "0", "item": 1}));
    };
    let stream_id = invocation["streamIds"][0].as_str().unwrap().to_owned();
    items_tx.send(5).unwrap();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 2, "invocationId": stream_id, "item": 5}))
    );
    pending.abort();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(
            json!({"type": 3, "invocationId": stream_id, "error": "The invocation was canceled by the client."})
        )
    );
    connection.stop().await;
}

#[tokio::test]
async fn messagepack_streams_and_uploads_on_the_wire() {
    let mut server = MockServer::start().await;
    let connection = HubConnection::builder(server.url("/hub"))
        .protocol(HubProtocol::MessagePack)
        .build()
        .unwrap();
    let mut peer = start_msgpack(&mut server, &connection).await;

    // StreamInvocation: [4, {}, "0", "Counter", [3, 10], []].
    let mut counter = connection.stream::<i64>("Counter", (3, 10)).unwrap();
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        cat(&[
            &[0x96, 0x04, 0x80],
            &s("0"),
            &s("Counter"),
            &[0x92, 0x03, 0x0a, 0x90]
        ])
    );
    for n in 0..3u8 {
        // StreamItem: [2, {}, "0", n].
        peer.send_msgpack(&cat(&[&[0x94, 0x02, 0x80], &s("0"), &[n]]))
            .await;
    }
    // Completion without result: [3, {}, "0", 2].
    peer.send_msgpack(&cat(&[&[0x94, 0x03, 0x80], &s("0"), &[0x02]]))
        .await;
    for n in 0..3 {
        assert_eq!(next(&mut counter).await.unwrap().unwrap(), n);
    }
    assert!(next(&mut counter).await.is_none());

    // An error Completion: [3, {}, "1", 1, "boom"]; then a cancel.
    let mut failing = connection.stream::<String>("Fails", ()).unwrap();
    peer.recv_msgpack_non_ping().await.unwrap();
    peer.send_msgpack(&cat(&[&[0x94, 0x02, 0x80], &s("1"), &s("a")]))
        .await;
    peer.send_msgpack(&cat(&[&[0x95, 0x03, 0x80], &s("1"), &[0x01], &s("boom")]))
        .await;
    assert_eq!(next(&mut failing).await.unwrap().unwrap(), "a");
    let error = next(&mut failing).await.unwrap().unwrap_err();
    assert_eq!(
        (error.kind(), error.message()),
        (HubErrorKind::Remote, "boom")
    );
    assert!(next(&mut failing).await.is_none());

    let canceled = connection.stream::<i64>("Counter", (100, 10)).unwrap();
    peer.recv_msgpack_non_ping().await.unwrap();
    drop(canceled);
    // CancelInvocation: [5, {}, "2"].
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        cat(&[&[0x93, 0x05, 0x80], &s("2")])
    );

    // Upload: [1, {}, "4", "Sum", [], ["3"]], items [2, {}, "3", n],
    // Completion [3, {}, "3", 2]; the answer [3, {}, "4", 3, 6].
    let sum = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<i64>("Sum", (upload(stream::iter([1, 2, 3])),))
                .await
        }
    });
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        cat(&[
            &[0x96, 0x01, 0x80],
            &s("4"),
            &s("Sum"),
            &[0x90, 0x91],
            &s("3")
        ])
    );
    for n in 1..=3u8 {
        assert_eq!(
            peer.recv_msgpack_non_ping().await.unwrap(),
            cat(&[&[0x94, 0x02, 0x80], &s("3"), &[n]])
        );
    }
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        cat(&[&[0x94, 0x03, 0x80], &s("3"), &[0x02]])
    );
    peer.send_msgpack(&cat(&[&[0x95, 0x03, 0x80], &s("4"), &[0x03, 0x06]]))
        .await;
    assert_eq!(sum.await.unwrap().unwrap(), 6);

    // A failed upload: Completion [3, {}, "5", 1, "nope"].
    let failed = tokio::spawn({
        let connection = connection.clone();
        async move {
            connection
                .invoke::<i64>("Sum", (try_upload(stream::iter([Err::<i32, _>("nope")])),))
                .await
        }
    });
    peer.recv_msgpack_non_ping().await.unwrap();
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        cat(&[&[0x95, 0x03, 0x80], &s("5"), &[0x01], &s("nope")])
    );
    peer.send_msgpack(&cat(&[&[0x95, 0x03, 0x80], &s("6"), &[0x01], &s("failed")]))
        .await;
    assert_eq!(
        failed.await.unwrap().unwrap_err().kind(),
        HubErrorKind::Remote
    );
    connection.stop().await;
}
