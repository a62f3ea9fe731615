//! Stateful reconnect on the server, with a hand-driven WebSocket client:
//! negotiate, resume with the same token, Sequence first, replay, duplicate
//! dropping, Acks, groups and user kept, the replay buffer's bound, cleanup
//! after the disconnect timeout.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::time::Duration;

use hub_runtime::server::HubOptions;
use serde_json::{Value, json};
use server_support::*;

fn options() -> HubOptions {
    HubOptions {
        allow_stateful_reconnects: true,
        disconnect_timeout: Duration::from_secs(2),
        ..HubOptions::default()
    }
}

/// Negotiates with `useStatefulReconnect=true`; returns the response.
async fn negotiate_stateful(server: &TestServer) -> Value {
    negotiate(server.addr, "?negotiateVersion=1&useStatefulReconnect=true").await
}

/// Opens the WebSocket of `token` and completes a handshake of `version`.
async fn connect(server: &TestServer, token: &str, version: u8) -> Client {
    let ws = open(server.addr, &format!("?id={token}")).await.unwrap();
    let mut client = Client::empty_with(ws);
    client
        .send_raw(&format!(
            "{{\"protocol\":\"json\",\"version\":{version}}}\u{1e}"
        ))
        .await;
    assert_eq!(client.next_record().await, Some(json!({})));
    client
}

/// Resumes `token` on a new WebSocket (no handshake).
async fn resume(server: &TestServer, token: &str) -> Client {
    let ws = open(server.addr, &format!("?id={token}")).await.unwrap();
    Client::empty_with(ws)
}

/// Waits (bounded) until the server holds at most `count` connections.
async fn wait_for_connections(server: &TestServer, count: usize) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while server.hub.connection_count() > count {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("still {} connections", server.hub.connection_count()));
}

/// `token` can no longer be resumed: its WebSocket is refused with 404.
async fn assert_gone(server: &TestServer, token: &str) {
    let error = open(server.addr, &format!("?id={token}"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
}

/// The next record that is neither a Ping nor an Ack.
async fn next_non_control(client: &mut Client) -> Value {
    loop {
        let record = client.next_record().await.expect("connection open");
        if record["type"] != 6 && record["type"] != 8 {
            return record;
        }
    }
}

#[tokio::test]
async fn negotiate_turns_it_on_only_when_both_sides_want_it() {
    let server = start(options()).await;
    assert_eq!(
        negotiate_stateful(&server).await["useStatefulReconnect"],
        true
    );
    let plain = negotiate(server.addr, "?negotiateVersion=1").await;
    assert!(plain.get("useStatefulReconnect").is_none());
    let off = start(HubOptions::default()).await;
    assert!(
        negotiate_stateful(&off)
            .await
            .get("useStatefulReconnect")
            .is_none()
    );
}

#[tokio::test]
async fn a_dropped_socket_resumes_with_nothing_lost_or_duplicated() {
    let server = start(options()).await;
    let token = negotiate_stateful(&server).await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut client = connect(&server, &token, 2).await;
    // Client message 1; server message 1 (its Completion).
    let joined = client.invoke("1", "JoinGroup", json!(["g"])).await;
    assert_eq!(joined["type"], 3);

    // The socket drops without a Close frame.
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.hub.connection_count(), 1, "the connection waits");

    // Meanwhile the group gets a message: server message 2, buffered.
    let mut other = Client::connect(server.addr).await;
    other
        .invoke("x", "SendToGroup", json!(["g", "while away"]))
        .await;

    // Resume: our Sequence (nothing of ours was acknowledged: 1) and the
    // replay of message 1, which the server must drop as a duplicate.
    let mut client = resume(&server, &token).await;
    client.send(json!({"type": 9, "sequenceId": 1})).await;
    client
        .send(json!({"type": 1, "invocationId": "1", "target": "JoinGroup", "arguments": ["g"]}))
        .await;

    // The server starts with its Sequence, then replays 1 and 2 in order.
    let first = client.next_record().await.unwrap();
    assert_eq!(first, json!({"type": 9, "sequenceId": 1}));
    let replayed = next_non_control(&mut client).await;
    assert_eq!(
        (replayed["type"].clone(), replayed["invocationId"].clone()),
        (json!(3), json!("1"))
    );
    let buffered = next_non_control(&mut client).await;
    assert_eq!(buffered["target"], "Receive");
    assert_eq!(buffered["arguments"], json!(["while away"]));

    // The duplicate JoinGroup got no second Completion: the next one is
    // Echo's. Group membership survived the resume.
    let echoed = client.invoke("2", "Echo", json!(["after"])).await;
    assert_eq!(echoed["result"], "after");
    // (The replay ends with an Ack of what the server had processed.)
    assert!(
        client
            .others
            .iter()
            .all(|m| m == &json!({"type": 8, "sequenceId": 1})),
        "unexpected: {:?}",
        client.others
    );
    client.others.clear();
    other.invoke("y", "SendToGroup", json!(["g", "back"])).await;
    let back = next_non_control(&mut client).await;
    assert_eq!(back["arguments"], json!(["back"]));

    // The server acknowledges what it processed (JoinGroup, Echo: 2).
    let ack = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let record = client.next_record().await.unwrap();
            if record["type"] == 8 {
                return record;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(ack["sequenceId"], 2);

    // A Sequence beyond what the server received breaks the connection.
    drop(client);
    let mut client = resume(&server, &token).await;
    client.send(json!({"type": 9, "sequenceId": 9})).await;
    let close = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match client.next_record().await {
                Some(record) if record["type"] == 7 => return Some(record),
                Some(_) => {}
                None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert!(close.is_some());
}

#[tokio::test]
async fn a_client_that_stays_away_is_cleaned_up() {
    let server = start(options()).await;
    let token = negotiate_stateful(&server).await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = connect(&server, &token, 2).await;
    drop(client);
    wait_for_connections(&server, 0).await;
    assert_gone(&server, &token).await;
}

#[tokio::test]
async fn without_version_2_or_after_a_clean_close_there_is_no_resume() {
    let server = start(options()).await;
    // Handshake version 1: stateful reconnect stays off.
    let token = negotiate_stateful(&server).await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let client = connect(&server, &token, 1).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_gone(&server, &token).await;

    // A WebSocket Close frame is a clean end.
    let token = negotiate_stateful(&server).await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut client = connect(&server, &token, 2).await;
    client.ws.close(None).await.unwrap();
    wait_for_connections(&server, 0).await;
    assert_gone(&server, &token).await;
}

#[tokio::test]
async fn user_membership_survives_a_resume() {
    let server = start(options()).await;
    let user = "&access_token=user-alice";
    let token = negotiate(
        server.addr,
        &format!("?negotiateVersion=1&useStatefulReconnect=true{user}"),
    )
    .await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let ws = open(server.addr, &format!("?id={token}{user}"))
        .await
        .unwrap();
    let mut client = Client::empty_with(ws);
    client
        .send_raw("{\"protocol\":\"json\",\"version\":2}\u{1e}")
        .await;
    assert_eq!(client.next_record().await, Some(json!({})));
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Sent to the user while the socket is gone: kept for the replay.
    let mut other = Client::connect(server.addr).await;
    other
        .invoke("1", "SendToUser", json!(["alice", "while away"]))
        .await;

    let ws = open(server.addr, &format!("?id={token}{user}"))
        .await
        .unwrap();
    let mut client = Client::empty_with(ws);
    client.send(json!({"type": 9, "sequenceId": 1})).await;
    assert_eq!(
        client.next_record().await,
        Some(json!({"type": 9, "sequenceId": 1}))
    );
    let replayed = next_non_control(&mut client).await;
    assert_eq!(replayed["arguments"], json!(["while away"]));

    // After the resume the connection still belongs to its user.
    other
        .invoke("2", "SendToUser", json!(["alice", "after"]))
        .await;
    let after = next_non_control(&mut client).await;
    assert_eq!(after["arguments"], json!(["after"]));
}

#[tokio::test]
async fn a_replay_buffer_past_its_bound_ends_the_connection() {
    // A small bound and queue, a long disconnect timeout: only the bound
    // can end the connection within the test.
    let server = start(HubOptions {
        stateful_reconnect_buffer_size: 4_000,
        outbound_queue_capacity: 8,
        disconnect_timeout: Duration::from_secs(60),
        ..options()
    })
    .await;
    let token = negotiate_stateful(&server).await["connectionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut client = connect(&server, &token, 2).await;
    client.invoke("1", "JoinGroup", json!(["g"])).await;
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.hub.connection_count(), 1, "the connection waits");

    // 1 KB per message: the buffer holds about four, the queue eight more.
    let mut other = Client::connect(server.addr).await;
    let blob = "z".repeat(1_000);
    let mut sent = 0;
    while server.hub.connection_count() > 1 && sent < 100 {
        other
            .invoke(&sent.to_string(), "SendToGroup", json!(["g", blob]))
            .await;
        sent += 1;
    }
    // The absent client's connection ends once its buffer and queue are
    // full, long before its disconnect timeout; nothing is left to resume.
    wait_for_connections(&server, 1).await;
    assert!(sent <= 20, "ended only after {sent} messages");
    assert_gone(&server, &token).await;
}
