//! Client results answered by a `#[hub_client]` implementation, at the wire
//! level against a hand-written peer: a failing handler, and a slow handler
//! that does not hold up the rest of the connection.

#![cfg(feature = "client")]
#![allow(clippy::unwrap_used)]

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::{MockServer, Peer};
use hub_runtime::client::HubConnection;
use hub_runtime::hub_client;
use hub_runtime::protocol::HubProtocol;
use serde_json::json;
use tokio::sync::{Notify, mpsc};

/// What the server calls on this client.
#[hub_client]
pub trait IQuestions {
    /// Fire-and-forget.
    async fn receive(&self, message: String);
    /// A client result; "slow" answers only once released.
    async fn question(&self, question: String) -> String;
}

struct Answers {
    received: mpsc::UnboundedSender<String>,
    release: Arc<Notify>,
}

impl IQuestions for Answers {
    async fn receive(&self, message: String) {
        let _ = self.received.send(message);
    }

    async fn question(&self, question: String) -> String {
        if question == "slow" {
            self.release.notified().await;
        }
        format!("answer to {question}")
    }
}

async fn start(server: &mut MockServer, connection: &HubConnection) -> Peer {
    let (started, (_, peer)) = tokio::join!(connection.start(), server.accept_connected());
    started.unwrap();
    peer
}

fn client() -> (Answers, mpsc::UnboundedReceiver<String>, Arc<Notify>) {
    let (received, receiver) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let answers = Answers {
        received,
        release: release.clone(),
    };
    (answers, receiver, release)
}

#[tokio::test]
async fn a_failing_handler_answers_with_an_error_completion() {
    let mut server = MockServer::start().await;
    let (answers, _received, _release) = client();
    let connection = HubConnection::builder(server.url("/hub"))
        .handlers(answers.into_handlers())
        .build()
        .unwrap();
    let mut peer = start(&mut server, &connection).await;

    // An argument the handler cannot bind: the server gets the error.
    peer.send_json(
        json!({"type": 1, "invocationId": "1", "target": "Question", "arguments": [42]}),
    )
    .await;
    let answer = peer.recv_non_ping().await.unwrap();
    assert_eq!(answer["type"], 3);
    assert_eq!(answer["invocationId"], "1");
    assert!(answer.get("result").is_none());
    let error = answer["error"].as_str().unwrap();
    assert!(error.starts_with("Error binding argument 0:"), "{error}");

    // The wrong number of arguments.
    peer.send_json(json!({"type": 1, "invocationId": "2", "target": "question", "arguments": []}))
        .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "2",
            "error": "Invocation provides 0 argument(s) but target expects 1."}))
    );

    // A closure handler returning an error.
    connection.on("Refuse", 0, |_| async {
        Err(hub_runtime::HubError::new("not today").into())
    });
    peer.send_json(json!({"type": 1, "invocationId": "3", "target": "Refuse", "arguments": []}))
        .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "3", "error": "not today"}))
    );

    // The handler still answers well-formed calls.
    peer.send_json(
        json!({"type": 1, "invocationId": "4", "target": "Question", "arguments": ["ok?"]}),
    )
    .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "4", "result": "answer to ok?"}))
    );
    connection.stop().await;
}

#[tokio::test]
async fn a_slow_handler_does_not_hold_up_other_messages() {
    let mut server = MockServer::start().await;
    let (answers, mut received, release) = client();
    let connection = HubConnection::builder(server.url("/hub"))
        .handlers(answers.into_handlers())
        .build()
        .unwrap();
    let mut peer = start(&mut server, &connection).await;

    peer.send_json(
        json!({"type": 1, "invocationId": "1", "target": "Question", "arguments": ["slow"]}),
    )
    .await;
    // While it waits: a fire-and-forget call, another client result, and
    // the client's own invocation all go through.
    peer.send_json(json!({"type": 1, "target": "Receive", "arguments": ["meanwhile"]}))
        .await;
    let message = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap();
    assert_eq!(message.as_deref(), Some("meanwhile"));
    peer.send_json(
        json!({"type": 1, "invocationId": "2", "target": "Question", "arguments": ["fast"]}),
    )
    .await;
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "2", "result": "answer to fast"}))
    );
    let invoke = tokio::spawn({
        let connection = connection.clone();
        async move { connection.invoke::<i64>("Add", (1, 2)).await }
    });
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 1, "invocationId": "0", "target": "Add", "arguments": [1, 2]}))
    );
    peer.send_json(json!({"type": 3, "invocationId": "0", "result": 3}))
        .await;
    assert_eq!(invoke.await.unwrap().unwrap(), 3);

    release.notify_one();
    assert_eq!(
        peer.recv_non_ping().await,
        Some(json!({"type": 3, "invocationId": "1", "result": "answer to slow"}))
    );
    connection.stop().await;
}

#[tokio::test]
async fn client_results_over_messagepack() {
    let mut server = MockServer::start().await;
    let (answers, _received, _release) = client();
    let connection = HubConnection::builder(server.url("/hub"))
        .protocol(HubProtocol::MessagePack)
        .handlers(answers.into_handlers())
        .build()
        .unwrap();
    let accept = async {
        let (_, mut peer) = server.accept().await;
        peer.handshake_msgpack().await;
        peer
    };
    let (started, mut peer) = tokio::join!(connection.start(), accept);
    started.unwrap();

    // [1, {}, "7", "Question", ["q"]] → [3, {}, "7", 3, "answer to q"].
    peer.send_msgpack(b"\x95\x01\x80\xa17\xa8Question\x91\xa1q")
        .await;
    assert_eq!(
        peer.recv_msgpack_non_ping().await.unwrap(),
        b"\x95\x03\x80\xa17\x03\xabanswer to q".to_vec()
    );
    // [1, {}, "8", "Question", [1]] → [3, {}, "8", 1, "Error binding …"].
    peer.send_msgpack(b"\x95\x01\x80\xa18\xa8Question\x91\x01")
        .await;
    let answer = peer.recv_msgpack_non_ping().await.unwrap();
    assert_eq!(&answer[..6], b"\x95\x03\x80\xa18\x01");
    let text = String::from_utf8_lossy(&answer[6..]);
    assert!(text.contains("Error binding argument 0:"), "{text}");
    connection.stop().await;
}
