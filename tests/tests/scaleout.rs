//! Scale-out over a real `redis-server`: two hub nodes behave as one.
//!
//! - The official JavaScript client, with its connections split across two
//!   `conformance-server --redis URL` processes: broadcast, others, one
//!   connection, groups, users, ordering, client results, and a Redis
//!   restart in the middle of the run (`tests/interop/scaleout.test.mjs`).
//! - Our Rust client against two in-process nodes, for what the
//!   conformance hub cannot show: every target of `HubContext` from one node
//!   to the other, `others_in_group` from a hub method on either node,
//!   group changes for a connection on the other node,
//!   one `PUBLISH` per hub message, and the buffer policy while Redis is
//!   away (bounded, replayed in order, drops counted).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hub_runtime::backplane::{RedisBackplane, RedisBackplaneBuilder, RedisBackplaneError};
use hub_runtime::client::HubConnection;
use hub_runtime::server::{HubServer, Unauthorized, bearer_token};
use hub_runtime::{CallContext, HubContext, HubError, HubErrorKind, hub, hub_server};
use hub_tests::conformance::{self, Callbacks, ConformanceClient as _};
use hub_tests::{RedisProcess, ServerProcess, run_scaleout_js};
use tokio::sync::mpsc;

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// The official JavaScript client across two conformance servers.

fn run_js(protocol: &str) {
    let mut redis = RedisProcess::start();
    let url = redis.url();
    let a = ServerProcess::start(SERVER, &["--redis", &url]);
    let b = ServerProcess::start(SERVER, &["--redis", &url]);
    let (passed, report) = run_scaleout_js(
        &format!("{}/hubs/test", a.base_url()),
        &format!("{}/hubs/test", b.base_url()),
        protocol,
        &mut redis,
        &[],
    );
    // Shown by the test harness when the test fails.
    #[allow(clippy::print_stdout)]
    {
        println!("{report}");
    }
    assert!(
        passed,
        "the JS client failed scale-out scenarios over {protocol}"
    );
    assert!(report.contains("# pass 8"), "expected 8 passing scenarios");
}

#[test]
fn official_js_client_across_two_servers_json() {
    run_js("json");
}

#[test]
fn official_js_client_across_two_servers_messagepack() {
    run_js("messagepack");
}

// ---------------------------------------------------------------------------
// Two in-process nodes and our Rust client.

/// The test hub's methods; it calls back the conformance hub's clients
/// ([`ConformanceClient`]).
#[hub_server]
pub trait Room {
    /// The caller's connection id.
    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String;
    /// `Receive(message)` on every member of `group` but the caller.
    async fn send_to_others_in_group(
        &self,
        ctx: &CallContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError>;
}

struct RoomHub;

#[hub(client = conformance::ConformanceClient)]
impl Room for RoomHub {
    async fn get_connection_id(&self, ctx: &CallContext<Self>) -> String {
        ctx.connection_id().to_string()
    }

    async fn send_to_others_in_group(
        &self,
        ctx: &CallContext<Self>,
        group: String,
        message: String,
    ) -> Result<(), HubError> {
        ctx.clients().others_in_group(group).receive(message).await
    }
}

fn user_from_token(request: &http::request::Parts) -> Result<Option<String>, Unauthorized> {
    Ok(bearer_token(request).and_then(|token| token.strip_prefix("user-").map(str::to_owned)))
}

struct Node {
    server: HubServer<RoomHub>,
    backplane: RedisBackplane,
    url: String,
}

impl Node {
    async fn start(builder: RedisBackplaneBuilder) -> Node {
        let backplane = builder.connect().await.unwrap();
        Node::with(backplane).await
    }

    async fn with(backplane: RedisBackplane) -> Node {
        let server = HubServer::builder(RoomHub)
            .user_id_provider(user_from_token)
            .backplane(backplane.clone())
            .build();
        let app = axum::Router::new().nest("/hub", server.router());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hub", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Node {
            server,
            backplane,
            url,
        }
    }

    fn context(&self) -> HubContext<RoomHub> {
        self.server.context()
    }
}

fn fast(redis: &RedisProcess) -> RedisBackplaneBuilder {
    RedisBackplane::builder(redis.url())
        .reconnect_delay(Duration::from_millis(50), Duration::from_millis(500))
        .health_check_interval(Duration::from_millis(200))
}

struct Peer {
    connection: HubConnection,
    hub: RoomProxy,
    inbox: mpsc::UnboundedReceiver<String>,
    id: String,
}

impl Peer {
    /// A connection answering questions as `"peer"`.
    async fn connect(node: &Node, user: Option<&str>) -> Peer {
        let (callbacks, inbox, _) = Callbacks::new("peer");
        let token = user.map(|user| format!("user-{user}"));
        let connection = HubConnection::builder(&node.url)
            .access_token(move || token.clone())
            .with_handlers(callbacks.into_handlers())
            .build()
            .unwrap();
        connection.start().await.unwrap();
        let hub = connection.hub::<RoomProxy>();
        let id = hub.get_connection_id().await.unwrap();
        Peer {
            connection,
            hub,
            inbox,
            id,
        }
    }

    async fn next(&mut self) -> String {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a message in time")
            .expect("the connection is up")
    }

    /// Everything received before a marker that `from` sends after
    /// everything else (a node's messages arrive in the order it sent them).
    async fn flush(&mut self, from: &Node) -> Vec<String> {
        let marker = format!("marker {}", self.id);
        from.context()
            .clients()
            .client(&self.id)
            .receive(marker.clone())
            .await
            .unwrap();
        let mut before = Vec::new();
        loop {
            let message = self.next().await;
            if message == marker {
                return before;
            }
            before.push(message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_target_of_one_node_reaches_the_other() {
    let redis = RedisProcess::start();
    let a = Node::start(fast(&redis)).await;
    let b = Node::start(fast(&redis)).await;
    let mut a1 = Peer::connect(&a, Some("alice")).await;
    let mut b1 = Peer::connect(&b, Some("alice")).await;
    let mut b2 = Peer::connect(&b, Some("bob")).await;
    let clients = a.context().clients();
    let groups = a.context().groups();

    clients.all().receive("all".into()).await.unwrap();
    for peer in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(peer.next().await, "all");
    }

    clients
        .all_except([&b1.id])
        .receive("all but b1".into())
        .await
        .unwrap();
    assert_eq!(a1.next().await, "all but b1");
    assert_eq!(b2.next().await, "all but b1");
    assert_eq!(b1.flush(&a).await, Vec::<String>::new());

    clients
        .clients([&a1.id, &b2.id])
        .receive("two".into())
        .await
        .unwrap();
    assert_eq!(a1.next().await, "two");
    assert_eq!(b2.next().await, "two");
    assert_eq!(b1.flush(&a).await, Vec::<String>::new());

    // Group changes for connections held by the other node, acknowledged:
    // a send right after reaches them.
    groups.add(&b1.id, "g1").await.unwrap();
    groups.add(&b1.id, "g2").await.unwrap();
    groups.add(&b2.id, "g2").await.unwrap();
    groups.add(&a1.id, "g1").await.unwrap();
    clients.group("g1").receive("g1".into()).await.unwrap();
    assert_eq!(a1.next().await, "g1");
    assert_eq!(b1.next().await, "g1");
    // A connection in both groups gets a send to both once.
    clients
        .groups(["g1", "g2"])
        .receive("g1+g2".into())
        .await
        .unwrap();
    assert_eq!(a1.next().await, "g1+g2");
    assert_eq!(b1.next().await, "g1+g2");
    assert_eq!(b2.next().await, "g1+g2");
    assert_eq!(b1.flush(&a).await, Vec::<String>::new());
    clients
        .group_except("g2", [&b2.id])
        .receive("g2 but b2".into())
        .await
        .unwrap();
    assert_eq!(b1.next().await, "g2 but b2");
    assert_eq!(b2.flush(&a).await, Vec::<String>::new());

    groups.remove(&b1.id, "g2").await.unwrap();
    clients
        .group("g2")
        .receive("g2 again".into())
        .await
        .unwrap();
    assert_eq!(b2.next().await, "g2 again");
    assert_eq!(b1.flush(&a).await, Vec::<String>::new());
    // Unknown connections are ignored, as in-process.
    groups.add("nobody", "g1").await.unwrap();

    clients.user("alice").receive("alice".into()).await.unwrap();
    assert_eq!(a1.next().await, "alice");
    assert_eq!(b1.next().await, "alice");
    clients
        .users(["alice", "bob"])
        .receive("users".into())
        .await
        .unwrap();
    for peer in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(peer.next().await, "users");
    }
    assert_eq!(b2.flush(&a).await, Vec::<String>::new());

    // A client result from a connection on the other node, and one that no
    // node holds.
    let answer = clients
        .client(&b2.id)
        .question("remote".into())
        .await
        .unwrap();
    assert_eq!(answer, "peer answers remote");
    let error = clients
        .client("nobody")
        .question("?".into())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::ConnectionNotFound);

    // The other node's connection leaves: its node stops listening for it.
    b2.connection.stop().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let error = clients
            .client(&b2.id)
            .question("gone?".into())
            .await
            .unwrap_err();
        if error.kind() == HubErrorKind::ConnectionNotFound {
            break;
        }
        // Node B may still be closing it.
        assert_eq!(error.kind(), HubErrorKind::ConnectionClosed);
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.backplane.stats().connected);
}

/// `others_in_group` from a hub method: the sender's group on both nodes,
/// without the sender (whose own node must leave it out of the local part
/// and of what it publishes), and nobody outside the group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn others_in_group_reaches_the_group_on_both_nodes_but_the_sender() {
    let redis = RedisProcess::start();
    let a = Node::start(fast(&redis)).await;
    let b = Node::start(fast(&redis)).await;
    let mut sender = Peer::connect(&a, None).await;
    let mut member_a = Peer::connect(&a, None).await;
    let mut member_b = Peer::connect(&b, None).await;
    let mut outsider_a = Peer::connect(&a, None).await;
    let mut outsider_b = Peer::connect(&b, None).await;
    let groups = a.context().groups();
    for peer in [&sender, &member_a, &member_b] {
        groups.add(&peer.id, "g").await.unwrap();
    }
    // Outsider B is in another group on the same node as a member.
    groups.add(&outsider_b.id, "h").await.unwrap();

    sender
        .hub
        .send_to_others_in_group("g".into(), "to the others in g".into())
        .await
        .unwrap();
    assert_eq!(member_a.next().await, "to the others in g");
    assert_eq!(member_b.next().await, "to the others in g");
    for peer in [
        &mut sender,
        &mut member_a,
        &mut member_b,
        &mut outsider_a,
        &mut outsider_b,
    ] {
        assert_eq!(peer.flush(&a).await, Vec::<String>::new());
    }

    // The same from node B's side: the sender there is left out too.
    member_b
        .hub
        .send_to_others_in_group("g".into(), "from b".into())
        .await
        .unwrap();
    assert_eq!(sender.next().await, "from b");
    assert_eq!(member_a.next().await, "from b");
    for peer in [
        &mut sender,
        &mut member_a,
        &mut member_b,
        &mut outsider_a,
        &mut outsider_b,
    ] {
        assert_eq!(peer.flush(&b).await, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_per_hub_message_whatever_the_fan_out() {
    let redis = RedisProcess::start();
    let a = Node::start(fast(&redis)).await;
    let b = Node::start(fast(&redis)).await;
    let mut peers = Vec::new();
    for _ in 0..20 {
        peers.push(Peer::connect(&b, None).await);
    }
    for peer in &peers {
        a.context()
            .groups()
            .add(&peer.id, "everyone")
            .await
            .unwrap();
    }
    let before = a.backplane.stats().published;
    let clients = a.context().clients();
    for round in 0..10 {
        clients.all().receive(format!("all {round}")).await.unwrap();
        clients
            .group("everyone")
            .receive(format!("group {round}"))
            .await
            .unwrap();
        clients
            .clients(peers.iter().map(|peer| &peer.id))
            .receive(format!("clients {round}"))
            .await
            .unwrap();
    }
    for peer in &mut peers {
        for round in 0..10 {
            assert_eq!(peer.next().await, format!("all {round}"));
            assert_eq!(peer.next().await, format!("group {round}"));
            assert_eq!(peer.next().await, format!("clients {round}"));
        }
    }
    // 30 hub messages to 20 connections each: 30 PUBLISHes, not 600.
    assert_eq!(a.backplane.stats().published - before, 30);
    // Sends to connections of the sending node do not touch Redis at all.
    let local = Peer::connect(&a, None).await;
    let before = a.backplane.stats().published;
    clients
        .client(&local.id)
        .receive("local".into())
        .await
        .unwrap();
    assert_eq!(a.backplane.stats().published, before);
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_is_away_a_bounded_buffer_is_replayed_and_drops_counted() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut redis = RedisProcess::start();
    let a = Node::start(fast(&redis).max_buffered_messages(5)).await;
    let b = Node::start(fast(&redis)).await;
    let mut a1 = Peer::connect(&a, None).await;
    let mut b1 = Peer::connect(&b, None).await;
    a.context().groups().add(&b1.id, "kept").await.unwrap();
    let clients = a.context().clients();
    clients.all().receive("before".into()).await.unwrap();
    assert_eq!(a1.next().await, "before");
    assert_eq!(b1.next().await, "before");

    // Node A knows that two nodes listen: after the outage it waits for
    // both before replaying.
    wait_until("node A sees node B", || a.backplane.stats().nodes == 2).await;
    redis.stop();
    // The first publish after the outage notices it.
    clients.all().receive("probe".into()).await.unwrap();
    assert_eq!(a1.next().await, "probe");
    wait_until("node A sees Redis gone", || !a.backplane.stats().connected).await;

    // Local delivery goes on at once; 8 messages for a buffer of 5 (plus
    // the probe): the 4 oldest are dropped and counted.
    for n in 0..8 {
        clients.all().receive(format!("down {n}")).await.unwrap();
        assert_eq!(a1.next().await, format!("down {n}"));
    }
    let stats = a.backplane.stats();
    assert_eq!(stats.buffered, 5);
    assert_eq!(stats.dropped, 4);
    // Requests that need another node's answer fail at once.
    let error = a.context().groups().add(&b1.id, "x").await.unwrap_err();
    assert_eq!(error.kind(), HubErrorKind::Transport);
    // And a hub without Redis keeps serving its own clients' calls.
    let id = a1.hub.get_connection_id().await.unwrap();
    assert_eq!(id, a1.id);

    redis.restart();
    // The 5 newest arrive, in order, once both nodes are back.
    for n in 3..8 {
        assert_eq!(b1.next().await, format!("down {n}"));
    }
    wait_until("node A reconnected", || a.backplane.stats().connected).await;
    assert_eq!(a.backplane.stats().buffered, 0);
    assert!(a.backplane.stats().reconnects >= 1);
    // The subscriptions came back too: the group joined before the outage.
    clients.group("kept").receive("after".into()).await.unwrap();
    assert_eq!(b1.next().await, "after");
    assert_eq!(b1.flush(&a).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_an_error_at_connect_and_no_harm_after_start() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let error = RedisBackplane::builder(url.clone())
        .operation_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisBackplaneError::Unreachable(_)),
        "{error}"
    );
    assert!(matches!(
        RedisBackplane::connect("not a url").await.unwrap_err(),
        RedisBackplaneError::InvalidUrl(_)
    ));

    // Started without Redis: the node serves its own clients meanwhile.
    let backplane = RedisBackplane::builder(url)
        .reconnect_delay(Duration::from_millis(20), Duration::from_millis(100))
        .start()
        .unwrap();
    let node = Node::with(backplane).await;
    let mut peer = Peer::connect(&node, None).await;
    node.context()
        .clients()
        .all()
        .receive("local".into())
        .await
        .unwrap();
    assert_eq!(peer.next().await, "local");
    assert!(!node.backplane.stats().connected);
    assert_eq!(node.backplane.stats().buffered, 1);
}
