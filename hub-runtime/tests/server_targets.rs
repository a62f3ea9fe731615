//! Every target on one node over real WebSockets: who receives a send and,
//! as much, who does not — from a `HubContext` and from inside hub methods
//! (`others`, `others_in_group`) — and group membership ending with its
//! connection.
//!
//! "Did not receive" is checked without sleeping: after the send, a marker
//! goes to the connection itself, and one node queues a connection's
//! messages in the order it sends them, so the marker must be the next
//! message.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

mod server_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hub_runtime::backplane::{Backplane, EncodedMessage, LocalNode, Subscription};
use hub_runtime::protocol::Payload;
use hub_runtime::server::HubServer;
use hub_runtime::targets::Target;
use hub_runtime::{BoxFuture, CallContext, HubContext, HubError, HubErrorKind, hub, hub_client};
use serde_json::{Value, json};
use server_support::Client;

/// How long a condition on the server's state may take to hold.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the hub calls on its clients.
#[hub_client]
pub trait Inbox {
    /// A message.
    async fn receive(&self, message: String);
}

/// A hub whose methods send from the caller's point of view.
pub struct TargetsHub;

#[hub(client = Inbox)]
impl TargetsHub {
    async fn get_connection_id(&self, ctx: CallContext<Self>) -> String {
        ctx.connection_id().to_string()
    }

    async fn join(&self, ctx: CallContext<Self>, group: String) -> Result<(), HubError> {
        ctx.groups().add(ctx.connection_id(), group).await
    }

    async fn send_to_others(
        &self,
        ctx: CallContext<Self>,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().others().receive(message).await
    }

    async fn send_to_others_in_group(
        &self,
        ctx: CallContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().others_in_group(group).receive(message).await
    }
}

/// Serves `server` on 127.0.0.1 at `/hubs/test`, where
/// `server_support::Client` connects.
async fn serve(server: &HubServer<TargetsHub>) -> SocketAddr {
    let app = axum::Router::new().nest("/hubs/test", server.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn plain_server() -> HubServer<TargetsHub> {
    HubServer::builder(TargetsHub)
        .user_id_provider(server_support::users)
        .build()
}

/// A JSON client that knows its connection id.
struct Peer {
    client: Client,
    id: String,
    name: &'static str,
}

impl Peer {
    /// Connects as `user` (through the test token `user-NAME`), or
    /// anonymously; `name` labels assertion failures.
    async fn connect(addr: SocketAddr, name: &'static str, user: Option<&str>) -> Peer {
        let query = user.map_or(String::new(), |user| format!("?access_token=user-{user}"));
        let mut client = Client::connect_query(addr, &query).await;
        let id = client.invoke("id", "GetConnectionId", json!([])).await["result"]
            .as_str()
            .unwrap()
            .to_owned();
        Peer { client, id, name }
    }

    async fn invoke(&mut self, target: &str, arguments: Value) {
        let completion = self.client.invoke("call", target, arguments).await;
        assert_eq!(completion.get("error"), None, "{target}: {completion}");
    }

    async fn join(&mut self, group: &str) {
        self.invoke("Join", json!([group])).await;
    }

    /// The next message (within 5 s) must be `message`.
    async fn expect(&mut self, message: &str) {
        let record = self.client.next_message().await;
        assert_eq!(
            record,
            Some(json!({"type": 1, "target": "Receive", "arguments": [message]})),
            "{} expected {message:?}",
            self.name
        );
    }

    /// Nothing but the marker that `ctx` sends it now: whatever was sent
    /// before did not reach this connection.
    async fn expect_nothing(&mut self, ctx: &HubContext<TargetsHub>) {
        let marker = format!("marker for {}", self.name);
        ctx.clients()
            .client(&self.id)
            .receive(marker.clone())
            .await
            .unwrap();
        self.expect(&marker).await;
    }
}

/// Polls `condition` until it holds, for at most [`PATIENCE`].
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Closes `peer`'s WebSocket and waits until the server has let the
/// connection go (`remaining` connections left).
async fn disconnect(mut peer: Peer, server: &HubServer<TargetsHub>, remaining: usize) {
    peer.client.ws.close(None).await.unwrap();
    // The server answers the Close frame: read up to it.
    while peer.client.next_record().await.is_some() {}
    eventually("the server lets the connection go", || {
        server.connection_count() == remaining
    })
    .await;
}

#[tokio::test]
async fn each_target_reaches_exactly_its_connections() {
    let server = plain_server();
    let addr = serve(&server).await;
    let ctx = server.context();
    let clients = ctx.clients();
    // a, b: user alice; c: user bob; d: anonymous.
    // red = {a, b}; blue = {b, c}.
    let mut a = Peer::connect(addr, "a", Some("alice")).await;
    let mut b = Peer::connect(addr, "b", Some("alice")).await;
    let mut c = Peer::connect(addr, "c", Some("bob")).await;
    let mut d = Peer::connect(addr, "d", None).await;
    a.join("red").await;
    b.join("red").await;
    b.join("blue").await;
    c.join("blue").await;

    // clients: each listed connection once, unknown ids ignored.
    clients
        .clients([a.id.as_str(), c.id.as_str(), a.id.as_str(), "nobody"])
        .receive("clients".into())
        .await
        .unwrap();
    a.expect("clients").await;
    c.expect("clients").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    clients
        .all_except([&b.id, &d.id])
        .receive("all but b, d".into())
        .await
        .unwrap();
    a.expect("all but b, d").await;
    c.expect("all but b, d").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    // b is in both groups and gets the message once.
    clients
        .groups(&["red", "blue", "empty"])
        .receive("red or blue".into())
        .await
        .unwrap();
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect("red or blue").await;
    }
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    clients
        .group_except("blue", vec![c.id.clone()])
        .receive("blue but c".into())
        .await
        .unwrap();
    b.expect("blue but c").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    clients
        .users(vec!["alice".to_owned(), "bob".to_owned()])
        .receive("alice and bob".into())
        .await
        .unwrap();
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect("alice and bob").await;
    }
    clients
        .users(["bob"].iter())
        .receive("bob".into())
        .await
        .unwrap();
    c.expect("bob").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    // From inside hub methods: everyone but the caller.
    d.invoke("SendToOthers", json!(["from d"])).await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect("from d").await;
    }
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    // The caller's group but the caller; members of other groups and
    // non-members get nothing.
    b.invoke("SendToOthersInGroup", json!(["red", "b to red"]))
        .await;
    a.expect("b to red").await;
    c.invoke("SendToOthersInGroup", json!(["blue", "c to blue"]))
        .await;
    b.expect("c to blue").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }
    // A caller outside the group reaches all of its members.
    d.invoke("SendToOthersInGroup", json!(["red", "d to red"]))
        .await;
    a.expect("d to red").await;
    b.expect("d to red").await;
    for peer in [&mut a, &mut b, &mut c, &mut d] {
        peer.expect_nothing(&ctx).await;
    }

    // c leaves: blue is b alone, and user bob has no connection left.
    disconnect(c, &server, 3).await;
    clients.group("blue").receive("blue".into()).await.unwrap();
    b.expect("blue").await;
    clients.user("bob").receive("bob".into()).await.unwrap();
    for peer in [&mut a, &mut b, &mut d] {
        peer.expect_nothing(&ctx).await;
    }
}

/// What the registry asks of a backplane: with one, a node subscribes to a
/// group or user only while it holds a member, so the subscriptions show
/// the registry's entries from outside. No other node exists.
#[derive(Clone, Default)]
struct RecordingBackplane {
    subscribed: Arc<Mutex<Vec<Subscription>>>,
    unsubscribed: Arc<Mutex<Vec<Subscription>>>,
}

impl RecordingBackplane {
    fn subscribed(&self, subscription: &Subscription) -> bool {
        self.subscribed.lock().unwrap().contains(subscription)
    }

    fn unsubscribed(&self, subscription: &Subscription) -> bool {
        self.unsubscribed.lock().unwrap().contains(subscription)
    }
}

impl Backplane for RecordingBackplane {
    fn attach(&self, _node: LocalNode) {}

    fn publish(&self, _target: &Target, _message: &EncodedMessage) {}

    fn invoke(
        &self,
        connection: hub_runtime::ConnectionId,
        _invocation: EncodedMessage,
        _timeout: Option<Duration>,
    ) -> BoxFuture<'static, Result<Payload, HubError>> {
        Box::pin(std::future::ready(Err(HubError::with_kind(
            HubErrorKind::ConnectionNotFound,
            format!("Connection '{connection}' does not exist."),
        ))))
    }

    fn add_to_group(
        &self,
        _connection: hub_runtime::ConnectionId,
        _group: String,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_from_group(
        &self,
        _connection: hub_runtime::ConnectionId,
        _group: String,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'static, ()> {
        self.subscribed.lock().unwrap().push(subscription);
        Box::pin(std::future::ready(()))
    }

    fn unsubscribe(&self, subscription: Subscription) {
        self.unsubscribed.lock().unwrap().push(subscription);
    }
}

#[tokio::test]
async fn group_membership_ends_with_the_connection() {
    let backplane = RecordingBackplane::default();
    let server = HubServer::builder(TargetsHub)
        .user_id_provider(server_support::users)
        .backplane(backplane.clone())
        .build();
    let addr = serve(&server).await;
    let ctx = server.context();
    let mut e = Peer::connect(addr, "e", Some("erin")).await;
    let mut f = Peer::connect(addr, "f", None).await;
    e.join("solo").await;
    e.join("shared").await;
    f.join("shared").await;
    let solo = Subscription::Group("solo".into());
    let shared = Subscription::Group("shared".into());
    assert!(backplane.subscribed(&solo) && backplane.subscribed(&shared));
    ctx.clients()
        .group("solo")
        .receive("solo".into())
        .await
        .unwrap();
    e.expect("solo").await;

    let e_id = e.id.clone();
    disconnect(e, &server, 1).await;
    // The registry dropped e's memberships with it: "solo" has no member
    // left and its entry is gone; "shared" still has f. (The user entry is
    // the last one the registry drops.)
    let erin = Subscription::User("erin".into());
    eventually("the node drops e's user", || backplane.unsubscribed(&erin)).await;
    assert!(backplane.unsubscribed(&solo));
    assert!(backplane.unsubscribed(&Subscription::Connection(e_id.as_str().into())));
    assert!(!backplane.unsubscribed(&shared));

    ctx.clients()
        .group("shared")
        .receive("shared".into())
        .await
        .unwrap();
    f.expect("shared").await;
    ctx.clients()
        .groups(["solo", "shared"])
        .receive("either".into())
        .await
        .unwrap();
    f.expect("either").await;
    f.expect_nothing(&ctx).await;

    // A group emptied that way starts afresh: its next member gets its
    // sends once, and the node subscribes again.
    f.join("solo").await;
    let solo_subscriptions = backplane
        .subscribed
        .lock()
        .unwrap()
        .iter()
        .filter(|s| **s == solo)
        .count();
    assert_eq!(solo_subscriptions, 2);
    ctx.clients()
        .group("solo")
        .receive("solo again".into())
        .await
        .unwrap();
    f.expect("solo again").await;
    f.expect_nothing(&ctx).await;
}
