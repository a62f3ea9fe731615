//! The scale-out example: one command starts Redis and two chat nodes; a
//! message posted on one node reaches a room member on the other.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use common::{next, started};
use hub_examples::chat::{ChatMessage, HUB_PATH, IChatClient, IChatHubProxy};
use hub_runtime::client::HubConnection;
use tokio::sync::mpsc;

struct Inbox(mpsc::UnboundedSender<String>);

impl IChatClient for Inbox {
    async fn message_posted(&self, message: ChatMessage) {
        let _ = self.0.send(format!("{}: {}", message.from, message.text));
    }
    async fn whispered(&self, _message: ChatMessage) {}
    async fn joined(&self, _room: String, _user: String) {}
}

#[tokio::test]
async fn a_room_spans_both_nodes() {
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_scale-out"))
        .args(["--bind", "127.0.0.1:0", "--bind2", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(launcher.stdout.take().unwrap()).lines();
    let mut urls = Vec::new();
    for number in [1, 2] {
        let line = lines.next().unwrap().unwrap();
        let prefix = format!("node {number} listening on ");
        let base = line
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{line}"));
        urls.push(format!("{base}{HUB_PATH}"));
    }

    let (sender, mut bob_inbox) = mpsc::unbounded_channel();
    let ann = started(
        HubConnection::builder(urls[0].as_str()).access_token(|| Some("user-ann".to_owned())),
    )
    .await;
    let bob = started(
        HubConnection::builder(urls[1].as_str())
            .access_token(|| Some("user-bob".to_owned()))
            .handlers(Inbox(sender).into_handlers()),
    )
    .await;
    bob.hub::<IChatHubProxy>()
        .join("lobby".to_owned())
        .await
        .unwrap();
    ann.hub::<IChatHubProxy>()
        .post("lobby".to_owned(), "across nodes".to_owned())
        .await
        .unwrap();
    assert_eq!(next(&mut bob_inbox).await, "ann: across nodes");
    ann.stop().await;
    bob.stop().await;

    let _ = Command::new("kill")
        .args(["-TERM", &launcher.id().to_string()])
        .status();
    let status = launcher.wait().unwrap();
    assert!(
        status.success(),
        "scale-out exits with 0 on SIGTERM: {status}"
    );
}
