//! The Redis backplane: Redis pub/sub between the nodes of a hub.
//!
//! # Channels
//!
//! As ASP.NET Core's Redis backplane, one channel per kind of target under
//! a prefix (default: the hub's Rust type name), so that a node only
//! receives what it can deliver:
//!
//! | channel | carries | subscribed by |
//! |---|---|---|
//! | `{prefix}:all` | `all`, `all_except`, and sends to several groups, users or connections at once | every node |
//! | `{prefix}:connection:{id}` | sends, client results and group changes for one connection | the node holding it |
//! | `{prefix}:group:{name}` | `group`, `group_except`, `others_in_group` | nodes with a member |
//! | `{prefix}:user:{id}` | `user` | nodes with a connection of the user |
//! | `{prefix}:internal:node:{node}` | acknowledgements and client results for that node | that node |
//!
//! One hub message is one `PUBLISH`, however many connections, nodes,
//! groups or users it reaches. A send to several groups (or users, or
//! connections) goes once on `{prefix}:all` with its whole target, and
//! each node picks its recipients, each once — where one publish per group
//! would deliver twice to a connection in two of them.
//!
//! # Redis Cluster
//!
//! [`RedisBackplane::cluster_builder`] (or several comma-separated URLs)
//! runs on a Redis Cluster with the same channels. On Redis 7 and later it
//! uses sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`): a message goes only to
//! the shard that owns its channel's slot, and each node subscribes there.
//! A channel's slot is the hash of its whole name, so groups, users,
//! connections and nodes spread over the shards, while `{prefix}:all` is
//! one channel on one shard: a broadcast is still one publish. Older
//! clusters (or [`RedisBackplaneBuilder::sharded_pubsub`]`(false)`) get
//! plain pub/sub, sent to the slot's owner so that a request still learns
//! whether any node holds its connection. Order holds per channel, not
//! across channels. When a shard drops a sharded subscription (its slots
//! moved, or it failed over), the node subscribes again where the slot now
//! lives: at once on the shard's `sunsubscribe` push, and at the next
//! health check when the slot map changed. Pub/sub keeps nothing: what is
//! published at the new owner before a node subscribed there is lost for
//! that node, and while a slot moves (or after a failover) a node can
//! hear a channel over two subscriptions. Every envelope carries its
//! origin's sequence number, and a node drops the second copy of one it
//! has acted on ([`BackplaneStats::duplicates`]), within the last 16,384
//! envelopes of each origin. What was published at the old owner can
//! still come after a later message published at the new one (two
//! connections). A command that fails meanwhile ends the session, which
//! reconnects and replays as below.
//!
//! # A node that starts
//!
//! A backplane made by [`RedisBackplaneBuilder::connect`] subscribes once
//! attached to a server; until that first session has subscribed (at most
//! [`RedisBackplaneBuilder::operation_timeout`]), the server's new
//! connections wait before their handshake is answered, so that a client
//! whose `start()` resolved hears every broadcast sent after. One made by
//! [`RedisBackplaneBuilder::start`] makes nothing wait.
//!
//! # Faults and the delivery policy
//!
//! Local delivery never waits for Redis: the publishing node queues its own
//! recipients first, then hands the message to a background task that
//! pipelines the `PUBLISH`es. When Redis is unreachable or restarts:
//!
//! - the node keeps serving its own connections;
//! - it reconnects with exponential backoff
//!   ([`RedisBackplaneBuilder::reconnect_delay`]) and subscribes again to
//!   everything its connections need;
//! - messages published meanwhile wait in a bounded buffer
//!   ([`RedisBackplaneBuilder::max_buffered_messages`] and
//!   [`max_buffered_bytes`](RedisBackplaneBuilder::max_buffered_bytes)),
//!   in order. Past the bound the *oldest* are dropped and counted
//!   ([`BackplaneStats::dropped`]): after an outage, the most recent
//!   messages are the ones worth having;
//! - once reconnected, the node waits until as many nodes are subscribed as
//!   it saw at most before the outage (checked every
//!   [`RedisBackplaneBuilder::health_check_interval`]; the wait lasts at
//!   most [`RedisBackplaneBuilder::replay_grace`], which a node that left
//!   for good costs once), so that the others are listening again, then
//!   replays the buffer in
//!   order, then goes on with new messages. A batch whose `PUBLISH` failed
//!   mid-flight is published again; a node that already had a message of
//!   it drops the second copy, so it arrives once, in order;
//! - group changes and client results for connections on other nodes need
//!   an answer, so they fail at once (with [`HubErrorKind::Transport`])
//!   while Redis is away instead of waiting in the buffer.
//!
//! ASP.NET Core's backplane drops whatever is published while Redis is
//! away. Pub/sub itself keeps nothing: a node that loses only its own
//! subscription (while Redis stays up for the others) misses what is sent
//! meanwhile; the buffer covers the publisher's side.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};

mod cluster;

use super::duplicates::DuplicateFilter;
use super::wire::{self, Envelope};
use super::{Backplane, EncodedMessage, LocalNode, Subscription};
use crate::protocol::Payload;
use crate::targets::{ConnectionId, Target};
use crate::{BoxFuture, HubError, HubErrorKind};

/// How many `PUBLISH`es go in one pipeline at most.
const MAX_BATCH: usize = 1024;

/// Why a [`RedisBackplane`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackplaneError {
    /// The URL is not a Redis URL (`redis://host:port[/db]`).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// Redis did not answer the first connection.
    #[error("cannot reach Redis: {0}")]
    Unreachable(String),
    /// Not called from within a Tokio runtime.
    #[error("the Redis backplane needs a Tokio runtime")]
    NoRuntime,
}

/// Counters of a [`RedisBackplane`], for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Whether the node is connected to Redis and subscribed.
    pub connected: bool,
    /// `PUBLISH`es that Redis accepted.
    pub published: u64,
    /// Messages received from Redis (including this node's own broadcasts,
    /// which it skips, and second copies, which it drops).
    pub received: u64,
    /// Messages dropped because the buffer was full (oldest first).
    pub dropped: u64,
    /// Second copies of a message, dropped: heard over two subscriptions
    /// (see [Redis Cluster](self#redis-cluster)), or published again after
    /// a connection broke mid-`PUBLISH`.
    pub duplicates: u64,
    /// Messages waiting to be published now.
    pub buffered: usize,
    /// How many times the connection to Redis was lost and made again.
    pub reconnects: u64,
    /// How many nodes (this one included) listened on the hub's channels at
    /// the last health check.
    pub nodes: usize,
}

/// Configures a [`RedisBackplane`]; from [`RedisBackplane::builder`].
#[derive(Debug, Clone)]
pub struct RedisBackplaneBuilder {
    url: String,
    prefix: Option<String>,
    /// The seed nodes of a Redis Cluster; `None` for one Redis server.
    cluster_seeds: Option<Vec<String>>,
    /// Sharded pub/sub on a cluster: `None` asks the cluster.
    sharded: Option<bool>,
    max_buffered_messages: usize,
    max_buffered_bytes: usize,
    reconnect_min: Duration,
    reconnect_max: Duration,
    operation_timeout: Duration,
    health_check_interval: Duration,
    replay_grace: Duration,
}

impl RedisBackplaneBuilder {
    /// The channel prefix (default: the hub's Rust type name). Nodes of one
    /// hub must share it; hubs sharing one Redis must not.
    pub fn channel_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// On a Redis Cluster, whether to use sharded pub/sub (`SPUBLISH`,
    /// `SSUBSCRIBE`; Redis 7 and later): by default the backplane asks the
    /// cluster's version and uses it when it can. `false` forces plain
    /// pub/sub, whose every `PUBLISH` the cluster copies to all its nodes.
    /// Ignored on one Redis server.
    pub fn sharded_pubsub(mut self, sharded: bool) -> Self {
        self.sharded = Some(sharded);
        self
    }

    /// How many messages may wait while Redis is away (default 10 000).
    /// Past it the oldest are dropped and counted.
    pub fn max_buffered_messages(mut self, count: usize) -> Self {
        self.max_buffered_messages = count;
        self
    }

    /// How many bytes of messages may wait while Redis is away (default
    /// 64 MiB). Past it the oldest are dropped and counted.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// The first and the longest wait between reconnection attempts
    /// (default 100 ms, doubling up to 5 s).
    pub fn reconnect_delay(mut self, first: Duration, longest: Duration) -> Self {
        self.reconnect_min = first;
        self.reconnect_max = longest.max(first);
        self
    }

    /// How long a connection attempt, a command, a subscription or another
    /// node's acknowledgement may take (default 5 s).
    pub fn operation_timeout(mut self, limit: Duration) -> Self {
        self.operation_timeout = limit;
        self
    }

    /// How often the node checks that Redis still answers (default 1 s).
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// After a reconnection, how long the node waits at most for the other
    /// nodes to subscribe again before it replays its buffer (default 5 s).
    pub fn replay_grace(mut self, grace: Duration) -> Self {
        self.replay_grace = grace;
        self
    }

    /// Connects: fails unless Redis answers now. Later outages are handled
    /// in the background (see the [module docs](self)).
    pub async fn connect(self) -> Result<RedisBackplane, RedisBackplaneError> {
        if let Some(seeds) = &self.cluster_seeds {
            let seeds = seeds.clone();
            cluster::check_reachable(&seeds, self.operation_timeout).await?;
            return self.spawn(Endpoint::Cluster(seeds), true);
        }
        let client = self.client()?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.operation_timeout))
            .set_response_timeout(Some(self.operation_timeout));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisBackplaneError::Unreachable(e.to_string()))?;
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| RedisBackplaneError::Unreachable(e.to_string()))?;
        self.spawn(Endpoint::Single(Box::new(client)), true)
    }

    /// Starts without waiting for Redis: the node connects in the
    /// background and buffers meanwhile. Needs a Tokio runtime.
    pub fn start(self) -> Result<RedisBackplane, RedisBackplaneError> {
        if let Some(seeds) = &self.cluster_seeds {
            let seeds = seeds.clone();
            cluster::check_seeds(&seeds)?;
            return self.spawn(Endpoint::Cluster(seeds), false);
        }
        let client = self.client()?;
        self.spawn(Endpoint::Single(Box::new(client)), false)
    }

    fn client(&self) -> Result<redis::Client, RedisBackplaneError> {
        ensure_rustls_provider();
        redis::Client::open(self.url.as_str())
            .map_err(|e| RedisBackplaneError::InvalidUrl(e.to_string()))
    }

    /// `reachable`: Redis answered just now ([`connect`](Self::connect)),
    /// so the first connections may wait for the first subscriptions.
    fn spawn(
        self,
        endpoint: Endpoint,
        reachable: bool,
    ) -> Result<RedisBackplane, RedisBackplaneError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisBackplaneError::NoRuntime)?;
        let inner = Arc::new(Inner {
            endpoint,
            node_id: node_id(),
            config: self,
            node: OnceLock::new(),
            channels: OnceLock::new(),
            attached: Notify::new(),
            queue: Mutex::new(Queue::default()),
            queued: Notify::new(),
            subscriptions: Mutex::new(Subscriptions::default()),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            next_sequence: AtomicU64::new(1),
            duplicate_filter: DuplicateFilter::default(),
            duplicates_dropped: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            first_session: tokio::sync::watch::Sender::new(if reachable {
                FirstSession::Awaited
            } else {
                FirstSession::NotAwaited
            }),
            peers: AtomicUsize::new(0),
            nodes: AtomicUsize::new(0),
            published: AtomicU64::new(0),
            received: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            metrics: crate::telemetry::hub_metrics::BackplaneMetrics::new(),
        });
        let task = runtime.spawn(supervise(inner.clone()));
        Ok(RedisBackplane {
            owner: Arc::new(Owner {
                inner,
                task: task.abort_handle(),
            }),
        })
    }
}

/// `rediss://` connections are made by `redis` with
/// `rustls::ClientConfig::builder()`, which needs a process-wide crypto
/// provider: it finds one by itself only when exactly one provider feature
/// of rustls is on in the whole build. So that another crate turning on a
/// second one cannot make it panic, install aws-lc-rs (the provider this
/// crate is built with) unless the application installed one already.
fn ensure_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

/// Several server processes as one hub, over Redis pub/sub.
///
/// Cheap to clone; the background task stops when the last clone (the
/// server holds one) is dropped. See the [module docs](self) for the
/// channels and the delivery policy when Redis is away.
///
/// ```no_run
/// # async fn run<H: hub_runtime::Hub>(hub: H) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use hub_runtime::backplane::RedisBackplane;
/// use hub_runtime::server::HubServer;
///
/// let backplane = RedisBackplane::builder("redis://127.0.0.1:6379")
///     .channel_prefix("chat")
///     .max_buffered_messages(50_000)
///     .reconnect_delay(Duration::from_millis(50), Duration::from_secs(2))
///     .connect()
///     .await?;
/// let server = HubServer::builder(hub).backplane(backplane.clone()).build();
/// // later: backplane.stats().dropped
/// # let _ = server;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackplane {
    owner: Arc<Owner>,
}

struct Owner {
    inner: Arc<Inner>,
    task: tokio::task::AbortHandle,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("node", &self.owner.inner.node_id)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisBackplane {
    /// Connects to `url` with the default settings; see
    /// [`RedisBackplaneBuilder::connect`].
    pub async fn connect(url: impl Into<String>) -> Result<Self, RedisBackplaneError> {
        Self::builder(url).connect().await
    }

    /// Configures a backplane for the Redis at `url`
    /// (`redis://[user:password@]host:port[/db]`, or `rediss://…` over TLS,
    /// trusting the PEM certificates of the file named by `SSL_CERT_FILE`
    /// when it is set, the system's roots otherwise). Several URLs separated
    /// by commas name seed nodes of a Redis Cluster, as
    /// [`cluster_builder`](Self::cluster_builder) does.
    pub fn builder(url: impl Into<String>) -> RedisBackplaneBuilder {
        let url = url.into();
        if url.contains(',') {
            return Self::cluster_builder(url.split(',').map(str::trim));
        }
        Self::configure(url, None)
    }

    /// Configures a backplane for the Redis Cluster that `seeds` (some of
    /// its nodes, `redis://host:port`) belong to. Messages go over sharded
    /// pub/sub where the cluster has it (Redis 7 and later; see
    /// [`RedisBackplaneBuilder::sharded_pubsub`]); the module docs say which
    /// shard each target lands on.
    pub fn cluster_builder<S: Into<String>>(
        seeds: impl IntoIterator<Item = S>,
    ) -> RedisBackplaneBuilder {
        let seeds: Vec<String> = seeds
            .into_iter()
            .map(Into::into)
            .filter(|seed| !seed.is_empty())
            .collect();
        Self::configure(seeds.join(","), Some(seeds))
    }

    fn configure(url: String, cluster_seeds: Option<Vec<String>>) -> RedisBackplaneBuilder {
        RedisBackplaneBuilder {
            url,
            cluster_seeds,
            sharded: None,
            prefix: None,
            max_buffered_messages: 10_000,
            max_buffered_bytes: 64 << 20,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(1),
            replay_grace: Duration::from_secs(5),
        }
    }

    /// The counters: published, dropped, buffered, reconnections.
    pub fn stats(&self) -> BackplaneStats {
        let inner = &self.owner.inner;
        BackplaneStats {
            connected: inner.connected.load(Ordering::Acquire),
            published: inner.published.load(Ordering::Relaxed),
            received: inner.received.load(Ordering::Relaxed),
            dropped: inner.dropped.load(Ordering::Relaxed),
            duplicates: inner.duplicates_dropped.load(Ordering::Relaxed),
            buffered: inner.lock_queue().items.len(),
            reconnects: inner.reconnects.load(Ordering::Relaxed),
            nodes: inner.nodes.load(Ordering::Relaxed),
        }
    }

    /// This node's id on the backplane (random, per process).
    pub fn node_id(&self) -> &str {
        &self.owner.inner.node_id
    }
}

impl Backplane for RedisBackplane {
    fn attach(&self, node: LocalNode) {
        let inner = &self.owner.inner;
        let prefix = inner
            .config
            .prefix
            .clone()
            .unwrap_or_else(|| node.hub_name().to_owned());
        if inner.node.set(node).is_err() {
            tracing::error!("a RedisBackplane serves one hub; attach it to one server only");
            return;
        }
        let _ = inner.channels.set(Channels::new(prefix, &inner.node_id));
        inner.attached.notify_one();
    }

    fn publish(&self, target: &Target, message: &EncodedMessage) {
        let inner = &self.owner.inner;
        let Some(channels) = inner.channels.get() else {
            return;
        };
        let channel = channels.for_target(target);
        let payload = wire::encode_send(&inner.node_id, inner.sequence(), target, message);
        inner.enqueue(Outgoing {
            channel,
            payload,
            reply: None,
        });
    }

    fn invoke(
        &self,
        connection: ConnectionId,
        invocation: EncodedMessage,
        limit: Option<Duration>,
    ) -> BoxFuture<'static, Result<Payload, HubError>> {
        let inner = self.owner.inner.clone();
        Box::pin(async move {
            let not_found = || {
                HubError::with_kind(
                    HubErrorKind::ConnectionNotFound,
                    format!("Connection '{connection}' does not exist."),
                )
            };
            let request = inner.request(&connection, |origin, request| Envelope::Invoke {
                origin,
                request,
                connection: connection.clone(),
                invocation,
            })?;
            let Some(answer) = request.delivered().await? else {
                return Err(not_found());
            };
            let answered = match limit {
                Some(limit) => timeout(limit, answer).await.map_err(|_| {
                    HubError::with_kind(
                        HubErrorKind::Timeout,
                        format!(
                            "Connection '{connection}' did not answer within {} ms.",
                            limit.as_millis()
                        ),
                    )
                })?,
                None => answer.await,
            };
            answered.map_err(|_| {
                HubError::with_kind(
                    HubErrorKind::ConnectionClosed,
                    format!("Connection '{connection}' closed before it answered."),
                )
            })?
        })
    }

    fn add_to_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        self.group_action(connection, group, true)
    }

    fn remove_from_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        self.group_action(connection, group, false)
    }

    fn abort(&self, target: Target) -> BoxFuture<'static, Result<(), HubError>> {
        let inner = &self.owner.inner;
        let Some(channels) = inner.channels.get() else {
            return Box::pin(std::future::ready(Err(HubError::with_kind(
                HubErrorKind::Transport,
                "the Redis backplane is not attached to a hub",
            ))));
        };
        // On the target's channel: only the nodes holding it receive it.
        let envelope = Envelope::Abort {
            origin: inner.node_id.clone(),
            target: target.clone(),
        };
        inner.enqueue(Outgoing {
            channel: channels.for_target(&target),
            payload: envelope.encode(inner.sequence()),
            reply: None,
        });
        Box::pin(std::future::ready(Ok(())))
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'static, ()> {
        let inner = &self.owner.inner;
        let Some(channels) = inner.channels.get() else {
            return Box::pin(std::future::ready(()));
        };
        let channel = channels.for_subscription(&subscription);
        let (done, confirmed) = oneshot::channel();
        let sent = {
            let mut subscriptions = inner.lock_subscriptions();
            subscriptions.desired.insert(channel.clone());
            subscriptions.session.as_ref().is_some_and(|session| {
                session
                    .send(Command::Subscribe(channel, Some(done)))
                    .is_ok()
            })
        };
        let limit = inner.config.operation_timeout;
        if !sent {
            // Not connected: the subscription is made with all the others
            // when the session starts. A node that has just started (and
            // found Redis answering) waits for that, bounded; after an
            // outage nothing waits, so that a node keeps serving.
            let mut first = inner.first_session.subscribe();
            if *first.borrow() != FirstSession::Awaited {
                return Box::pin(std::future::ready(()));
            }
            return Box::pin(async move {
                let _ = timeout(
                    limit,
                    first.wait_for(|state| *state != FirstSession::Awaited),
                )
                .await;
            });
        }
        Box::pin(async move {
            let _ = timeout(limit, confirmed).await;
        })
    }

    fn unsubscribe(&self, subscription: Subscription) {
        let inner = &self.owner.inner;
        let Some(channels) = inner.channels.get() else {
            return;
        };
        let channel = channels.for_subscription(&subscription);
        let mut subscriptions = inner.lock_subscriptions();
        subscriptions.desired.remove(&channel);
        if let Some(session) = &subscriptions.session {
            let _ = session.send(Command::Unsubscribe(channel));
        }
    }
}

impl RedisBackplane {
    fn group_action(
        &self,
        connection: ConnectionId,
        group: String,
        add: bool,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        let inner = self.owner.inner.clone();
        Box::pin(async move {
            let request = inner.request(&connection, |origin, request| Envelope::Group {
                origin,
                request,
                connection: connection.clone(),
                group,
                add,
            })?;
            // As locally, a connection that no node holds is ignored.
            let Some(ack) = request.delivered().await? else {
                return Ok(());
            };
            let limit = inner.config.operation_timeout;
            match timeout(limit, ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(unavailable()),
                Err(_) => Err(HubError::with_kind(
                    HubErrorKind::Timeout,
                    format!(
                        "The node holding connection '{connection}' did not acknowledge the group change within {} ms.",
                        limit.as_millis()
                    ),
                )),
            }
        })
    }
}

fn unavailable() -> HubError {
    HubError::with_kind(
        HubErrorKind::Transport,
        "The Redis backplane is not connected.",
    )
}

/// A new id for this process's backplane, random. It must never be one a
/// running node had: receivers drop an envelope whose (origin, sequence)
/// they have seen, and a reused id would start its sequence again at 1.
fn node_id() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness matters, secrecy does not: fall back on time and pid.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes = (nanos as u64 ^ u64::from(std::process::id()) << 32).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The channel names of one hub.
struct Channels {
    prefix: String,
    all: String,
    own: String,
}

impl Channels {
    fn new(prefix: String, node_id: &str) -> Self {
        Channels {
            all: format!("{prefix}:all"),
            own: format!("{prefix}:internal:node:{node_id}"),
            prefix,
        }
    }

    fn connection(&self, id: &str) -> String {
        format!("{}:connection:{id}", self.prefix)
    }

    fn node(&self, node_id: &str) -> String {
        format!("{}:internal:node:{node_id}", self.prefix)
    }

    fn for_subscription(&self, subscription: &Subscription) -> String {
        match subscription {
            Subscription::Connection(id) => self.connection(id.as_str()),
            Subscription::Group(group) => format!("{}:group:{group}", self.prefix),
            Subscription::User(user) => format!("{}:user:{user}", self.prefix),
        }
    }

    fn for_target(&self, target: &Target) -> String {
        let one = |subscription| self.for_subscription(&subscription);
        match target {
            Target::Connection(id) => one(Subscription::Connection(id.clone())),
            Target::Connections(ids) if ids.len() == 1 => {
                one(Subscription::Connection(ids[0].clone()))
            }
            Target::Group(group) | Target::GroupExcept(group, _) => {
                one(Subscription::Group(group.clone()))
            }
            Target::Groups(groups) if groups.len() == 1 => {
                one(Subscription::Group(groups[0].clone()))
            }
            Target::User(user) => one(Subscription::User(user.clone())),
            Target::Users(users) if users.len() == 1 => one(Subscription::User(users[0].clone())),
            _ => self.all.clone(),
        }
    }
}

/// One `PUBLISH` waiting to be made.
struct Outgoing {
    channel: String,
    payload: Bytes,
    /// Told how many subscribers received it (requests only).
    reply: Option<oneshot::Sender<i64>>,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Outgoing>,
    bytes: usize,
}

enum Command {
    Subscribe(String, Option<oneshot::Sender<()>>),
    Unsubscribe(String),
}

#[derive(Default)]
struct Subscriptions {
    /// What this node's connections need, kept across reconnections.
    desired: HashSet<String>,
    /// The running session's subscription commands, in order.
    session: Option<mpsc::UnboundedSender<Command>>,
}

type Answer = oneshot::Sender<Result<Payload, HubError>>;

/// Where a node is with its first session on Redis.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FirstSession {
    /// Created by `connect()`, which found Redis answering: until the
    /// first session has subscribed, a connection's subscription waits for
    /// it (bounded), so that a node that has just started does not answer
    /// handshakes before it hears the hub's broadcasts.
    Awaited,
    /// Created by `start()`, maybe without Redis: nothing waits.
    NotAwaited,
    /// The first session has subscribed.
    Subscribed,
}

/// Where the backplane's Redis is.
enum Endpoint {
    /// One Redis server. Boxed: with TLS support the client holds its TLS
    /// parameters (240 bytes), ten times the cluster's seed list.
    Single(Box<redis::Client>),
    /// Seed nodes of a Redis Cluster.
    Cluster(Vec<String>),
}

struct Inner {
    endpoint: Endpoint,
    node_id: String,
    config: RedisBackplaneBuilder,
    node: OnceLock<LocalNode>,
    channels: OnceLock<Channels>,
    attached: Notify,
    queue: Mutex<Queue>,
    queued: Notify,
    subscriptions: Mutex<Subscriptions>,
    pending: Mutex<HashMap<u64, Answer>>,
    next_request: AtomicU64,
    /// The number of the next envelope this node publishes.
    next_sequence: AtomicU64,
    /// The envelopes received and acted on (this node's own too), to drop
    /// a second copy.
    duplicate_filter: DuplicateFilter,
    /// How many second copies were dropped.
    duplicates_dropped: AtomicU64,
    connected: AtomicBool,
    /// Whether the first session has subscribed yet, and whether new
    /// connections wait for it.
    first_session: tokio::sync::watch::Sender<FirstSession>,
    /// The most nodes seen listening (health checks, and how many received
    /// a broadcast) since the last replay: after an outage, the node waits
    /// for as many before it replays its buffer.
    peers: AtomicUsize,
    /// How many nodes were subscribed at the last health check.
    nodes: AtomicUsize,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    metrics: crate::telemetry::hub_metrics::BackplaneMetrics,
}

// Every map and queue stays consistent whatever panicked while holding it
// (each update is a single insert, remove or push), so poisoning is ignored.
impl Inner {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_subscriptions(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Answer>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The session has subscribed to everything: new connections stop
    /// waiting for the first one.
    fn mark_connected(&self) {
        self.connected.store(true, Ordering::Release);
        self.first_session.send_replace(FirstSession::Subscribed);
    }

    /// Queues a publish, dropping the oldest past the bounds.
    fn enqueue(&self, outgoing: Outgoing) {
        let mut queue = self.lock_queue();
        queue.bytes += outgoing.payload.len();
        queue.items.push_back(outgoing);
        self.enforce_bounds(&mut queue);
        self.metrics.buffered(queue.items.len());
        drop(queue);
        self.queued.notify_one();
    }

    fn enforce_bounds(&self, queue: &mut Queue) {
        let mut dropped = 0;
        while queue.items.len() > self.config.max_buffered_messages
            || (queue.bytes > self.config.max_buffered_bytes && !queue.items.is_empty())
        {
            if let Some(oldest) = queue.items.pop_front() {
                queue.bytes -= oldest.payload.len();
                dropped += 1;
            }
        }
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            self.metrics.dropped(dropped);
            tracing::warn!(
                dropped,
                total,
                "Redis backplane buffer full: dropped the oldest messages"
            );
        }
    }

    /// Sends a request to the node holding `connection`.
    fn request(
        self: &Arc<Self>,
        connection: &ConnectionId,
        envelope: impl FnOnce(String, u64) -> Envelope,
    ) -> Result<Request, HubError> {
        let channels = self.channels.get().ok_or_else(unavailable)?;
        if !self.connected.load(Ordering::Acquire) {
            return Err(unavailable());
        }
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.lock_pending().insert(id, answer);
        let (count, counted) = oneshot::channel();
        self.enqueue(Outgoing {
            channel: channels.connection(connection.as_str()),
            payload: envelope(self.node_id.clone(), id).encode(self.sequence()),
            reply: Some(count),
        });
        Ok(Request {
            inner: self.clone(),
            id,
            counted: Some(counted),
            answered: Some(answered),
        })
    }

    /// The number of the next envelope this node publishes (receivers drop
    /// a second copy by it).
    fn sequence(&self) -> u64 {
        self.next_sequence.fetch_add(1, Ordering::Relaxed)
    }

    fn publish_to_node(&self, node: &str, envelope: &Envelope) {
        if let Some(channels) = self.channels.get() {
            self.enqueue(Outgoing {
                channel: channels.node(node),
                payload: envelope.encode(self.sequence()),
                reply: None,
            });
        }
    }

    /// Acts on one message from Redis.
    fn handle(self: &Arc<Self>, payload: Bytes) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.received();
        let Some(node) = self.node.get() else { return };
        let Some((sequence, envelope)) = Envelope::decode(payload) else {
            tracing::warn!("ignored a malformed message from the Redis backplane");
            return;
        };
        if !self
            .duplicate_filter
            .first_copy(envelope.origin(), sequence)
        {
            tracing::debug!(
                origin = envelope.origin(),
                sequence,
                "dropped a second copy of a message from the Redis backplane"
            );
            self.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.duplicate();
            return;
        }
        match envelope {
            Envelope::Send {
                origin,
                target,
                message,
            } => {
                // This node delivered its own recipients when it sent.
                if origin != self.node_id {
                    node.deliver(&target, &message);
                }
            }
            Envelope::Invoke {
                origin,
                request,
                connection,
                invocation,
            } => {
                let work = node.invoke(&connection, &invocation);
                let inner = self.clone();
                tokio::spawn(async move {
                    let result = match work {
                        Some(work) => work.await,
                        None => Err(HubError::with_kind(
                            HubErrorKind::ConnectionNotFound,
                            format!("Connection '{connection}' does not exist."),
                        )),
                    };
                    let reply = Envelope::Reply {
                        origin: inner.node_id.clone(),
                        request,
                        result,
                    };
                    inner.publish_to_node(&origin, &reply);
                });
            }
            Envelope::Group {
                origin,
                request,
                connection,
                group,
                add,
            } => {
                let subscribed = if add {
                    node.add_to_group(&connection, &group)
                } else {
                    node.remove_from_group(&connection, &group);
                    None
                };
                let inner = self.clone();
                tokio::spawn(async move {
                    if let Some(subscribed) = subscribed {
                        subscribed.await;
                    }
                    let ack = Envelope::Ack {
                        origin: inner.node_id.clone(),
                        request,
                    };
                    inner.publish_to_node(&origin, &ack);
                });
            }
            Envelope::Abort { origin, target } => {
                // This node aborted its own connections when it sent.
                if origin != self.node_id {
                    node.abort(&target);
                }
            }
            Envelope::Ack { request, .. } => {
                if let Some(answer) = self.lock_pending().remove(&request) {
                    let _ = answer.send(Ok(Payload::null()));
                }
            }
            Envelope::Reply {
                request, result, ..
            } => {
                if let Some(answer) = self.lock_pending().remove(&request) {
                    let _ = answer.send(result);
                }
            }
        }
    }
}

/// A request in flight to another node; forgets its answer slot when
/// dropped, however it ends.
struct Request {
    inner: Arc<Inner>,
    id: u64,
    counted: Option<oneshot::Receiver<i64>>,
    answered: Option<oneshot::Receiver<Result<Payload, HubError>>>,
}

impl Request {
    /// Waits until Redis took the request: `None` when no node holds the
    /// connection, else the future of its answer.
    async fn delivered(mut self) -> Result<Option<AnswerFuture>, HubError> {
        let limit = self.inner.config.operation_timeout;
        let counted = self.counted.take().ok_or_else(unavailable)?;
        let receivers = match timeout(limit, counted).await {
            Ok(Ok(count)) => count,
            Ok(Err(_)) => return Err(dropped_request()),
            Err(_) => return Err(unavailable()),
        };
        if receivers == 0 {
            return Ok(None);
        }
        let answered = self.answered.take().ok_or_else(unavailable)?;
        Ok(Some(AnswerFuture {
            _request: self,
            answered,
        }))
    }
}

fn dropped_request() -> HubError {
    HubError::with_kind(
        HubErrorKind::Transport,
        "The Redis backplane dropped the request (buffer full).",
    )
}

impl Drop for Request {
    fn drop(&mut self) {
        self.inner.lock_pending().remove(&self.id);
    }
}

/// The answer of a delivered request.
struct AnswerFuture {
    _request: Request,
    answered: oneshot::Receiver<Result<Payload, HubError>>,
}

impl std::future::Future for AnswerFuture {
    type Output = Result<Result<Payload, HubError>, oneshot::error::RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.answered).poll(cx)
    }
}

/// Connects, runs until the connection fails, reconnects with backoff.
async fn supervise(inner: Arc<Inner>) {
    while inner.channels.get().is_none() {
        inner.attached.notified().await;
    }
    let mut delay = inner.config.reconnect_min;
    loop {
        let error = session(&inner).await;
        let was_connected = inner.connected.swap(false, Ordering::AcqRel);
        inner.metrics.error();
        inner.lock_subscriptions().session = None;
        if was_connected {
            inner.reconnects.fetch_add(1, Ordering::Relaxed);
            delay = inner.config.reconnect_min;
            tracing::warn!(%error, "lost the Redis backplane; reconnecting");
        } else {
            tracing::debug!(%error, ?delay, "cannot reach the Redis backplane yet");
        }
        sleep(delay).await;
        delay = (delay * 2).min(inner.config.reconnect_max);
    }
}

/// One connection to Redis, from connecting to failing: returns why it
/// ended.
async fn session(inner: &Arc<Inner>) -> String {
    match run_session(inner).await {
        Ok(never) => match never {},
        Err(error) => error,
    }
}

enum Never {}

async fn run_session(inner: &Arc<Inner>) -> Result<Never, String> {
    match &inner.endpoint {
        Endpoint::Single(client) => run_single_session(inner, client).await,
        Endpoint::Cluster(seeds) => cluster::run_session(inner, seeds).await,
    }
}

/// A session on one Redis server: a multiplexed connection publishes, a
/// pub/sub connection subscribes.
async fn run_single_session(inner: &Arc<Inner>, client: &redis::Client) -> Result<Never, String> {
    let channels = inner.channels.get().ok_or("not attached")?;
    let limit = inner.config.operation_timeout;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(limit));
    let publisher = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| format!("publisher: {e}"))?;
    let pubsub = timeout(limit, client.get_async_pubsub())
        .await
        .map_err(|_| "subscriber: connection timed out".to_owned())?
        .map_err(|e| format!("subscriber: {e}"))?;
    let (sink, mut stream) = pubsub.split();

    // Subscribe to everything at once; commands arriving meanwhile go to the
    // new session's queue and run after.
    let (commands, mut command_queue) = mpsc::unbounded_channel();
    let mut wanted = vec![channels.all.clone(), channels.own.clone()];
    {
        let mut subscriptions = inner.lock_subscriptions();
        subscriptions.session = Some(commands);
        wanted.extend(subscriptions.desired.iter().cloned());
    }
    run_commands(
        &sink,
        wanted
            .into_iter()
            .map(|channel| Command::Subscribe(channel, None))
            .collect(),
        limit,
    )
    .await?;

    let has_backlog = !inner.lock_queue().items.is_empty();
    let peers_before = inner.peers.load(Ordering::Relaxed);
    if has_backlog && peers_before > 1 {
        // Only a wait that ran to its end resets the count: a session that
        // fails while waiting keeps it for the next one, and a node that
        // stayed away past the grace is forgotten here.
        if let Some(seen) =
            wait_for_peers(inner, &mut publisher.clone(), "NUMSUB", peers_before).await
        {
            inner.peers.store(seen, Ordering::Relaxed);
        }
    }
    inner.mark_connected();
    tracing::debug!(node = %inner.node_id, "Redis backplane connected");

    let receiving = async {
        while let Some(message) = stream.next().await {
            inner.handle(Bytes::copy_from_slice(message.get_payload_bytes()));
        }
        Err::<Never, _>("subscriber: connection closed".to_owned())
    };
    let subscribing = async {
        while let Some(first) = command_queue.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = command_queue.try_recv() {
                batch.push(next);
            }
            run_commands(&sink, batch, limit).await?;
        }
        Err::<Never, _>("subscription commands ended".to_owned())
    };
    tokio::select! {
        result = receiving => result,
        result = subscribing => result,
        result = publish_loop(inner, publisher.clone()) => result,
        result = health_loop(inner, &sink, publisher) => result,
    }
}

/// Runs (UN)SUBSCRIBE commands pipelined, in order, and confirms them.
async fn run_commands(
    sink: &PubSubSink,
    commands: Vec<Command>,
    limit: Duration,
) -> Result<(), String> {
    let mut confirmations = Vec::new();
    let requests = commands.into_iter().map(|command| {
        let mut sink = sink.clone();
        let (channel, subscribe, done) = match command {
            Command::Subscribe(channel, done) => (channel, true, done),
            Command::Unsubscribe(channel) => (channel, false, None),
        };
        confirmations.push(done);
        async move {
            if subscribe {
                sink.subscribe(&channel).await
            } else {
                sink.unsubscribe(&channel).await
            }
        }
    });
    // join_all polls in order, so the commands go out in order.
    let requests: Vec<_> = requests.collect();
    let results = timeout(limit, futures_util::future::join_all(requests))
        .await
        .map_err(|_| "subscriber: (un)subscribe timed out".to_owned())?;
    for result in results {
        result.map_err(|e| format!("subscriber: {e}"))?;
    }
    for done in confirmations.into_iter().flatten() {
        let _ = done.send(());
    }
    Ok(())
}

/// How many nodes listen on the hub's `all` channel: `PUBSUB NUMSUB` (or
/// `SHARDNUMSUB` for a sharded channel) where that channel is served.
async fn subscribed_nodes(
    inner: &Inner,
    connection: &mut impl CountSubscribers,
    numsub: &str,
) -> Result<usize, String> {
    let channels = inner.channels.get().ok_or("not attached")?;
    connection.count_subscribers(numsub, &channels.all).await
}

/// The subscriber count in a `PUBSUB NUMSUB`-style reply (pairs of channel
/// and count, as an array or, in RESP3, a map).
fn subscriber_count(reply: &redis::Value) -> usize {
    let count = match reply {
        redis::Value::Array(items) => items.iter().find_map(|item| match item {
            redis::Value::Int(count) => Some(*count),
            _ => None,
        }),
        redis::Value::Map(pairs) => pairs.iter().find_map(|(_, value)| match value {
            redis::Value::Int(count) => Some(*count),
            _ => None,
        }),
        _ => None,
    };
    usize::try_from(count.unwrap_or(0)).unwrap_or(0)
}

/// A connection that can count a channel's subscribers.
trait CountSubscribers {
    /// Sends `PUBSUB {numsub} {channel}` where the channel is served.
    fn count_subscribers(
        &mut self,
        numsub: &str,
        channel: &str,
    ) -> impl std::future::Future<Output = Result<usize, String>> + Send;
}

impl CountSubscribers for MultiplexedConnection {
    async fn count_subscribers(&mut self, numsub: &str, channel: &str) -> Result<usize, String> {
        let reply: redis::Value = redis::cmd("PUBSUB")
            .arg(numsub)
            .arg(channel)
            .query_async(self)
            .await
            .map_err(|e| format!("publisher: {e}"))?;
        Ok(subscriber_count(&reply))
    }
}

/// Publishes one batch of the queue, in order, and returns how many
/// subscribers received each message.
trait PublishBatch {
    fn publish_batch(
        &mut self,
        batch: &[Outgoing],
    ) -> impl std::future::Future<Output = Result<Vec<i64>, String>> + Send;
}

impl PublishBatch for MultiplexedConnection {
    /// One pipeline of `PUBLISH`es: one round trip, in order.
    async fn publish_batch(&mut self, batch: &[Outgoing]) -> Result<Vec<i64>, String> {
        let mut pipeline = redis::pipe();
        for item in batch {
            pipeline
                .cmd("PUBLISH")
                .arg(&item.channel)
                .arg(item.payload.as_ref());
        }
        pipeline
            .query_async(self)
            .await
            .map_err(|e| format!("publisher: {e}"))
    }
}

/// Waits (bounded) until as many nodes as before the outage listen again;
/// returns how many listen at the end, or `None` when Redis failed meanwhile.
async fn wait_for_peers(
    inner: &Inner,
    connection: &mut impl CountSubscribers,
    numsub: &str,
    peers: usize,
) -> Option<usize> {
    let deadline = Instant::now() + inner.config.replay_grace;
    loop {
        let count = subscribed_nodes(inner, connection, numsub).await.ok()?;
        if count >= peers {
            return Some(count);
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                peers,
                listening = count,
                "not every node resubscribed in time; replaying the buffer anyway"
            );
            return Some(count);
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Publishes the queue in pipelined batches, in order.
async fn publish_loop(
    inner: &Arc<Inner>,
    mut publisher: impl PublishBatch,
) -> Result<Never, String> {
    loop {
        let batch: Vec<Outgoing> = {
            let mut queue = inner.lock_queue();
            let count = queue.items.len().min(MAX_BATCH);
            let batch: Vec<_> = queue.items.drain(..count).collect();
            queue.bytes -= batch.iter().map(|item| item.payload.len()).sum::<usize>();
            inner.metrics.buffered(queue.items.len());
            batch
        };
        if batch.is_empty() {
            inner.queued.notified().await;
            continue;
        }
        // Put back in front of the queue, in order, unless published: the
        // session may fail (or be cancelled) while the batch is in flight.
        let mut in_flight = InFlight {
            inner,
            batch: Some(batch),
        };
        let counts = publisher
            .publish_batch(in_flight.batch.as_deref().unwrap_or_default())
            .await?;
        let batch = in_flight.batch.take().unwrap_or_default();
        inner
            .published
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        inner.metrics.published(batch.len());
        let all = inner.channels.get().map(|channels| channels.all.as_str());
        for (item, count) in batch.into_iter().zip(counts) {
            // Every node listens on `all`: what received a broadcast is a
            // fresher count of the nodes than the last health check, which
            // may predate a node that joined since.
            if Some(item.channel.as_str()) == all {
                inner
                    .peers
                    .fetch_max(usize::try_from(count).unwrap_or(0), Ordering::Relaxed);
            }
            if let Some(reply) = item.reply {
                let _ = reply.send(count);
            }
        }
    }
}

struct InFlight<'a> {
    inner: &'a Inner,
    batch: Option<Vec<Outgoing>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let mut queue = self.inner.lock_queue();
        for item in batch.into_iter().rev() {
            queue.bytes += item.payload.len();
            queue.items.push_front(item);
        }
        self.inner.enforce_bounds(&mut queue);
    }
}

/// Checks both connections every interval; notes how many nodes listen.
async fn health_loop(
    inner: &Inner,
    sink: &PubSubSink,
    mut publisher: MultiplexedConnection,
) -> Result<Never, String> {
    let limit = inner.config.operation_timeout;
    loop {
        let nodes = subscribed_nodes(inner, &mut publisher, "NUMSUB").await?;
        inner.nodes.store(nodes, Ordering::Relaxed);
        inner.peers.fetch_max(nodes, Ordering::Relaxed);
        timeout(limit, sink.clone().ping::<redis::Value>())
            .await
            .map_err(|_| "subscriber: ping timed out".to_owned())?
            .map_err(|e| format!("subscriber: {e}"))?;
        sleep(inner.config.health_check_interval).await;
    }
}
