//! Scale-out: several server processes that behave as one hub.
//!
//! A hub that outgrows one process runs as several behind a load
//! balancer. Each process (a *node*) delivers to the connections it holds;
//! a [`Backplane`] carries whatever must reach connections held by other
//! nodes: broadcasts, group and user sends, sends to one connection, group
//! membership changes and client results. This is the role of ASP.NET
//! Core's Redis backplane (`RedisHubLifetimeManager`).
//!
//! Without a backplane (the default) a hub delivers in-process only and
//! pays nothing for this module. With one, hub code, [`HubContext`] and the
//! typed proxies stay exactly the same:
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn run<H: hub_runtime::Hub>(hub: H) -> Result<(), hub_runtime::backplane::RedisBackplaneError> {
//! use hub_runtime::backplane::RedisBackplane;
//! use hub_runtime::server::HubServer;
//!
//! let server = HubServer::builder(hub)
//!     .backplane(RedisBackplane::connect("redis://127.0.0.1:6379").await?)
//!     .build();
//! # let _ = server;
//! # Ok(())
//! # }
//! ```
//!
//! # How a message crosses nodes
//!
//! The node that sends encodes the message once per protocol the hub
//! supports, delivers it to its own recipients with those bytes, and hands
//! the same bytes to the backplane once ([`Backplane::publish`]): one
//! publish per hub message, whatever the number of recipients. Every
//! receiving node finds its own recipients ([`LocalNode::deliver`]) and
//! queues the received bytes to each of them without encoding again.
//!
//! The `RedisBackplane` (feature `redis`) is the implementation that
//! ships; any other transport (NATS, a message bus) can implement
//! [`Backplane`] the same way.
//!
//! # Two traits, one direction
//!
//! The server holds the backplane ([`Backplane`], implemented here); the
//! backplane reaches the server only through [`LocalConnections`], a
//! trait defined here and implemented by the server's connection
//! registry. This module therefore imports nothing of the server, and a
//! backplane can be written and tested without it (socketioxide splits
//! its `CoreAdapter` and `SocketEmitter` the same way).
//!
//! [`HubContext`]: crate::HubContext

// Public so that its documentation (channels, Redis Cluster, the delivery
// policy while Redis is away) is on docs.rs; its types are re-exported
// below as well.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(feature = "redis")]
mod duplicates;
#[cfg(feature = "redis")]
mod wire;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::protocol::{HubMessage, HubProtocol, Invocation, Payload};
use crate::targets::{ConnectionId, Target};
use crate::{BoxFuture, HubError, HubErrorKind};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{BackplaneStats, RedisBackplane, RedisBackplaneBuilder, RedisBackplaneError};

/// Carries hub messages between the nodes of one hub.
///
/// The server calls it only for what its own connections cannot serve:
/// the local part of every send is delivered by the server itself, before
/// and whatever the backplane does, so that a backplane that is slow or
/// away never delays local delivery.
///
/// Implementations must not block: every method either returns at once or
/// returns a future.
pub trait Backplane: Send + Sync + 'static {
    /// Connects the backplane to the node it serves; called once, by
    /// [`HubServerBuilder::build`](crate::server::HubServerBuilder::build).
    /// `node` delivers what other nodes send.
    fn attach(&self, node: LocalNode);

    /// Sends `message` (already encoded in every protocol the hub supports)
    /// to the recipients of `target` held by other nodes. Fire-and-forget:
    /// returns at once.
    fn publish(&self, target: &Target, message: &EncodedMessage);

    /// Invokes a client method on a connection held by another node and
    /// waits for its answer (a client result). `invocation` has no
    /// invocation id: the node that holds the connection assigns one.
    /// Fails with [`HubErrorKind::ConnectionNotFound`] when no node holds
    /// the connection, and with [`HubErrorKind::Timeout`] after `timeout`.
    fn invoke(
        &self,
        connection: ConnectionId,
        invocation: EncodedMessage,
        timeout: Option<Duration>,
    ) -> BoxFuture<'static, Result<Payload, HubError>>;

    /// Adds a connection held by another node to a group; completes once
    /// that node has acknowledged (a connection that no node holds is
    /// ignored, as locally).
    fn add_to_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'static, Result<(), HubError>>;

    /// Removes a connection held by another node from a group; completes
    /// once that node has acknowledged.
    fn remove_from_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'static, Result<(), HubError>>;

    /// Aborts the connections of `target` (a connection or a user) held by
    /// other nodes; completes once it is sent (fire-and-forget, as a
    /// broadcast). The default sends nothing and fails, for backplanes
    /// that cannot carry it.
    fn abort(&self, target: Target) -> BoxFuture<'static, Result<(), HubError>> {
        let _ = target;
        Box::pin(std::future::ready(Err(HubError::with_kind(
            HubErrorKind::Transport,
            "this backplane cannot abort connections on other nodes",
        ))))
    }

    /// This node now holds recipients for `subscription`: receive what other
    /// nodes send to it. The future completes once the subscription is in
    /// effect (or could not be made now; the backplane then makes it when
    /// it can), so that a message sent after it reaches this node.
    ///
    /// Calls for the same subscription come in the order of the membership
    /// changes that caused them; the backplane keeps that order.
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'static, ()>;

    /// This node no longer holds recipients for `subscription`.
    fn unsubscribe(&self, subscription: Subscription);
}

/// What a node receives messages for, besides broadcasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Subscription {
    /// Messages for one connection held by this node.
    Connection(ConnectionId),
    /// Messages for a group with at least one member on this node.
    Group(String),
    /// Messages for a user with at least one connection on this node.
    User(String),
}

/// One hub message, encoded in each protocol of a hub.
///
/// Cheap to clone: the bytes are shared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncodedMessage {
    json: Option<Bytes>,
    messagepack: Option<Bytes>,
}

impl EncodedMessage {
    /// Encodes `message` once in each of `protocols`.
    pub fn encode(message: &HubMessage, protocols: &[HubProtocol]) -> Result<Self, HubError> {
        let mut encoded = EncodedMessage::default();
        for &protocol in protocols {
            if encoded.get(protocol).is_some() {
                continue;
            }
            let mut buffer = BytesMut::new();
            protocol.encode(message, &mut buffer).map_err(|error| {
                HubError::with_kind(HubErrorKind::Serialization, error.to_string())
            })?;
            encoded.set(protocol, buffer.freeze());
        }
        Ok(encoded)
    }

    /// The framed bytes in `protocol`, if the message was encoded in it.
    pub fn get(&self, protocol: HubProtocol) -> Option<&Bytes> {
        match protocol {
            HubProtocol::Json => self.json.as_ref(),
            HubProtocol::MessagePack => self.messagepack.as_ref(),
        }
    }

    /// Sets the framed bytes in `protocol`.
    pub fn set(&mut self, protocol: HubProtocol, bytes: Bytes) {
        match protocol {
            HubProtocol::Json => self.json = Some(bytes),
            HubProtocol::MessagePack => self.messagepack = Some(bytes),
        }
    }

    /// The protocols and bytes this message holds.
    pub fn iter(&self) -> impl Iterator<Item = (HubProtocol, &Bytes)> {
        HubProtocol::ALL
            .into_iter()
            .filter_map(|protocol| self.get(protocol).map(|bytes| (protocol, bytes)))
    }

    /// The total size of the encodings, in bytes.
    pub fn len(&self) -> usize {
        self.iter().map(|(_, bytes)| bytes.len()).sum()
    }

    /// Whether no encoding is held.
    pub fn is_empty(&self) -> bool {
        self.json.is_none() && self.messagepack.is_none()
    }
}

/// What a [`Backplane`] may do with the connections of its node.
///
/// Implemented by the server (its connection registry); a backplane only
/// sees it behind a [`LocalNode`]. Every method acts on this node's
/// connections alone and returns at once (or returns a future).
pub trait LocalConnections: Send + Sync + 'static {
    /// Queues `message` to this node's recipients of `target`, each in its
    /// own protocol, without encoding it again. Returns how many
    /// recipients it was queued to.
    fn deliver_remote(&self, target: &Target, message: &EncodedMessage) -> usize;

    /// Whether this node holds `connection`.
    fn holds(&self, connection: &ConnectionId) -> bool;

    /// Invokes a client method on a connection of this node for another
    /// node (a client result). `invocation` is the Invocation without id,
    /// encoded in the hub's protocols. `None` when this node does not hold
    /// the connection.
    fn invoke_remote(
        &self,
        connection: &ConnectionId,
        invocation: &EncodedMessage,
    ) -> Option<BoxFuture<'static, Result<Payload, HubError>>>;

    /// Adds a connection of this node to a group for another node. `None`
    /// when this node does not hold the connection; otherwise the future
    /// completes once this node receives the group's messages.
    fn add_local_to_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Option<BoxFuture<'static, ()>>;

    /// Removes a connection of this node from a group for another node.
    /// Returns whether this node holds the connection.
    fn remove_local_from_group(&self, connection: &ConnectionId, group: &str) -> bool;

    /// Aborts this node's connections of `target` (a connection or a user)
    /// for another node; returns how many. The default aborts nothing.
    fn abort_local(&self, target: &Target) -> usize {
        let _ = target;
        0
    }
}

/// The connections of this node, as a [`Backplane`] reaches them.
///
/// Cheap to clone. It does not keep the server alive: once the server is
/// dropped, every method does nothing.
#[derive(Clone)]
pub struct LocalNode {
    connections: Weak<dyn LocalConnections>,
    hub_name: &'static str,
}

impl std::fmt::Debug for LocalNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalNode")
            .field("hub", &self.hub_name)
            .finish_non_exhaustive()
    }
}

impl LocalNode {
    /// The node whose connections are `connections`, serving the hub
    /// named `hub_name`. Holds `connections` weakly.
    pub fn new<C: LocalConnections>(connections: &Arc<C>, hub_name: &'static str) -> Self {
        let connections: Weak<C> = Arc::downgrade(connections);
        LocalNode {
            connections,
            hub_name,
        }
    }

    /// The Rust type name of the hub: the default channel prefix of a
    /// backplane, as ASP.NET Core uses the hub's full type name.
    pub fn hub_name(&self) -> &'static str {
        self.hub_name
    }

    /// Queues `message` to this node's recipients of `target`, each in its
    /// own protocol, without encoding it again. Returns how many
    /// recipients it was queued to.
    pub fn deliver(&self, target: &Target, message: &EncodedMessage) -> usize {
        match self.connections.upgrade() {
            Some(connections) => connections.deliver_remote(target, message),
            None => 0,
        }
    }

    /// Whether this node holds `connection`.
    pub fn holds(&self, connection: &ConnectionId) -> bool {
        self.connections
            .upgrade()
            .is_some_and(|connections| connections.holds(connection))
    }

    /// Invokes a client method on a connection of this node (a client
    /// result asked by another node). `invocation` is the Invocation
    /// without id, encoded in the hub's protocols; it is read in the
    /// connection's protocol. `None` when this node does not hold the
    /// connection.
    pub fn invoke(
        &self,
        connection: &ConnectionId,
        invocation: &EncodedMessage,
    ) -> Option<BoxFuture<'static, Result<Payload, HubError>>> {
        self.connections
            .upgrade()?
            .invoke_remote(connection, invocation)
    }

    /// Adds a connection of this node to a group, as asked by another
    /// node. `None` when this node does not hold the connection; otherwise
    /// the future completes once this node receives the group's messages.
    pub fn add_to_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Option<BoxFuture<'static, ()>> {
        self.connections
            .upgrade()?
            .add_local_to_group(connection, group)
    }

    /// Aborts this node's connections of `target` (a connection or a
    /// user), as asked by another node. Returns how many.
    pub fn abort(&self, target: &Target) -> usize {
        match self.connections.upgrade() {
            Some(connections) => connections.abort_local(target),
            None => 0,
        }
    }

    /// Removes a connection of this node from a group. Returns whether this
    /// node holds the connection.
    pub fn remove_from_group(&self, connection: &ConnectionId, group: &str) -> bool {
        match self.connections.upgrade() {
            Some(connections) => connections.remove_local_from_group(connection, group),
            None => false,
        }
    }
}

/// Decodes one Invocation from the bytes of `protocol`.
pub(crate) fn decode_invocation(
    protocol: HubProtocol,
    bytes: &Bytes,
) -> Result<Invocation, HubError> {
    let mut buffer = BytesMut::from(&bytes[..]);
    let mut decoder = protocol.decoder(None);
    match decoder.decode(&mut buffer) {
        Ok(Some(HubMessage::Invocation(invocation))) => Ok(invocation),
        Ok(_) => Err(HubError::with_kind(
            HubErrorKind::Protocol,
            "the backplane carried something other than an Invocation",
        )),
        Err(error) => Err(HubError::with_kind(
            HubErrorKind::Protocol,
            error.to_string(),
        )),
    }
}
