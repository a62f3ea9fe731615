//! The Redis backplane on a Redis Cluster: two cluster connections (the
//! redis crate's cluster-async client), one that publishes and checks, one
//! (RESP3) that subscribes and receives, with sharded pub/sub where the
//! cluster has it. `rediss://` seeds make both TLS, to every node.
//!
//! The channel names are those of a single Redis (see the parent module):
//! a channel's slot is the hash of its whole name, so the channels of
//! different groups, users, connections and nodes spread over the shards,
//! while `{prefix}:all` is one channel, on one shard, and a broadcast one
//! `SPUBLISH`.
//!
//! With sharded pub/sub, a message goes only to the shard that owns its
//! channel's slot, and each node subscribes at that shard: the cluster bus
//! carries nothing. With plain pub/sub (Redis 6, or
//! [`RedisBackplaneBuilder::sharded_pubsub(false)`](super::RedisBackplaneBuilder::sharded_pubsub)),
//! the client still sends `PUBLISH` and `SUBSCRIBE` to the node that owns
//! the channel's slot (so that `PUBLISH`'s count of receivers stays true),
//! and the cluster copies every message to all its nodes.
//!
//! Order holds per channel (one target), not across channels: two channels
//! may live on two shards.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};

use super::{
    Command, CountSubscribers, Inner, Never, Outgoing, PublishBatch, RedisBackplaneError,
    subscribed_nodes, subscriber_count, wait_for_peers,
};

/// Fails unless the seed URLs are Redis URLs.
pub(super) fn check_seeds(seeds: &[String]) -> Result<(), RedisBackplaneError> {
    // `rediss://` seeds connect over TLS, as a single node does.
    super::ensure_rustls_provider();
    if seeds.is_empty() {
        return Err(RedisBackplaneError::InvalidUrl(
            "a Redis Cluster needs at least one seed node".to_owned(),
        ));
    }
    redis::cluster::ClusterClient::new(seeds.to_vec())
        .map(drop)
        .map_err(|e| RedisBackplaneError::InvalidUrl(e.to_string()))
}

/// Fails unless the cluster answers now.
pub(super) async fn check_reachable(
    seeds: &[String],
    limit: Duration,
) -> Result<(), RedisBackplaneError> {
    check_seeds(seeds)?;
    let client = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(limit)
        .response_timeout(limit)
        .build()
        .map_err(|e| RedisBackplaneError::InvalidUrl(e.to_string()))?;
    let mut connection = timeout(limit, client.get_async_connection())
        .await
        .map_err(|_| RedisBackplaneError::Unreachable("connection timed out".to_owned()))?
        .map_err(|e| RedisBackplaneError::Unreachable(e.to_string()))?;
    redis::cmd("PING")
        .query_async::<()>(&mut connection)
        .await
        .map_err(|e| RedisBackplaneError::Unreachable(e.to_string()))
}

/// Sharded or plain pub/sub: the command names.
#[derive(Clone, Copy)]
struct Flavor {
    sharded: bool,
}

impl Flavor {
    fn publish(self) -> &'static str {
        if self.sharded { "SPUBLISH" } else { "PUBLISH" }
    }
    fn subscribe(self) -> &'static str {
        if self.sharded {
            "SSUBSCRIBE"
        } else {
            "SUBSCRIBE"
        }
    }
    fn unsubscribe(self) -> &'static str {
        if self.sharded {
            "SUNSUBSCRIBE"
        } else {
            "UNSUBSCRIBE"
        }
    }
    fn numsub(self) -> &'static str {
        if self.sharded {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        }
    }
}

/// The cluster connection, with the pub/sub flavor in use.
#[derive(Clone)]
struct Cluster {
    connection: ClusterConnection,
    flavor: Flavor,
}

/// The master that owns `channel`'s slot.
fn owner_of(channel: &str) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
        channel,
        SlotAddr::Master,
    )))
}

impl CountSubscribers for Cluster {
    async fn count_subscribers(&mut self, numsub: &str, channel: &str) -> Result<usize, String> {
        // Where the channel is served: `PUBSUB NUMSUB` sent to every node
        // would be combined by the client, which cannot read RESP3 maps.
        let mut command = redis::cmd("PUBSUB");
        command.arg(numsub).arg(channel);
        let reply = self
            .connection
            .route_command(command, owner_of(channel))
            .await
            .map_err(|e| format!("cluster: {e}"))?;
        Ok(subscriber_count(&reply))
    }
}

impl PublishBatch for Cluster {
    /// One pipeline per channel (a pipeline must stay in one slot), all at
    /// once: one round trip per shard touched, in order per channel.
    async fn publish_batch(&mut self, batch: &[Outgoing]) -> Result<Vec<i64>, String> {
        let mut by_channel: HashMap<&str, Vec<usize>> = HashMap::new();
        for (index, item) in batch.iter().enumerate() {
            by_channel.entry(&item.channel).or_default().push(index);
        }
        let publish = self.flavor.publish();
        let requests = by_channel.into_values().map(|indices| {
            let mut connection = self.connection.clone();
            let mut pipeline = redis::pipe();
            for &index in &indices {
                let item = &batch[index];
                pipeline
                    .cmd(publish)
                    .arg(&item.channel)
                    .arg(item.payload.as_ref());
            }
            async move {
                let counts: Vec<i64> = pipeline.query_async(&mut connection).await?;
                Ok::<_, redis::RedisError>((indices, counts))
            }
        });
        let mut counts = vec![0; batch.len()];
        for result in futures_util::future::join_all(requests).await {
            let (indices, published) = result.map_err(|e| format!("cluster: {e}"))?;
            for (index, count) in indices.into_iter().zip(published) {
                counts[index] = count;
            }
        }
        Ok(counts)
    }
}

/// Whether the cluster has sharded pub/sub (Redis 7): asks for a sharded
/// subscriber count, which older servers refuse.
async fn has_sharded_pubsub(cluster: &mut Cluster, channel: &str) -> Result<bool, String> {
    let mut command = redis::cmd("PUBSUB");
    command.arg("SHARDNUMSUB").arg(channel);
    match cluster
        .connection
        .route_command(command, owner_of(channel))
        .await
    {
        Ok(_) => Ok(true),
        Err(error)
            if error.is_io_error()
                || error.is_timeout()
                || error.is_connection_dropped()
                || error.is_unrecoverable_error() =>
        {
            Err(format!("cluster: {error}"))
        }
        Err(error) => {
            tracing::info!(%error, "no sharded pub/sub on this Redis Cluster: plain pub/sub");
            Ok(false)
        }
    }
}

/// Connects a cluster client; `pushes` makes it a RESP3 subscriber.
async fn connect(
    seeds: &[String],
    limit: Duration,
    pushes: Option<mpsc::UnboundedSender<PushInfo>>,
) -> Result<ClusterConnection, String> {
    let mut builder = ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(limit)
        .response_timeout(limit);
    if let Some(pushes) = pushes {
        builder = builder
            .use_protocol(ProtocolVersion::RESP3)
            .push_sender(pushes);
    }
    let client = builder.build().map_err(|e| format!("cluster: {e}"))?;
    timeout(limit, client.get_async_connection())
        .await
        .map_err(|_| "cluster: connection timed out".to_owned())?
        .map_err(|e| format!("cluster: {e}"))
}

/// One session on the cluster, from connecting to failing: returns why it
/// ended. The redis crate follows slot moves and failovers; what it cannot
/// see (a shard that dropped our sharded subscriptions when its slots
/// moved) is subscribed again here.
///
/// Two cluster connections: one subscribes and receives, the other
/// publishes and checks. The redis crate (1.2) takes every `sunsubscribe`
/// push for the reply to the oldest command in flight on that node's
/// connection, which is right for our `SUNSUBSCRIBE` but not for the one a
/// shard sends by itself when a slot moves away: on a shared connection a
/// `SPUBLISH` in flight got it as its reply, and every later reply went to
/// the command after its own (seen in the resharding test: the session
/// failed on a push where a count was due, and a subscription made
/// meanwhile was lost). On the subscriber's connection only (un)subscribe
/// commands are ever in flight, whose replies are all alike, and the
/// publisher's subscribes to nothing, so shards never push to it.
pub(super) async fn run_session(inner: &Arc<Inner>, seeds: &[String]) -> Result<Never, String> {
    let channels = inner.channels.get().ok_or("not attached")?;
    let limit = inner.config.operation_timeout;
    let (pushes_sender, mut pushes) = mpsc::unbounded_channel::<PushInfo>();
    let mut publisher = Cluster {
        connection: connect(seeds, limit, None).await?,
        flavor: Flavor { sharded: true },
    };
    publisher.flavor.sharded = match inner.config.sharded {
        Some(sharded) => sharded,
        None => has_sharded_pubsub(&mut publisher, &channels.all).await?,
    };
    let cluster = Cluster {
        connection: connect(seeds, limit, Some(pushes_sender)).await?,
        flavor: publisher.flavor,
    };

    let (commands, mut command_queue) = mpsc::unbounded_channel();
    let mut wanted = vec![channels.all.clone(), channels.own.clone()];
    {
        let mut subscriptions = inner.lock_subscriptions();
        subscriptions.session = Some(commands.clone());
        wanted.extend(subscriptions.desired.iter().cloned());
    }
    run_commands(
        &cluster,
        wanted
            .into_iter()
            .map(|channel| Command::Subscribe(channel, None))
            .collect(),
        limit,
    )
    .await?;

    let has_backlog = !inner.lock_queue().items.is_empty();
    let peers_before = inner.peers.load(Ordering::Relaxed);
    let numsub = cluster.flavor.numsub();
    if has_backlog && peers_before > 1 {
        if let Some(seen) =
            wait_for_peers(inner, &mut publisher.clone(), numsub, peers_before).await
        {
            inner.peers.store(seen, Ordering::Relaxed);
        }
    }
    inner.mark_connected();
    tracing::debug!(node = %inner.node_id, sharded = cluster.flavor.sharded,
        "Redis Cluster backplane connected");

    let receiving = async {
        while let Some(push) = pushes.recv().await {
            match push.kind {
                PushKind::Message | PushKind::SMessage => {
                    if let Some(Value::BulkString(payload)) = push.data.get(1) {
                        inner.handle(Bytes::copy_from_slice(payload));
                    }
                }
                // A shard drops its sharded subscribers when its slots move
                // away (resharding, failover): subscribe again where the
                // slot now lives, if the channel is still wanted.
                PushKind::SUnsubscribe | PushKind::Unsubscribe => {
                    if let Some(Value::BulkString(name)) = push.data.first() {
                        let name = String::from_utf8_lossy(name).into_owned();
                        let still_wanted = name == channels.all
                            || name == channels.own
                            || inner.lock_subscriptions().desired.contains(&name);
                        if still_wanted {
                            let _ = commands.send(Command::Subscribe(name, None));
                        }
                    }
                }
                // A node's connection dropped, and our subscriptions there
                // with it: subscribing again reconnects where they live.
                PushKind::Disconnection => {
                    tracing::info!("a cluster node's connection dropped: subscribing again");
                    resubscribe_all(inner, &commands);
                }
                _ => {}
            }
        }
        Err::<Never, _>("cluster: push channel closed".to_owned())
    };
    let subscribing = async {
        while let Some(first) = command_queue.recv().await {
            let mut batch = vec![first];
            while let Ok(next) = command_queue.try_recv() {
                batch.push(next);
            }
            run_commands(&cluster, batch, limit).await?;
        }
        Err::<Never, _>("subscription commands ended".to_owned())
    };
    tokio::select! {
        result = receiving => result,
        result = subscribing => result,
        result = super::publish_loop(inner, publisher.clone()) => result,
        result = health_loop(inner, publisher.clone(), &commands) => result,
    }
}

/// Runs (un)subscribe commands, one channel per command (the channels of
/// one sharded command must share a slot), and confirms them. The cluster
/// client may run commands for different nodes in any order, so only the
/// last command for each channel is sent: it is the state wanted.
async fn run_commands(
    cluster: &Cluster,
    commands: Vec<Command>,
    limit: Duration,
) -> Result<(), String> {
    let mut last: HashMap<String, bool> = HashMap::new();
    let mut confirmations = Vec::new();
    for command in commands {
        match command {
            Command::Subscribe(channel, done) => {
                last.insert(channel, true);
                confirmations.extend(done);
            }
            Command::Unsubscribe(channel) => {
                last.insert(channel, false);
            }
        }
    }
    let requests: Vec<_> = last
        .into_iter()
        .map(|(channel, subscribe)| {
            let mut connection = cluster.connection.clone();
            let name = if subscribe {
                cluster.flavor.subscribe()
            } else {
                cluster.flavor.unsubscribe()
            };
            async move {
                redis::cmd(name)
                    .arg(&channel)
                    .exec_async(&mut connection)
                    .await
            }
        })
        .collect();
    let results = timeout(limit, futures_util::future::join_all(requests))
        .await
        .map_err(|_| "cluster: (un)subscribe timed out".to_owned())?;
    for result in results {
        result.map_err(|e| format!("cluster: {e}"))?;
    }
    for done in confirmations {
        let _ = done.send(());
    }
    Ok(())
}

/// Checks every primary every interval; notes how many nodes listen; and
/// when the slots changed hands since the last check, subscribes again to
/// every channel this node needs.
///
/// A shard that loses a slot tells its sharded subscribers with a
/// `sunsubscribe` push, which the receiving loop acts on; but a subscribe
/// made in reaction can still go astray: the redis crate may take the push
/// for that subscribe's reply (see [`run_session`]), or route it by a slot
/// map older than the move. Comparing the slot map catches those; the
/// subscriptions are made again at the check after a change too, once
/// every node has learnt the new owners.
async fn health_loop(
    inner: &Inner,
    mut cluster: Cluster,
    commands: &mpsc::UnboundedSender<Command>,
) -> Result<Never, String> {
    let numsub = cluster.flavor.numsub();
    let mut slots: Option<String> = None;
    let mut settling = false;
    loop {
        let nodes = subscribed_nodes(inner, &mut cluster, numsub).await?;
        inner.nodes.store(nodes, Ordering::Relaxed);
        inner.peers.fetch_max(nodes, Ordering::Relaxed);
        redis::cmd("PING")
            .exec_async(&mut cluster.connection)
            .await
            .map_err(|e| format!("cluster: {e}"))?;
        let now: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut cluster.connection)
            .await
            .map_err(|e| format!("cluster: {e}"))?;
        let now = slot_owners(&now);
        let changed = slots.as_ref().is_some_and(|before| *before != now);
        if changed || settling {
            tracing::info!("the cluster's slots changed hands: subscribing again");
            resubscribe_all(inner, commands);
        }
        settling = changed;
        slots = Some(now);
        sleep(inner.config.health_check_interval).await;
    }
}

/// The slot ranges and their primaries' addresses, from `CLUSTER SLOTS`
/// (replicas and node ids left out: only who serves what matters here).
fn slot_owners(reply: &Value) -> String {
    let mut owners = Vec::new();
    if let Value::Array(ranges) = reply {
        for range in ranges {
            if let Value::Array(fields) = range {
                owners.push(format!("{:?}", fields.iter().take(3).collect::<Vec<_>>()));
            }
        }
    }
    owners.sort();
    owners.join(";")
}

/// Subscribes again to everything this node needs. Queued under the
/// subscriptions lock, so that it comes in order with the (un)subscribe
/// commands of membership changes.
fn resubscribe_all(inner: &Inner, commands: &mpsc::UnboundedSender<Command>) {
    let Some(channels) = inner.channels.get() else {
        return;
    };
    let subscriptions = inner.lock_subscriptions();
    let wanted = [&channels.all, &channels.own]
        .into_iter()
        .chain(subscriptions.desired.iter());
    for channel in wanted {
        let _ = commands.send(Command::Subscribe(channel.clone(), None));
    }
}
