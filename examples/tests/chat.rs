//! The chat example: its hub unit-tested in memory
//! (`HubServer::test_client`: no socket), and the `chat` and `rust-client`
//! binaries chatting over real sockets: over http, and over https with a
//! throwaway CA, a moderator announcing and a non-moderator refused.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use common::{PATIENCE, next, started};
use hub_examples::chat::{self, ChatMessage, IChatClient, IChatHubProxy};
use hub_runtime::HubErrorKind;
use hub_tests::tls::TestCa;
use tokio::sync::mpsc;

/// A chat client that records what it receives.
struct Inbox(mpsc::UnboundedSender<String>);

impl IChatClient for Inbox {
    async fn message_posted(&self, message: ChatMessage) {
        let _ = self.0.send(format!(
            "[{}] {}: {}",
            message.room, message.from, message.text
        ));
    }
    async fn whispered(&self, message: ChatMessage) {
        let _ = self
            .0
            .send(format!("(whisper) {}: {}", message.from, message.text));
    }
    async fn joined(&self, room: String, user: String) {
        let _ = self.0.send(format!("[{room}] {user} joined"));
    }
}

/// A test client of `hub` signed in as `user` (or a guest), and its inbox.
async fn member(
    hub: &hub_runtime::server::HubServer<chat::ChatHub>,
    user: Option<&str>,
) -> (
    hub_runtime::client::HubConnection,
    mpsc::UnboundedReceiver<String>,
) {
    member_with_token(hub, user.map(|user| format!("user-{user}"))).await
}

/// A test client of `hub` connecting with bearer `token`, and its inbox.
async fn member_with_token(
    hub: &hub_runtime::server::HubServer<chat::ChatHub>,
    token: Option<String>,
) -> (
    hub_runtime::client::HubConnection,
    mpsc::UnboundedReceiver<String>,
) {
    let (sender, inbox) = mpsc::unbounded_channel();
    let connection = started(
        hub.test_client()
            .access_token(move || token.clone())
            .handlers(Inbox(sender).into_handlers()),
    )
    .await;
    (connection, inbox)
}

#[tokio::test]
async fn rooms_users_and_guests_in_memory() {
    let hub = chat::server();
    let (ann, mut ann_inbox) = member(&hub, Some("ann")).await;
    let (bob, mut bob_inbox) = member(&hub, Some("bob")).await;
    let (guest, mut guest_inbox) = member(&hub, None).await;
    let (ann_hub, bob_hub, guest_hub) = (
        ann.hub::<IChatHubProxy>(),
        bob.hub::<IChatHubProxy>(),
        guest.hub::<IChatHubProxy>(),
    );
    assert_eq!(ann_hub.whoami().await.unwrap().as_deref(), Some("ann"));
    assert_eq!(guest_hub.whoami().await.unwrap(), None);

    ann_hub.join("rust".to_owned()).await.unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] ann joined");
    bob_hub.join("rust".to_owned()).await.unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] bob joined");
    assert_eq!(next(&mut bob_inbox).await, "[rust] bob joined");
    guest_hub.join("go".to_owned()).await.unwrap();
    assert_eq!(next(&mut guest_inbox).await, "[go] someone joined");

    // A room reaches its members only.
    ann_hub
        .post("rust".to_owned(), "hi".to_owned())
        .await
        .unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] ann: hi");
    assert_eq!(next(&mut bob_inbox).await, "[rust] ann: hi");
    // A whisper reaches the user only.
    bob_hub
        .whisper("ann".to_owned(), "psst".to_owned())
        .await
        .unwrap();
    assert_eq!(next(&mut ann_inbox).await, "(whisper) bob: psst");
    // A guest may not post: the hub's error reaches the caller.
    let refused = guest_hub
        .post("go".to_owned(), "hello".to_owned())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), HubErrorKind::Remote);
    assert!(refused.message().contains("Sign in"), "{refused}");
    // Left rooms are quiet.
    bob_hub.leave("rust".to_owned()).await.unwrap();
    ann_hub
        .post("rust".to_owned(), "still here?".to_owned())
        .await
        .unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] ann: still here?");
    assert!(bob_inbox.try_recv().is_err(), "bob left the room");
    assert!(
        guest_inbox.try_recv().is_err(),
        "the guest is in another room"
    );

    for connection in [ann, bob, guest] {
        connection.stop().await;
    }
}

#[tokio::test]
async fn only_moderators_announce_in_memory() {
    let hub = chat::server();
    let (mod_ann, mut ann_inbox) =
        member_with_token(&hub, Some("user-ann.role-moderator".into())).await;
    let (bob, mut bob_inbox) = member(&hub, Some("bob")).await;
    let (ann_hub, bob_hub) = (mod_ann.hub::<IChatHubProxy>(), bob.hub::<IChatHubProxy>());
    ann_hub.join("rust".to_owned()).await.unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] ann joined");
    bob_hub.join("rust".to_owned()).await.unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] bob joined");
    assert_eq!(next(&mut bob_inbox).await, "[rust] bob joined");

    // A moderator's announcement reaches the room.
    ann_hub
        .announce("rust".to_owned(), "be nice".to_owned())
        .await
        .unwrap();
    assert_eq!(
        next(&mut ann_inbox).await,
        "[rust] ann (moderator): be nice"
    );
    assert_eq!(
        next(&mut bob_inbox).await,
        "[rust] ann (moderator): be nice"
    );

    // Anyone else is refused before the method runs; the room hears
    // nothing and the caller's connection stays usable.
    let refused = bob_hub
        .announce("rust".to_owned(), "I am in charge".to_owned())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), HubErrorKind::Remote);
    assert!(refused.message().contains("unauthorized"), "{refused}");
    bob_hub
        .post("rust".to_owned(), "sorry".to_owned())
        .await
        .unwrap();
    assert_eq!(next(&mut ann_inbox).await, "[rust] bob: sorry");
    assert_eq!(next(&mut bob_inbox).await, "[rust] bob: sorry");
    assert_eq!(bob_hub.whoami().await.unwrap().as_deref(), Some("bob"));

    for connection in [mod_ann, bob] {
        connection.stop().await;
    }
}

#[tokio::test]
async fn a_token_that_is_not_a_user_is_refused_in_memory() {
    let hub = chat::server();
    for token in ["forged", "user-ann.admin", "user-.role-moderator"] {
        let connection = hub
            .test_client()
            .access_token(move || Some(token.to_owned()))
            .build()
            .unwrap();
        let error = tokio::time::timeout(PATIENCE, connection.start())
            .await
            .unwrap()
            .unwrap_err();
        assert!(error.message().contains("401"), "{token}: {error}");
    }
    assert_eq!(hub.connection_count(), 0);
}

/// A `rust-client` process: its stdin, and its stdout lines.
struct Terminal {
    child: std::process::Child,
    lines: std_mpsc::Receiver<String>,
}

impl Terminal {
    /// `rust-client --url URL --room lobby ARGS…` with `env` added to its
    /// environment (and `SSL_CERT_FILE` only when `env` sets it).
    fn start(url: &str, args: &[&str], env: &[(&str, &str)]) -> Terminal {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rust-client"))
            .args(["--url", url, "--room", "lobby"])
            .args(args)
            .env_remove("SSL_CERT_FILE")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, lines) = std_mpsc::channel();
        for output in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines() {
                    let Ok(line) = line else { break };
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Terminal { child, lines }
    }

    /// Waits for a line containing `text`; returns the lines printed
    /// before it.
    fn expect(&self, text: &str) -> Vec<String> {
        self.expect_line(text).0
    }

    /// Waits for a line containing `text`; returns the lines printed
    /// before it, and that line.
    fn expect_line(&self, text: &str) -> (Vec<String>, String) {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left.max(Duration::from_millis(1))) {
                Ok(line) if line.contains(text) => return (before, line),
                Ok(line) => before.push(line),
                Err(e) => panic!("rust-client never printed {text:?} (printed {before:?}): {e}"),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The client ends by itself with a failure status.
    fn exit_fails(mut self) {
        let status = self.child.wait().unwrap();
        assert!(
            !status.success(),
            "rust-client exits with a failure, not {status}"
        );
    }

    /// Closes stdin: the client leaves and exits with 0.
    fn leave(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "rust-client exited with {status}");
    }
}

#[test]
fn two_rust_clients_chat_through_the_chat_binary() {
    let server = hub_tests::ServerProcess::start(env!("CARGO_BIN_EXE_chat"), &[]);
    let url = format!("{}{}", server.base_url(), chat::HUB_PATH);
    let mut ann = Terminal::start(&url, &["--user", "ann"], &[]);
    ann.expect("in lobby as ann");
    let bob = Terminal::start(&url, &["--user", "bob"], &[]);
    bob.expect("in lobby as bob");
    ann.expect("[lobby] bob joined");
    ann.type_line("hello from ann");
    bob.expect("[lobby] ann: hello from ann");
    ann.expect("[lobby] ann: hello from ann");
    ann.leave();
    bob.leave();
    assert!(server.terminate(), "chat exits with 0 on SIGTERM");
}

#[test]
fn a_moderator_announces_over_https_through_the_chat_binary() {
    let ca = TestCa::new();
    let server = ca.start_server(env!("CARGO_BIN_EXE_chat"), &[]);
    let url = format!("{}{}", server.base_url(), chat::HUB_PATH);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca_file = ca.ca_cert_file().to_str().unwrap();

    // Without the CA the server's certificate is refused: the https is real.
    let stranger = Terminal::start(&url, &["--user", "eve"], &[]);
    stranger.expect("was refused");
    stranger.exit_fails();

    // The two ways the header documents to trust a CA: --ca-cert, SSL_CERT_FILE.
    let mut mia = Terminal::start(
        &url,
        &["--user", "mia", "--role", "moderator", "--ca-cert", ca_file],
        &[],
    );
    mia.expect("in lobby as mia");
    let mut bob = Terminal::start(&url, &["--user", "bob"], &[("SSL_CERT_FILE", ca_file)]);
    bob.expect("in lobby as bob");
    mia.expect("[lobby] bob joined");

    // A moderator's announcement reaches the room.
    mia.type_line("/announce be nice");
    bob.expect("[lobby] mia (moderator): be nice");
    mia.expect("[lobby] mia (moderator): be nice");

    // Anyone else is refused before the method runs, and stays connected:
    // the room hears bob's next post, not his announcement.
    bob.type_line("/announce I am in charge");
    let (_, refusal) = bob.expect_line("rust-client: not announced");
    assert!(
        refusal.contains("Failed to invoke 'Announce' because user is unauthorized"),
        "a non-moderator's announce is refused as unauthorized: {refusal}"
    );
    bob.type_line("sorry");
    let before = mia.expect("[lobby] bob: sorry");
    assert!(
        before.iter().all(|line| !line.contains("I am in charge")),
        "a refused announcement reaches no one: {before:?}"
    );
    bob.expect("[lobby] bob: sorry");

    mia.leave();
    bob.leave();
    assert!(server.terminate(), "chat exits with 0 on SIGTERM");
}
