//! Streams both ways, client results under the parallel-invocation limit,
//! and JSON + MessagePack clients on one hub, over real sockets against a
//! `#[hub]` hub.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use hub_runtime::hub::{Stream, UploadStream};
use hub_runtime::protocol::{HubMessage, HubProtocol, Invocation, Payload};
use hub_runtime::server::{HubOptions, HubServer};
use hub_runtime::{CallContext, HubError, HubErrorKind, hub, hub_client};
use serde_json::{Value, json};
use server_support::{Client, Ws, open};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

/// Counts how often it is serialized: a broadcast must be encoded once per
/// protocol in use, not once per connection.
#[derive(serde::Deserialize)]
pub struct Counted(u32);

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

impl serde::Serialize for Counted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, Ordering::SeqCst);
        serializer.serialize_u32(self.0)
    }
}

/// The client contract of the test hub.
#[hub_client]
pub trait StreamClient {
    /// A client result.
    async fn question(&self, question: String) -> String;
    /// A broadcast.
    async fn receive(&self, value: Counted);
}

/// What the hub saw, for the tests to check.
#[derive(Default)]
struct Seen {
    produced: AtomicUsize,
    producer_dropped: AtomicBool,
    upload_errors: Mutex<Vec<HubErrorKind>>,
    answers: Mutex<Vec<Result<String, HubErrorKind>>>,
}

struct StreamHub {
    seen: Arc<Seen>,
}

/// Sets a flag when the producer (the stream) is dropped.
struct DropFlag(Arc<Seen>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.producer_dropped.store(true, Ordering::SeqCst);
    }
}

#[hub(client = StreamClient)]
impl StreamHub {
    async fn counter(&self, count: i64, delay_ms: u64) -> impl Stream<Item = i64> {
        futures_util::stream::unfold(0_i64, move |next| async move {
            if next >= count {
                return None;
            }
            if next > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            Some((next, next + 1))
        })
    }

    /// Produces as fast as it may, forever; counts what it produced.
    async fn endless(&self) -> impl Stream<Item = u64> + use<> {
        let seen = self.seen.clone();
        seen.producer_dropped.store(false, Ordering::SeqCst);
        seen.produced.store(0, Ordering::SeqCst);
        let flag = DropFlag(seen.clone());
        futures_util::stream::unfold((0_u64, flag), |(next, flag)| async move {
            flag.0.produced.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Some((next, (next + 1, flag)))
        })
    }

    async fn fail_after(&self, count: i64) -> impl Stream<Item = Result<i64, HubError>> {
        futures_util::stream::iter((0..=count).map(move |n| {
            if n < count {
                Ok(n)
            } else {
                Err(HubError::new(format!("broke after {count}")))
            }
        }))
    }

    async fn refuse(&self, allow: bool) -> Result<impl Stream<Item = i64> + use<>, HubError> {
        if allow {
            Ok(futures_util::stream::iter(vec![7_i64]))
        } else {
            Err(HubError::new("refused"))
        }
    }

    /// A stream the macro cannot see in the type: marked by the attribute.
    #[hub_method(stream)]
    async fn letters(&self) -> Letters {
        futures_util::stream::iter(vec!["a".to_owned(), "b".to_owned()])
    }

    async fn sum(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
        let mut total = 0;
        while let Some(number) = numbers.next().await {
            match number {
                Ok(number) => total += number,
                Err(error) => {
                    self.seen.upload_errors.lock().unwrap().push(error.kind());
                    return Err(error);
                }
            }
        }
        Ok(total)
    }

    /// Takes the first item only, then returns: the stream is closed.
    async fn first(&self, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
        numbers.next().await.unwrap_or(Ok(-1))
    }

    /// Reads `b` entirely, then `a`: items of `a` pile up meanwhile.
    async fn sum_b_then_a(
        &self,
        a: UploadStream<i64>,
        b: UploadStream<i64>,
    ) -> Result<Vec<i64>, HubError> {
        let b: Vec<i64> = b.map(|n| n.unwrap()).collect().await;
        let a: Vec<i64> = a.map(|n| n.unwrap()).collect().await;
        Ok(vec![a.iter().sum(), b.iter().sum()])
    }

    /// Asks the caller before reading its upload: the answer arrives behind
    /// upload items the method has not taken yet.
    async fn ask_then_sum(
        &self,
        ctx: CallContext<Self>,
        mut numbers: UploadStream<i64>,
    ) -> Result<String, HubError> {
        let answer = ctx.clients().caller().question("first?".into()).await?;
        let mut total = 0;
        while let Some(number) = numbers.next().await {
            total += number?;
        }
        Ok(format!("{answer} {total}"))
    }

    /// Streams in and out: each uploaded word, prefixed.
    async fn prefix(
        &self,
        prefix: String,
        words: UploadStream<String>,
    ) -> impl Stream<Item = Result<String, HubError>> {
        words.map(move |word| word.map(|word| format!("{prefix}{word}")))
    }

    async fn ask(&self, ctx: CallContext<Self>, question: String) -> Result<String, HubError> {
        let answer = ctx.clients().caller().question(question).await;
        self.seen
            .answers
            .lock()
            .unwrap()
            .push(answer.clone().map_err(|e| e.kind()));
        answer
    }

    async fn echo(&self, message: String) -> String {
        message
    }

    async fn get_connection_id(&self, ctx: CallContext<Self>) -> String {
        ctx.connection_id().to_string()
    }
}

type Letters = futures_util::stream::Iter<std::vec::IntoIter<String>>;

struct Server {
    addr: std::net::SocketAddr,
    hub: HubServer<StreamHub>,
    seen: Arc<Seen>,
}

async fn start(options: HubOptions) -> Server {
    let seen = Arc::new(Seen::default());
    let hub = HubServer::builder(StreamHub { seen: seen.clone() })
        .options(options)
        .build();
    let app = axum::Router::new().nest("/hubs/test", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, hub, seen }
}

/// The next non-Ping message, skipping nothing else.
async fn next(client: &mut Client) -> Value {
    client.next_message().await.expect("connection closed")
}

/// Reads messages until the Completion of `id`, returning the items of
/// `id` before it and the Completion.
async fn stream_of(client: &mut Client, id: &str) -> (Vec<Value>, Value) {
    let mut items = Vec::new();
    loop {
        let message = next(client).await;
        assert_eq!(message["invocationId"], id, "unexpected {message}");
        match message["type"].as_u64() {
            Some(2) => items.push(message["item"].clone()),
            Some(3) => return (items, message),
            _ => panic!("unexpected {message}"),
        }
    }
}

#[tokio::test]
async fn server_stream_items_then_completion() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type":4,"invocationId":"s1","target":"Counter","arguments":[3,0]}))
        .await;
    let (items, end) = stream_of(&mut c, "s1").await;
    assert_eq!(items, vec![json!(0), json!(1), json!(2)]);
    assert_eq!(end, json!({"type":3,"invocationId":"s1"}));

    c.send(json!({"type":4,"invocationId":"s2","target":"letters","arguments":[]}))
        .await;
    let (items, end) = stream_of(&mut c, "s2").await;
    assert_eq!(items, vec![json!("a"), json!("b")]);
    assert_eq!(end, json!({"type":3,"invocationId":"s2"}));

    // Result<impl Stream, HubError>: Ok streams, Err fails before any item.
    c.send(json!({"type":4,"invocationId":"s3","target":"Refuse","arguments":[true]}))
        .await;
    assert_eq!(stream_of(&mut c, "s3").await.0, vec![json!(7)]);
    c.send(json!({"type":4,"invocationId":"s4","target":"Refuse","arguments":[false]}))
        .await;
    assert_eq!(
        stream_of(&mut c, "s4").await,
        (
            vec![],
            json!({"type":3,"invocationId":"s4","error":"An unexpected error occurred invoking 'Refuse' on the server. HubException: refused"})
        )
    );
}

#[tokio::test]
async fn stream_error_part_way_ends_with_error_completion() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type":4,"invocationId":"f","target":"FailAfter","arguments":[2]}))
        .await;
    let (items, end) = stream_of(&mut c, "f").await;
    assert_eq!(items, vec![json!(0), json!(1)]);
    assert_eq!(
        end,
        json!({"type":3,"invocationId":"f","error":"An error occurred on the server while streaming results. HubException: broke after 2"})
    );
    assert_eq!(c.invoke("1", "Echo", json!(["up"])).await["result"], "up");
}

#[tokio::test]
async fn cancel_stops_the_producer_and_still_completes() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type":4,"invocationId":"e","target":"Endless","arguments":[]}))
        .await;
    for expected in 0..3 {
        let item = next(&mut c).await;
        assert_eq!(item, json!({"type":2,"invocationId":"e","item":expected}));
    }
    c.send(json!({"type":5,"invocationId":"e"})).await;
    // Items already queued may still arrive; then the Completion, no error.
    let end = loop {
        let message = next(&mut c).await;
        if message["type"] == 3 {
            break message;
        }
        assert_eq!(message["type"], 2);
    };
    assert_eq!(end, json!({"type":3,"invocationId":"e"}));
    assert!(server.seen.producer_dropped.load(Ordering::SeqCst));
    let produced = server.seen.produced.load(Ordering::SeqCst);
    c.expect_nothing(QUIET).await;
    assert_eq!(server.seen.produced.load(Ordering::SeqCst), produced);

    // A cancel for nothing is ignored; the id can be used again.
    c.send(json!({"type":5,"invocationId":"nothing"})).await;
    c.send(json!({"type":4,"invocationId":"e","target":"Counter","arguments":[1,0]}))
        .await;
    assert_eq!(stream_of(&mut c, "e").await.0, vec![json!(0)]);
}

#[tokio::test]
async fn wrong_invocation_kinds_and_ids_in_use() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.invoke("1", "Counter", json!([3, 0])).await["error"],
        "The client attempted to invoke the streaming 'Counter' method with a non-streaming invocation."
    );
    c.send(json!({"type":4,"invocationId":"2","target":"Echo","arguments":["x"]}))
        .await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"2","error":"The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."})
    );
    // Without an id, nothing comes back.
    c.send(json!({"type":1,"target":"Counter","arguments":[3,0]}))
        .await;
    c.expect_nothing(QUIET).await;

    c.send(json!({"type":4,"invocationId":"busy","target":"Counter","arguments":[3,200]}))
        .await;
    c.send(json!({"type":4,"invocationId":"busy","target":"Counter","arguments":[1,0]}))
        .await;
    let mut error = None;
    let mut items = 0;
    loop {
        let message = next(&mut c).await;
        match (message["type"].as_u64(), message.get("error")) {
            (Some(3), Some(text)) => error = Some(text.clone()),
            (Some(3), None) => break,
            (Some(2), _) => items += 1,
            _ => panic!("unexpected {message}"),
        }
    }
    assert_eq!(
        error,
        Some(json!("Invocation ID 'busy' is already in use."))
    );
    assert_eq!(items, 3);
}

#[tokio::test]
async fn a_slow_client_slows_only_its_own_stream() {
    let server = start(HubOptions::default()).await;
    let mut slow = Client::connect(server.addr).await;
    let mut other = Client::connect(server.addr).await;
    slow.send(json!({"type":4,"invocationId":"e","target":"Endless","arguments":[]}))
        .await;
    // The slow client reads nothing: the producer must come to a halt once
    // its window and the socket buffers are full, without the connection
    // being closed as a slow consumer.
    let mut last = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = server.seen.produced.load(Ordering::SeqCst);
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.seen.produced.load(Ordering::SeqCst), last);
    assert!(!server.seen.producer_dropped.load(Ordering::SeqCst));
    // Meanwhile the server serves others.
    assert_eq!(
        other.invoke("1", "Echo", json!(["hi"])).await["result"],
        "hi"
    );
    // The slow client catches up: items in order, then cancels.
    for expected in 0..(last as u64 / 2) {
        let item = next(&mut slow).await;
        assert_eq!(item["item"], expected);
    }
    slow.send(json!({"type":5,"invocationId":"e"})).await;
    loop {
        let message = next(&mut slow).await;
        if message["type"] == 3 {
            assert_eq!(message, json!({"type":3,"invocationId":"e"}));
            break;
        }
    }
    assert!(server.seen.producer_dropped.load(Ordering::SeqCst));
}

#[tokio::test]
async fn upload_streams_end_with_completion_or_error() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(json!({"type":1,"invocationId":"1","target":"Sum","arguments":[],"streamIds":["u"]}))
        .await;
    for n in 1..=20 {
        c.send(json!({"type":2,"invocationId":"u","item":n})).await;
    }
    c.send(json!({"type":3,"invocationId":"u"})).await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"1","result":210})
    );

    c.send(json!({"type":1,"invocationId":"2","target":"Sum","arguments":[],"streamIds":["u"]}))
        .await;
    c.send(json!({"type":2,"invocationId":"u","item":1})).await;
    c.send(json!({"type":3,"invocationId":"u","error":"client gave up"}))
        .await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"2","error":"An unexpected error occurred invoking 'Sum' on the server. HubException: client gave up"})
    );

    // An item that does not bind ends the stream with an error.
    c.send(json!({"type":1,"invocationId":"3","target":"Sum","arguments":[],"streamIds":["v"]}))
        .await;
    c.send(json!({"type":2,"invocationId":"v","item":"not a number"}))
        .await;
    assert_eq!(
        next(&mut c).await["error"],
        "An unexpected error occurred invoking 'Sum' on the server."
    );
    assert_eq!(
        *server.seen.upload_errors.lock().unwrap(),
        vec![HubErrorKind::Remote, HubErrorKind::Serialization]
    );
    // Items and completions for streams that are not open are ignored.
    c.send(json!({"type":2,"invocationId":"v","item":1})).await;
    c.send(json!({"type":2,"invocationId":"nope","item":1}))
        .await;
    c.send(json!({"type":3,"invocationId":"nope"})).await;
    c.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn upload_stream_ids_count_reuse_and_no_leak() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.invoke("1", "Sum", json!([])).await["error"],
        "An unexpected error occurred invoking 'Sum' on the server. HubException: Client sent 0 stream(s), Hub method expects 1."
    );
    c.send(
        json!({"type":1,"invocationId":"2","target":"Echo","arguments":["x"],"streamIds":["a"]}),
    )
    .await;
    assert_eq!(
        next(&mut c).await["error"],
        "An unexpected error occurred invoking 'Echo' on the server. HubException: Client sent 1 stream(s), Hub method expects 0."
    );

    // "Sum" holds stream "s" open; a second invocation naming "s" is
    // refused (Sum waits for its slot, but its streams are open at once).
    c.send(json!({"type":1,"invocationId":"3","target":"Sum","arguments":[],"streamIds":["s"]}))
        .await;
    c.send(json!({"type":1,"invocationId":"4","target":"Sum","arguments":[],"streamIds":["s"]}))
        .await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"4","error":"An unexpected error occurred invoking 'Sum' on the server. HubException: Stream ID 's' is already in use."})
    );
    c.send(json!({"type":2,"invocationId":"s","item":5})).await;
    c.send(json!({"type":3,"invocationId":"s"})).await;
    assert_eq!(next(&mut c).await["result"], 5);

    // The method returns before the client completes: the stream is
    // closed, later items are ignored, and the id is free again.
    c.send(json!({"type":1,"invocationId":"5","target":"First","arguments":[],"streamIds":["f"]}))
        .await;
    c.send(json!({"type":2,"invocationId":"f","item":9})).await;
    assert_eq!(next(&mut c).await["result"], 9);
    c.send(json!({"type":2,"invocationId":"f","item":10})).await;
    c.send(json!({"type":1,"invocationId":"6","target":"Sum","arguments":[],"streamIds":["f"]}))
        .await;
    c.send(json!({"type":2,"invocationId":"f","item":1})).await;
    c.send(json!({"type":3,"invocationId":"f"})).await;
    assert_eq!(next(&mut c).await["result"], 1);

    // A connection that closes with an open upload fails it.
    c.send(json!({"type":1,"invocationId":"7","target":"Sum","arguments":[],"streamIds":["g"]}))
        .await;
    c.send(json!({"type":2,"invocationId":"g","item":1})).await;
    // (Sum holds the only invocation slot: no Echo to sync with.)
    tokio::time::sleep(QUIET).await;
    c.ws.send(Message::Close(None)).await.unwrap();
    drop(c);
    for _ in 0..50 {
        if server.seen.upload_errors.lock().unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *server.seen.upload_errors.lock().unwrap(),
        vec![HubErrorKind::ConnectionClosed]
    );
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn full_upload_buffers_do_not_deadlock_the_connection() {
    let server = start(HubOptions {
        client_result_timeout: Some(Duration::from_secs(20)),
        ..HubOptions::default()
    })
    .await;
    let mut c = Client::connect(server.addr).await;
    // 15 items of "a" (beyond its 10) before any of "b", which is read
    // first.
    c.send(json!({"type":1,"invocationId":"1","target":"SumBThenA","arguments":[],"streamIds":["a","b"]}))
        .await;
    for n in 0..15 {
        c.send(json!({"type":2,"invocationId":"a","item":n})).await;
    }
    c.send(json!({"type":3,"invocationId":"a"})).await;
    for n in 0..5 {
        c.send(json!({"type":2,"invocationId":"b","item":n})).await;
    }
    c.send(json!({"type":3,"invocationId":"b"})).await;
    assert_eq!(next(&mut c).await["result"], json!([105, 10]));

    // The method awaits a client result before reading its upload; the
    // answer comes behind 15 unread items.
    c.send(
        json!({"type":1,"invocationId":"2","target":"AskThenSum","arguments":[],"streamIds":["u"]}),
    )
    .await;
    let question = next(&mut c).await;
    assert_eq!(question["target"], "Question");
    for _ in 0..15 {
        c.send(json!({"type":2,"invocationId":"u","item":2})).await;
    }
    c.send(json!({"type":3,"invocationId":question["invocationId"],"result":"yes"}))
        .await;
    c.send(json!({"type":3,"invocationId":"u"})).await;
    assert_eq!(next(&mut c).await["result"], "yes 30");
}

#[tokio::test]
async fn streams_in_and_out_of_one_stream_invocation() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    c.send(
        json!({"type":4,"invocationId":"p","target":"Prefix","arguments":[">"],"streamIds":["w"]}),
    )
    .await;
    c.send(json!({"type":2,"invocationId":"w","item":"a"}))
        .await;
    c.send(json!({"type":2,"invocationId":"w","item":"b"}))
        .await;
    c.send(json!({"type":3,"invocationId":"w"})).await;
    let (items, end) = stream_of(&mut c, "p").await;
    assert_eq!(items, vec![json!(">a"), json!(">b")]);
    assert_eq!(end, json!({"type":3,"invocationId":"p"}));
}

#[tokio::test]
async fn client_results_under_a_limit_of_one() {
    let server = start(HubOptions {
        maximum_parallel_invocations_per_client: 1,
        client_result_timeout: Some(Duration::from_millis(500)),
        ..HubOptions::default()
    })
    .await;
    let mut c = Client::connect(server.addr).await;
    // Two hub methods wait for answers at once: each gave its slot back.
    c.send(json!({"type":1,"invocationId":"1","target":"Ask","arguments":["one"]}))
        .await;
    c.send(json!({"type":1,"invocationId":"2","target":"Ask","arguments":["two"]}))
        .await;
    let first = next(&mut c).await;
    let second = next(&mut c).await;
    assert_eq!(
        (first["arguments"].clone(), second["arguments"].clone()),
        (json!(["one"]), json!(["two"]))
    );
    // Answered in reverse order; the second also gets an error answer.
    c.send(json!({"type":3,"invocationId":second["invocationId"],"error":"no"}))
        .await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"2","error":"An unexpected error occurred invoking 'Ask' on the server. HubException: no"})
    );
    c.send(json!({"type":3,"invocationId":first["invocationId"],"result":"1!"}))
        .await;
    assert_eq!(
        next(&mut c).await,
        json!({"type":3,"invocationId":"1","result":"1!"})
    );

    // Never answered: a timeout error.
    c.send(json!({"type":1,"invocationId":"3","target":"Ask","arguments":["silence"]}))
        .await;
    let _question = next(&mut c).await;
    let timed_out = next(&mut c).await;
    assert_eq!(timed_out["invocationId"], "3");
    assert!(
        timed_out["error"]
            .as_str()
            .unwrap()
            .starts_with("An unexpected error occurred invoking 'Ask' on the server.")
    );

    // The client goes away while the hub method waits.
    c.send(json!({"type":1,"invocationId":"4","target":"Ask","arguments":["bye"]}))
        .await;
    let _question = next(&mut c).await;
    c.ws.send(Message::Close(None)).await.unwrap();
    drop(c);
    for _ in 0..50 {
        if server.seen.answers.lock().unwrap().len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *server.seen.answers.lock().unwrap(),
        vec![
            Err(HubErrorKind::Remote),
            Ok("1!".to_owned()),
            Err(HubErrorKind::Timeout),
            Err(HubErrorKind::ConnectionClosed),
        ]
    );
}

/// A MessagePack client over a raw WebSocket.
struct MsgPackClient {
    ws: Ws,
    buffer: BytesMut,
    decoder: hub_runtime::protocol::MessageDecoder,
}

impl MsgPackClient {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let mut ws = open(addr, "").await.unwrap();
        ws.send(Message::text(
            "{\"protocol\":\"messagepack\",\"version\":1}\u{1e}",
        ))
        .await
        .unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(bytes) => assert_eq!(&bytes[..], b"{}\x1e"),
            other => panic!("expected a binary handshake response, got {other:?}"),
        }
        MsgPackClient {
            ws,
            buffer: BytesMut::new(),
            decoder: HubProtocol::MessagePack.decoder(None),
        }
    }

    async fn send(&mut self, message: HubMessage) {
        let mut bytes = BytesMut::new();
        HubProtocol::MessagePack
            .encode(&message, &mut bytes)
            .unwrap();
        self.ws.send(Message::binary(bytes.freeze())).await.unwrap();
    }

    async fn next(&mut self) -> HubMessage {
        loop {
            if let Some(message) = self.decoder.decode(&mut self.buffer).unwrap() {
                if message != HubMessage::Ping {
                    return message;
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.ws.next())
                .await
                .expect("timed out")
                .unwrap()
                .unwrap();
            match frame {
                Message::Binary(bytes) => self.buffer.extend_from_slice(&bytes),
                Message::Text(_) => panic!("text frame on MessagePack"),
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn json_and_messagepack_clients_share_one_hub() {
    let server = start(HubOptions::default()).await;
    let mut json_clients = Vec::new();
    let mut msgpack_clients = Vec::new();
    for _ in 0..3 {
        json_clients.push(Client::connect(server.addr).await);
        msgpack_clients.push(MsgPackClient::connect(server.addr).await);
    }
    let id = json_clients[0]
        .invoke("1", "GetConnectionId", json!([]))
        .await["result"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(server.hub.connection_count(), 6);

    // One broadcast to six connections of two protocols: two encodings.
    SERIALIZED.store(0, Ordering::SeqCst);
    server
        .hub
        .context()
        .clients()
        .all()
        .receive(Counted(41))
        .await
        .unwrap();
    for client in &mut json_clients {
        assert_eq!(
            next(client).await,
            json!({"type":1,"target":"Receive","arguments":[41]})
        );
    }
    for client in &mut msgpack_clients {
        match client.next().await {
            HubMessage::Invocation(Invocation {
                target,
                arguments,
                invocation_id: None,
                ..
            }) => {
                assert_eq!(target, "Receive");
                assert_eq!(arguments[0].deserialize::<u32>().unwrap(), 41);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(SERIALIZED.load(Ordering::SeqCst), 2);

    // A MessagePack client streams, uploads and round-trips 64-bit values.
    let m = &mut msgpack_clients[0];
    m.send(HubMessage::StreamInvocation(
        hub_runtime::protocol::StreamInvocation {
            invocation_id: "s".into(),
            target: "Counter".into(),
            arguments: vec![Payload::from_value(2_i64), Payload::from_value(0_i64)],
            ..Default::default()
        },
    ))
    .await;
    for expected in 0..2_i64 {
        match m.next().await {
            HubMessage::StreamItem(item) => {
                assert_eq!(item.item.deserialize::<i64>().unwrap(), expected);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(m.next().await, HubMessage::Completion(c)
        if c.result == hub_runtime::protocol::CompletionResult::Void));
    m.send(HubMessage::Invocation(Invocation {
        invocation_id: Some("u".into()),
        target: "Sum".into(),
        stream_ids: vec!["0".into()],
        ..Default::default()
    }))
    .await;
    for value in [i64::MAX - 5, 2, 3] {
        m.send(HubMessage::StreamItem(hub_runtime::protocol::StreamItem {
            headers: Vec::new(),
            invocation_id: "0".into(),
            item: Payload::from_value(value),
        }))
        .await;
    }
    m.send(HubMessage::Completion(hub_runtime::protocol::Completion {
        headers: Vec::new(),
        invocation_id: "0".into(),
        result: hub_runtime::protocol::CompletionResult::Void,
    }))
    .await;
    match m.next().await {
        HubMessage::Completion(completion) => match completion.result {
            hub_runtime::protocol::CompletionResult::Value(value) => {
                assert_eq!(value.deserialize::<i64>().unwrap(), i64::MAX);
                // A 64-bit integer, as MessagePack-CSharp writes a long.
                let bytes = value.as_msgpack_bytes().unwrap();
                assert_eq!(bytes.len(), 9);
                assert!(matches!(bytes[0], 0xcf | 0xd3));
            }
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("unexpected {other:?}"),
    }
    let _ = id;
}
