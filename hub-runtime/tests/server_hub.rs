//! Handshake, dispatch, error texts, fan-out and client results over real
//! sockets.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::time::Duration;

use futures_util::SinkExt;
use hub_runtime::server::HubOptions;
use serde_json::json;
use server_support::*;
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

async fn raw(server: &TestServer) -> Client {
    let ws = open(server.addr, "").await.unwrap();
    Client::empty_with(ws)
}

#[tokio::test]
async fn handshake_errors_and_timeout() {
    let server = start(HubOptions {
        handshake_timeout: Duration::from_millis(300),
        ..HubOptions::default()
    })
    .await;

    let mut client = raw(&server).await;
    client
        .send_raw("{\"protocol\":\"xml\",\"version\":1}\u{1e}")
        .await;
    assert_eq!(
        client.next_record().await,
        Some(json!({"error": "The protocol 'xml' is not supported."}))
    );
    assert_eq!(client.next_record().await, None);

    let mut client = raw(&server).await;
    client
        .send_raw("{\"protocol\":\"json\",\"version\":3}\u{1e}")
        .await;
    assert_eq!(
        client.next_record().await,
        Some(json!({"error": "The server does not support version 3 of the 'json' protocol."}))
    );

    let mut client = raw(&server).await;
    client.send_raw("not json\u{1e}").await;
    assert_eq!(
        client.next_record().await,
        Some(json!({"error": "An unexpected error occurred during connection handshake."}))
    );

    let mut client = raw(&server).await;
    assert_eq!(
        client.next_record().await,
        Some(json!({"error": "Handshake was canceled."}))
    );
    assert_eq!(client.next_record().await, None);
}

#[tokio::test]
async fn handshake_split_and_merged() {
    let server = start(HubOptions::default()).await;
    // Handshake and first invocation in one frame.
    let mut client = raw(&server).await;
    client
        .send_raw("{\"protocol\":\"json\",\"version\":1}\u{1e}{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"hi\"]}\u{1e}")
        .await;
    assert_eq!(client.next_record().await, Some(json!({})));
    assert_eq!(
        client.next_message().await,
        Some(json!({"type":3,"invocationId":"1","result":"hi"}))
    );

    // Handshake split across frames, then a record split across frames.
    let mut client = raw(&server).await;
    client.send_raw("{\"protocol\":\"js").await;
    client.send_raw("on\",\"version\":1}\u{1e}").await;
    assert_eq!(client.next_record().await, Some(json!({})));
    client
        .send_raw("{\"type\":1,\"invocationId\":\"2\",\"tar")
        .await;
    client
        .send_raw("get\":\"add\",\"arguments\":[2,3]}\u{1e}")
        .await;
    assert_eq!(
        client.next_message().await,
        Some(json!({"type":3,"invocationId":"2","result":5}))
    );
}

#[tokio::test]
async fn invocations_and_error_texts() {
    let server = start(HubOptions::default()).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.invoke("1", "Echo", json!(["x"])).await,
        json!({"type":3,"invocationId":"1","result":"x"})
    );
    assert_eq!(
        c.invoke("2", "void", json!([])).await,
        json!({"type":3,"invocationId":"2","result":null})
    );
    assert_eq!(
        c.invoke("3", "Nope", json!([])).await["error"],
        "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
    );
    assert_eq!(
        c.invoke("4", "Add", json!([1])).await["error"],
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        c.invoke("5", "Add", json!([1, "x"])).await["error"],
        "Failed to invoke 'Add' due to an error on the server."
    );
    assert_eq!(
        c.invoke("6", "Fail", json!(["bad input"])).await["error"],
        "An unexpected error occurred invoking 'Fail' on the server. HubException: bad input"
    );
    assert_eq!(
        c.invoke("7", "Panic", json!([])).await["error"],
        "An unexpected error occurred invoking 'Panic' on the server."
    );
    // Fire-and-forget: nothing back, ever, even on errors.
    c.send(json!({"type":1,"target":"Echo","arguments":["x"]}))
        .await;
    c.send(json!({"type":1,"target":"Nope","arguments":[]}))
        .await;
    c.send(json!({"type":1,"target":"Fail","arguments":["x"]}))
        .await;
    c.expect_nothing(QUIET).await;
    // Streaming invocation of a unary method.
    c.send(json!({"type":4,"invocationId":"8","target":"Echo","arguments":["x"]}))
        .await;
    assert_eq!(
        c.next_message().await.unwrap()["error"],
        "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
    );
    // Still up.
    assert_eq!(c.invoke("9", "Add", json!([40, 2])).await["result"], 42);
}

#[tokio::test]
async fn detailed_errors() {
    let server = start(HubOptions {
        enable_detailed_errors: true,
        ..HubOptions::default()
    })
    .await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(
        c.invoke("1", "Add", json!([1])).await["error"],
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
    );
}

#[tokio::test]
async fn broadcast_targets() {
    let server = start(HubOptions::default()).await;
    let mut a = Client::connect(server.addr).await;
    let mut b = Client::connect(server.addr).await;
    let mut c = Client::connect(server.addr).await;
    let receive = |m: &str| json!({"type":1,"target":"Receive","arguments":[m]});

    a.invoke("1", "Broadcast", json!(["all"])).await;
    assert_eq!(a.next_message().await, Some(receive("all")));
    assert_eq!(b.next_message().await, Some(receive("all")));
    assert_eq!(c.next_message().await, Some(receive("all")));

    a.invoke("2", "SendToOthers", json!(["others"])).await;
    assert_eq!(b.next_message().await, Some(receive("others")));
    assert_eq!(c.next_message().await, Some(receive("others")));
    a.expect_nothing(QUIET).await;

    let b_id = b.invoke("1", "GetConnectionId", json!([])).await["result"].clone();
    a.invoke("3", "SendToConnection", json!([b_id, "direct"]))
        .await;
    assert_eq!(b.next_message().await, Some(receive("direct")));
    c.expect_nothing(QUIET).await;

    // Groups: join, send, leave, send again.
    b.invoke("2", "JoinGroup", json!(["g"])).await;
    c.invoke("1", "JoinGroup", json!(["g"])).await;
    a.invoke("4", "SendToGroup", json!(["g", "g1"])).await;
    assert_eq!(b.next_message().await, Some(receive("g1")));
    assert_eq!(c.next_message().await, Some(receive("g1")));
    c.invoke("2", "LeaveGroup", json!(["g"])).await;
    a.invoke("5", "SendToGroup", json!(["g", "g2"])).await;
    assert_eq!(b.next_message().await, Some(receive("g2")));
    c.expect_nothing(QUIET).await;
    a.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn users_by_access_token() {
    let server = start(HubOptions::default()).await;
    let mut ann1 = Client::connect_query(server.addr, "?access_token=user-ann").await;
    let mut ann2 = Client::connect_query(server.addr, "?access_token=user-ann").await;
    let mut bob = Client::connect_query(server.addr, "?access_token=user-bob").await;
    let mut anon = Client::connect(server.addr).await;
    assert_eq!(ann1.invoke("1", "Whoami", json!([])).await["result"], "ann");
    assert_eq!(
        anon.invoke("1", "Whoami", json!([])).await["result"],
        serde_json::Value::Null
    );
    bob.invoke("1", "SendToUser", json!(["ann", "hi ann"]))
        .await;
    let receive = json!({"type":1,"target":"Receive","arguments":["hi ann"]});
    assert_eq!(ann1.next_message().await, Some(receive.clone()));
    assert_eq!(ann2.next_message().await, Some(receive));
    bob.expect_nothing(QUIET).await;
    anon.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn client_results() {
    let server = start(HubOptions {
        client_result_timeout: Some(Duration::from_millis(500)),
        ..HubOptions::default()
    })
    .await;
    let mut c = Client::connect(server.addr).await;
    let id = c.invoke("1", "GetConnectionId", json!([])).await["result"]
        .as_str()
        .unwrap()
        .to_owned();
    let context = server.hub.context();

    // Answer.
    let ctx = context.clone();
    let cid = id.clone();
    let task = tokio::spawn(async move {
        ctx.clients()
            .client(cid)
            .invoke::<String>(
                "Question",
                vec![hub_runtime::protocol::Payload::from_value("q?")],
            )
            .await
    });
    let request = c.next_message().await.unwrap();
    assert_eq!(request["target"], "Question");
    assert_eq!(request["arguments"], json!(["q?"]));
    let inv = request["invocationId"].as_str().unwrap().to_owned();
    c.send(json!({"type":3,"invocationId":inv,"result":"answer"}))
        .await;
    assert_eq!(task.await.unwrap().unwrap(), "answer");

    // Error.
    let ctx = context.clone();
    let cid = id.clone();
    let task = tokio::spawn(async move {
        ctx.clients()
            .client(cid)
            .invoke::<String>("Question", vec![])
            .await
    });
    let inv = c.next_message().await.unwrap()["invocationId"]
        .as_str()
        .unwrap()
        .to_owned();
    c.send(json!({"type":3,"invocationId":inv,"error":"Client didn't provide a result."}))
        .await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), hub_runtime::HubErrorKind::Remote);
    assert_eq!(error.message(), "Client didn't provide a result.");

    // Timeout.
    let error = context
        .clients()
        .client(id.clone())
        .invoke::<String>("Question", vec![])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), hub_runtime::HubErrorKind::Timeout);
    let _ = c.next_message().await;

    // From a hub method, with the default limit of one parallel invocation:
    // the read loop must still read the answer.
    c.send(json!({"type":1,"invocationId":"2","target":"AskClient","arguments":["why?"]}))
        .await;
    let request = c.next_message().await.unwrap();
    assert_eq!(request["target"], "Question");
    // Another invocation while AskClient waits runs in the freed slot.
    assert_eq!(
        c.invoke("3", "Echo", json!(["meanwhile"])).await["result"],
        "meanwhile"
    );
    c.send(json!({"type":3,"invocationId":request["invocationId"],"result":"because"}))
        .await;
    assert_eq!(
        c.next_message().await,
        Some(json!({"type":3,"invocationId":"2","result":"because"}))
    );

    // Disconnect while waiting.
    let ctx = context.clone();
    let task = tokio::spawn(async move {
        ctx.clients()
            .client(id)
            .invoke::<String>("Question", vec![])
            .await
    });
    let _ = c.next_message().await.unwrap();
    c.ws.send(Message::Close(None)).await.unwrap();
    drop(c);
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), hub_runtime::HubErrorKind::ConnectionClosed);

    // Unknown connection.
    let error = context
        .clients()
        .client("nope")
        .invoke::<String>("Question", vec![])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), hub_runtime::HubErrorKind::ConnectionNotFound);
}
