//! The Rust client's streams against the `conformance-server` binary over
//! real sockets, with JSON and with MessagePack, over WebSockets,
//! Server-Sent Events and Long Polling: `Counter` (a server stream, read to
//! its end and canceled early), `Sum` (an upload stream) and `AskClient` (a
//! client result) while a stream is running. Every connection is checked to
//! be on the transport its test is about.
//!
//! Whether the server really stops producing a canceled `Counter` is seen
//! on the wire: the client talks to the server through a TCP relay that
//! counts the StreamItems the server sends.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{StreamExt, stream};
use hub_runtime::HubErrorKind;
use hub_runtime::client::{HubStream, try_upload};
use hub_runtime::protocol::HubProtocol;
use hub_runtime::proxy::ItemStream;
use hub_tests::conformance::{ConformanceConnection, PATIENCE, within};
use hub_tests::relay::TcpRelay;
use hub_tests::route::{self, assert_route};
use hub_tests::{over_http_transports, over_https, over_websockets};
const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

async fn connect(url: &str, protocol: HubProtocol) -> ConformanceConnection {
    let client = ConformanceConnection::new(route::builder(url, protocol), "rusty").unwrap();
    client.start().await.unwrap();
    assert_route(&client.connection);
    client
}

/// The next item of a typed stream, within [`PATIENCE`].
async fn next_item<T: serde::de::DeserializeOwned>(
    stream: &mut ItemStream<T>,
) -> Option<Result<T, hub_runtime::HubError>> {
    within("a stream item", stream.next()).await
}

async fn next<T: serde::de::DeserializeOwned>(
    stream: &mut HubStream<T>,
) -> Option<Result<T, hub_runtime::HubError>> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("no stream item in time")
}

/// The bytes that start a server message of type `message_type` (2: a
/// StreamItem, 3: a Completion) for invocation `id`: `{"type":N,
/// "invocationId":"id"` in JSON, `[N, {}, "id", …]` in MessagePack (an
/// array of 4: an item, or a Completion without a result, as a canceled
/// stream's).
fn message_marker(protocol: HubProtocol, message_type: u8, id: &str) -> Vec<u8> {
    match protocol {
        HubProtocol::Json => {
            format!("{{\"type\":{message_type},\"invocationId\":\"{id}\"").into_bytes()
        }
        HubProtocol::MessagePack => {
            let mut marker = vec![0x94, message_type, 0x80, 0xa0 | id.len() as u8];
            marker.extend_from_slice(id.as_bytes());
            marker
        }
    }
}

async fn counter_to_the_end(protocol: HubProtocol) {
    let server = route::start_server(SERVER, &[]);
    let url = format!("{}/hubs/test", server.base_url());
    let client = connect(&url, protocol).await;

    let mut counter = client.hub.counter(5, 10).unwrap();
    let mut seen = Vec::new();
    while let Some(item) = next_item(&mut counter).await {
        seen.push(item.unwrap());
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);

    // Many items without delay: all of them, in order, through the
    // per-stream buffers of both sides (more than the client's 1024).
    let mut fast = client.hub.counter(3_000, 0).unwrap();
    let mut expected = 0;
    while let Some(item) = next_item(&mut fast).await {
        assert_eq!(item.unwrap(), expected);
        expected += 1;
    }
    assert_eq!(expected, 3_000);

    // An empty stream ends at once.
    let mut empty = client.hub.counter(0, 0).unwrap();
    assert!(next_item(&mut empty).await.is_none());

    // The wrong kind of call, which only the untyped API can make: the
    // server's error ends the stream.
    let mut wrong = client.connection.stream::<String>("Echo", ("x",)).unwrap();
    let error = next(&mut wrong).await.unwrap().unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);
    assert!(next(&mut wrong).await.is_none());
    client.stop().await;
}

async fn counter_canceled_early(protocol: HubProtocol) {
    let server = route::start_server(SERVER, &[]);
    // Keeps every byte the server sends, on every TCP connection (the
    // HTTP transports open one per request). WebSocket frames from a
    // server are not masked, and event streams and poll responses carry
    // the hub messages as they are, so the messages can be counted there.
    let tap = TcpRelay::builder_for(server.base_url())
        .record_from_server()
        .start()
        .await;
    let client = connect(&tap.hub_url(), protocol).await;
    let connection = &client.connection;

    // The untyped `stream`, for `HubStream`'s `invocation_id()` (which the
    // wire check needs) and `cancel()`.
    let mut counter = connection.stream::<i64>("Counter", (10_000, 20)).unwrap();
    let id = counter.invocation_id().unwrap().to_owned();
    for expected in 0..3 {
        assert_eq!(next(&mut counter).await.unwrap().unwrap(), expected);
    }
    drop(counter);

    // The server stops producing: once it has ended the stream with its
    // Completion (after which it sends no item of it), no more items come
    // (at 20 ms apart, a running Counter would send about 50 in a second).
    let marker = message_marker(protocol, 2, &id);
    let completion = message_marker(protocol, 3, &id);
    within("the canceled stream's Completion", async {
        while tap.count_from_server(&completion) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let after_cancel = tap.count_from_server(&marker);
    // The three items read went through the tap: the count sees this
    // transport's framing, so its staying put below means something.
    assert!(after_cancel >= 3, "the tap saw {after_cancel} items");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        tap.count_from_server(&marker),
        after_cancel,
        "items kept coming"
    );
    assert!(
        after_cancel < 100,
        "{after_cancel} items for a canceled stream"
    );

    // The connection is fine, and so is the next stream.
    let echoed = within("Echo", client.hub.echo("after".to_owned())).await;
    assert_eq!(echoed.unwrap(), "after");
    let mut again = connection.stream::<i64>("Counter", (2, 0)).unwrap();
    assert_eq!(next(&mut again).await.unwrap().unwrap(), 0);
    again.cancel();
    assert!(next(&mut again).await.is_none());
    client.stop().await;
}

async fn sum(protocol: HubProtocol) {
    let server = route::start_server(SERVER, &[]);
    let url = format!("{}/hubs/test", server.base_url());
    let client = connect(&url, protocol).await;
    let hub = &client.hub;

    let total = within("Sum", hub.sum(stream::iter(1..=100_i64))).await;
    assert_eq!(total.unwrap(), 5050);

    // An empty upload, and a large one (more than any per-stream buffer).
    let empty = within("Sum", hub.sum(stream::iter(Vec::<i64>::new()))).await;
    assert_eq!(empty.unwrap(), 0);
    let large = within("Sum", hub.sum(stream::iter(0..10_000_i64))).await;
    assert_eq!(large.unwrap(), 49_995_000);

    // Two uploads at once on one connection at the default parallel-invocation
    // limit of 1: upload calls take no invocation slot, as in ASP.NET Core,
    // so the second cannot stall the first.
    let (first, second) = within(
        "two Sums",
        futures_util::future::join(
            hub.sum(stream::iter(0..1000_i64)),
            hub.sum(stream::iter(0..2000_i64)),
        ),
    )
    .await;
    assert_eq!(first.unwrap(), 499_500);
    assert_eq!(second.unwrap(), 1_999_000);

    // 64-bit values.
    let big = within("Sum", hub.sum(stream::iter([i64::MAX - 1, 1, -5, 5]))).await;
    assert_eq!(big.unwrap(), i64::MAX);

    // Items arriving over time.
    let slow = stream::iter(1..=5_i64).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n
    });
    let total = within("Sum", hub.sum(slow)).await;
    assert_eq!(total.unwrap(), 15);

    // An upload that fails, which only the untyped `try_upload` can send:
    // the server's Sum fails with it.
    let failing = try_upload(stream::iter([Ok(1_i64), Err("the sensor broke")]));
    let error = within("Sum", client.connection.invoke::<i64>("Sum", (failing,)))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Remote);

    // The connection is fine afterwards.
    assert_eq!(within("Add", hub.add(2, 3)).await.unwrap(), 5);
    client.stop().await;
}

async fn ask_client_during_a_stream(protocol: HubProtocol) {
    let server = route::start_server(SERVER, &[]);
    let url = format!("{}/hubs/test", server.base_url());
    let client = connect(&url, protocol).await;
    let hub = &client.hub;

    let answer = within("AskClient", hub.ask_client("ready?".to_owned())).await;
    assert_eq!(answer.unwrap(), "rusty answers ready?");

    // A question whose handler waits: a stream still flows (streams do not
    // count against the server's one-invocation-at-a-time limit, which the
    // waiting AskClient holds).
    let waiting = tokio::spawn(hub.ask_client("wait".to_owned()));
    let mut counter = hub.counter(5, 10).unwrap();
    let mut seen = Vec::new();
    while let Some(item) = next_item(&mut counter).await {
        seen.push(item.unwrap());
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    assert!(!waiting.is_finished());
    client.release.notify_one();
    let answer = within("the waiting AskClient", waiting).await.unwrap();
    assert_eq!(answer.unwrap(), "rusty answers wait");
    let other = within("AskClient", hub.ask_client("other".to_owned())).await;
    assert_eq!(other.unwrap(), "rusty answers other");
    client.stop().await;
}

over_websockets!(
    counter_to_the_end,
    counter_canceled_early,
    sum,
    ask_client_during_a_stream,
);

over_http_transports!(
    counter_to_the_end,
    counter_canceled_early,
    sum,
    ask_client_during_a_stream,
);

// The scenarios that count bytes on the wire need plaintext and stay above.
over_https!(counter_to_the_end, sum, ask_client_during_a_stream);
