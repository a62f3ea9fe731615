//! The connection registry: this process's [`HubLifetimeManager`].
//!
//! Connections by id, groups and users, each in its own `RwLock`ed map
//! that is only held to snapshot a recipient list (`Arc` clones), never
//! while pushing into queues. A broadcast is encoded once per protocol in
//! use among its recipients and the frozen bytes are shared by all of them.
//! The recipient list of `All` is cached between membership changes, so a
//! steady-state broadcast takes no per-connection lock work at all.
//!
//! With a [`Backplane`] (scale-out), what the local connections cannot
//! serve is handed to it once per hub message, with the bytes already
//! encoded for every protocol; and the registry subscribes the node to the
//! connections, groups and users it holds. Without one, none of that runs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::backplane::{self, Backplane, EncodedMessage, LocalConnections, Subscription};
use crate::clients::{ConnectionId, HubLifetimeManager, Target};
use crate::connection::ConnectionHandle;
use crate::protocol::{HubMessage, HubProtocol, Invocation, Payload};
use crate::{BoxFuture, HubError, HubErrorKind};

type Handle = Arc<ConnectionHandle>;
type Members = HashMap<ConnectionId, Handle>;

#[derive(Default)]
struct Connections {
    map: Members,
    /// Bumped on every change, to validate the cached `All` snapshot.
    generation: u64,
}

#[derive(Default)]
struct Groups {
    by_name: HashMap<String, Members>,
    by_connection: HashMap<ConnectionId, HashSet<String>>,
}

/// Every local connection of one hub.
pub(crate) struct Registry {
    connections: RwLock<Connections>,
    all: Mutex<(u64, Arc<[Handle]>)>,
    groups: RwLock<Groups>,
    users: RwLock<HashMap<Arc<str>, Members>>,
    client_result_timeout: Option<Duration>,
    /// The scale-out backplane, if any: `None` costs nothing.
    remote: Option<Remote>,
}

/// A backplane and the protocols every message is encoded in for it.
struct Remote {
    backplane: Arc<dyn Backplane>,
    protocols: Vec<HubProtocol>,
}

// The maps stay consistent whatever panicked while holding a lock (every
// update is a single insert or remove), so poisoning is ignored.
macro_rules! read {
    ($lock:expr) => {
        $lock.read().unwrap_or_else(PoisonError::into_inner)
    };
}
macro_rules! write {
    ($lock:expr) => {
        $lock.write().unwrap_or_else(PoisonError::into_inner)
    };
}

impl Registry {
    pub(crate) fn new(client_result_timeout: Option<Duration>) -> Self {
        Registry {
            connections: RwLock::new(Connections::default()),
            all: Mutex::new((u64::MAX, Arc::from(Vec::new()))),
            groups: RwLock::new(Groups::default()),
            users: RwLock::new(HashMap::new()),
            client_result_timeout,
            remote: None,
        }
    }

    /// Delivers across nodes through `backplane`; every message crossing
    /// is encoded in each of `protocols`.
    pub(crate) fn with_backplane(
        mut self,
        backplane: Arc<dyn Backplane>,
        protocols: Vec<HubProtocol>,
    ) -> Self {
        self.remote = Some(Remote {
            backplane,
            protocols,
        });
        self
    }

    /// Registers a connection (after its handshake). With a backplane,
    /// returns the future of the node's subscriptions to the connection
    /// (and its user), which the handshake awaits so that messages other
    /// nodes send once the client knows its id reach it.
    pub(crate) fn add(&self, handle: &Handle) -> Option<BoxFuture<'static, ()>> {
        let mut subscribed = Vec::new();
        {
            let mut connections = write!(self.connections);
            connections.map.insert(handle.id().clone(), handle.clone());
            connections.generation += 1;
            if let Some(remote) = &self.remote {
                subscribed.push(
                    remote
                        .backplane
                        .subscribe(Subscription::Connection(handle.id().clone())),
                );
            }
        }
        if let Some(user) = handle.user() {
            let mut users = write!(self.users);
            let members = users.entry(user.clone()).or_default();
            if members.is_empty() {
                if let Some(remote) = &self.remote {
                    subscribed.push(
                        remote
                            .backplane
                            .subscribe(Subscription::User(user.to_string())),
                    );
                }
            }
            members.insert(handle.id().clone(), handle.clone());
        }
        if subscribed.is_empty() {
            return None;
        }
        Some(Box::pin(async move {
            for subscription in subscribed {
                subscription.await;
            }
        }))
    }

    /// Forgets a connection, its groups and its user entry.
    pub(crate) fn remove(&self, handle: &Handle) {
        let id = handle.id();
        {
            let mut connections = write!(self.connections);
            if connections.map.remove(id).is_some() {
                connections.generation += 1;
                if let Some(remote) = &self.remote {
                    remote
                        .backplane
                        .unsubscribe(Subscription::Connection(id.clone()));
                }
            }
        }
        {
            let mut groups = write!(self.groups);
            if let Some(names) = groups.by_connection.remove(id) {
                for name in names {
                    if let Some(members) = groups.by_name.get_mut(&name) {
                        members.remove(id);
                        if members.is_empty() {
                            groups.by_name.remove(&name);
                            self.unsubscribe(Subscription::Group(name));
                        }
                    }
                }
            }
        }
        if let Some(user) = handle.user() {
            let mut users = write!(self.users);
            if let Some(members) = users.get_mut(user) {
                members.remove(id);
                if members.is_empty() {
                    users.remove(user);
                    self.unsubscribe(Subscription::User(user.to_string()));
                }
            }
        }
    }

    fn unsubscribe(&self, subscription: Subscription) {
        if let Some(remote) = &self.remote {
            remote.backplane.unsubscribe(subscription);
        }
    }

    /// Whether this node holds `id`.
    pub(crate) fn holds(&self, id: &ConnectionId) -> bool {
        read!(self.connections).map.contains_key(id)
    }

    /// Delivers a message another node sent: to the local recipients of
    /// `target`, with the bytes of each one's protocol.
    pub(crate) fn deliver_remote(&self, target: &Target, message: &EncodedMessage) -> usize {
        let recipients = self.recipients(target);
        let mut delivered = 0;
        for recipient in &recipients {
            match message.get(recipient.protocol()) {
                Some(bytes) => {
                    recipient.push(bytes.clone());
                    delivered += 1;
                }
                None => tracing::debug!(connection = %recipient.id(),
                    "a message from another node lacks this connection's protocol"),
            }
        }
        delivered
    }

    /// A client result another node asks of a local connection.
    pub(crate) fn invoke_remote(
        &self,
        id: &ConnectionId,
        invocation: &EncodedMessage,
    ) -> Option<BoxFuture<'static, Result<Payload, HubError>>> {
        let handle = self.connection(id)?;
        let timeout = self.client_result_timeout;
        let decoded = match invocation.get(handle.protocol()) {
            Some(bytes) => backplane::decode_invocation(handle.protocol(), bytes),
            None => Err(HubError::with_kind(
                HubErrorKind::Protocol,
                "the invocation lacks the connection's protocol",
            )),
        };
        Some(Box::pin(
            async move { handle.invoke(decoded?, timeout).await },
        ))
    }

    /// Adds a local connection to a group for another node. `None` when
    /// the connection is not here.
    pub(crate) fn add_local_to_group(
        &self,
        id: &ConnectionId,
        group: &str,
    ) -> Option<BoxFuture<'static, ()>> {
        let handle = self.connection(id)?;
        let subscribed = self.group_insert(id, handle, group);
        Some(subscribed.unwrap_or_else(|| Box::pin(std::future::ready(()))))
    }

    /// Removes a local connection from a group for another node. Returns
    /// whether the connection is here.
    pub(crate) fn remove_local_from_group(&self, id: &ConnectionId, group: &str) -> bool {
        if !self.holds(id) {
            return false;
        }
        self.group_delete(id, group);
        true
    }

    /// Adds a membership; with a backplane and a first local member, the
    /// node subscribes to the group and the future says when that holds.
    fn group_insert(
        &self,
        id: &ConnectionId,
        handle: Handle,
        group: &str,
    ) -> Option<BoxFuture<'static, ()>> {
        let mut groups = write!(self.groups);
        groups
            .by_connection
            .entry(id.clone())
            .or_default()
            .insert(group.to_owned());
        let members = groups.by_name.entry(group.to_owned()).or_default();
        let first = members.is_empty();
        members.insert(id.clone(), handle);
        let subscribed = match &self.remote {
            Some(remote) if first => Some(
                remote
                    .backplane
                    .subscribe(Subscription::Group(group.to_owned())),
            ),
            _ => None,
        };
        drop(groups);
        // The connection may have ended meanwhile: `remove` has then
        // already cleaned its groups, so undo this late addition.
        if !self.holds(id) {
            self.group_delete(id, group);
        }
        subscribed
    }

    fn group_delete(&self, id: &ConnectionId, group: &str) {
        let mut groups = write!(self.groups);
        if let Some(names) = groups.by_connection.get_mut(id) {
            names.remove(group);
            if names.is_empty() {
                groups.by_connection.remove(id);
            }
        }
        if let Some(members) = groups.by_name.get_mut(group) {
            members.remove(id);
            if members.is_empty() {
                groups.by_name.remove(group);
                self.unsubscribe(Subscription::Group(group.to_owned()));
            }
        }
    }

    /// What of `target` other nodes must serve, if anything: sends to
    /// local connections by id stay here.
    fn remote_part(&self, target: Target) -> Option<Target> {
        match target {
            Target::Connection(id) => (!self.holds(&id)).then_some(Target::Connection(id)),
            Target::Connections(ids) => {
                let connections = read!(self.connections);
                let mut remote: Vec<ConnectionId> = ids
                    .into_iter()
                    .filter(|id| !connections.map.contains_key(id))
                    .collect();
                drop(connections);
                match remote.len() {
                    0 => None,
                    1 => remote.pop().map(Target::Connection),
                    _ => Some(Target::Connections(remote)),
                }
            }
            other => Some(other),
        }
    }

    /// How many connections are registered.
    pub(crate) fn len(&self) -> usize {
        read!(self.connections).map.len()
    }

    /// Every connection, from the cache when nothing changed since.
    fn all(&self) -> Arc<[Handle]> {
        let connections = read!(self.connections);
        let mut cache = self.all.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.0 != connections.generation {
            *cache = (
                connections.generation,
                connections.map.values().cloned().collect(),
            );
        }
        cache.1.clone()
    }

    fn connection(&self, id: &ConnectionId) -> Option<Handle> {
        read!(self.connections).map.get(id).cloned()
    }

    /// The recipients of `target`, each once.
    fn recipients(&self, target: &Target) -> Vec<Handle> {
        fn unique(handles: impl Iterator<Item = Handle>) -> Vec<Handle> {
            let mut seen = HashSet::new();
            handles.filter(|h| seen.insert(h.id().clone())).collect()
        }
        match target {
            Target::All => self.all().to_vec(),
            Target::AllExcept(excluded) => self
                .all()
                .iter()
                .filter(|h| !excluded.contains(h.id()))
                .cloned()
                .collect(),
            Target::Connection(id) => self.connection(id).into_iter().collect(),
            Target::Connections(ids) => {
                let connections = read!(self.connections);
                unique(ids.iter().filter_map(|id| connections.map.get(id).cloned()))
            }
            Target::Group(name) => read!(self.groups)
                .by_name
                .get(name)
                .map(|members| members.values().cloned().collect())
                .unwrap_or_default(),
            Target::Groups(names) => {
                let groups = read!(self.groups);
                unique(
                    names
                        .iter()
                        .filter_map(|name| groups.by_name.get(name))
                        .flat_map(|members| members.values().cloned()),
                )
            }
            Target::GroupExcept(name, excluded) => read!(self.groups)
                .by_name
                .get(name)
                .map(|members| {
                    members
                        .values()
                        .filter(|h| !excluded.contains(h.id()))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            Target::User(user) => read!(self.users)
                .get(user.as_str())
                .map(|members| members.values().cloned().collect())
                .unwrap_or_default(),
            Target::Users(names) => {
                let users = read!(self.users);
                unique(
                    names
                        .iter()
                        .filter_map(|name| users.get(name.as_str()))
                        .flat_map(|members| members.values().cloned()),
                )
            }
            #[allow(unreachable_patterns)]
            _ => Vec::new(),
        }
    }

    /// Aborts this node's connections of `target`; returns how many.
    pub(crate) fn abort_local(&self, target: &Target) -> usize {
        let recipients = self.recipients(target);
        for handle in &recipients {
            handle.abort(crate::connection::CloseReason::Aborted);
        }
        recipients.len()
    }

    /// Pushes `message` to `recipients`, encoding it once per protocol in use.
    pub(crate) fn deliver(
        &self,
        recipients: &[Handle],
        message: &HubMessage,
    ) -> Result<(), HubError> {
        let mut encoded: [Option<Bytes>; 2] = [None, None];
        for recipient in recipients {
            let protocol = recipient.protocol();
            let slot = &mut encoded[protocol_index(protocol)];
            let bytes = match slot {
                Some(bytes) => bytes.clone(),
                None => {
                    let mut buffer = BytesMut::new();
                    protocol.encode(message, &mut buffer).map_err(|error| {
                        HubError::with_kind(HubErrorKind::Serialization, error.to_string())
                            .with_source(error)
                    })?;
                    slot.insert(buffer.freeze()).clone()
                }
            };
            recipient.push(bytes);
        }
        Ok(())
    }
}

fn protocol_index(protocol: HubProtocol) -> usize {
    match protocol {
        HubProtocol::Json => 0,
        HubProtocol::MessagePack => 1,
    }
}

/// How the backplane reaches this node's connections: the backplane
/// defines the trait and the registry serves it, so that the backplane
/// imports nothing of the server.
impl LocalConnections for Registry {
    fn deliver_remote(&self, target: &Target, message: &EncodedMessage) -> usize {
        Registry::deliver_remote(self, target, message)
    }

    fn abort_local(&self, target: &Target) -> usize {
        Registry::abort_local(self, target)
    }

    fn holds(&self, connection: &ConnectionId) -> bool {
        Registry::holds(self, connection)
    }

    fn invoke_remote(
        &self,
        connection: &ConnectionId,
        invocation: &EncodedMessage,
    ) -> Option<BoxFuture<'static, Result<Payload, HubError>>> {
        Registry::invoke_remote(self, connection, invocation)
    }

    fn add_local_to_group(
        &self,
        connection: &ConnectionId,
        group: &str,
    ) -> Option<BoxFuture<'static, ()>> {
        Registry::add_local_to_group(self, connection, group)
    }

    fn remove_local_from_group(&self, connection: &ConnectionId, group: &str) -> bool {
        Registry::remove_local_from_group(self, connection, group)
    }
}

impl HubLifetimeManager for Registry {
    fn send(&self, target: Target, invocation: Invocation) -> BoxFuture<'_, Result<(), HubError>> {
        let recipients = self.recipients(&target);
        let message = HubMessage::Invocation(invocation);
        let result = match &self.remote {
            None if recipients.is_empty() => Ok(()),
            None => self.deliver(&recipients, &message),
            Some(remote) => match self.remote_part(target) {
                None => self.deliver(&recipients, &message),
                Some(remote_target) => {
                    // Encoded once per protocol of the hub: these bytes serve
                    // the local recipients and every other node.
                    EncodedMessage::encode(&message, &remote.protocols).map(|encoded| {
                        for recipient in &recipients {
                            if let Some(bytes) = encoded.get(recipient.protocol()) {
                                recipient.push(bytes.clone());
                            }
                        }
                        remote.backplane.publish(&remote_target, &encoded);
                    })
                }
            },
        };
        Box::pin(std::future::ready(result))
    }

    fn invoke(
        &self,
        connection: ConnectionId,
        invocation: Invocation,
    ) -> BoxFuture<'_, Result<Payload, HubError>> {
        let handle = self.connection(&connection);
        let timeout = self.client_result_timeout;
        if let (None, Some(remote)) = (&handle, &self.remote) {
            let message = HubMessage::Invocation(invocation);
            return match EncodedMessage::encode(&message, &remote.protocols) {
                Ok(encoded) => remote.backplane.invoke(connection, encoded, timeout),
                Err(error) => Box::pin(std::future::ready(Err(error))),
            };
        }
        Box::pin(async move {
            let Some(handle) = handle else {
                return Err(HubError::with_kind(
                    HubErrorKind::ConnectionNotFound,
                    format!("Connection '{connection}' does not exist."),
                ));
            };
            handle.invoke(invocation, timeout).await
        })
    }

    fn add_to_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        // As ASP.NET Core: an unknown connection is silently ignored.
        match (self.connection(&connection), &self.remote) {
            (Some(handle), _) => match self.group_insert(&connection, handle, &group) {
                Some(subscribed) => Box::pin(async move {
                    subscribed.await;
                    Ok(())
                }),
                None => Box::pin(std::future::ready(Ok(()))),
            },
            (None, Some(remote)) => remote.backplane.add_to_group(connection, group),
            (None, None) => Box::pin(std::future::ready(Ok(()))),
        }
    }

    fn abort(&self, target: Target) -> BoxFuture<'_, Result<usize, HubError>> {
        let local = match &target {
            Target::Connection(_) | Target::User(_) => self.abort_local(&target),
            _ => 0,
        };
        // A connection found here is nowhere else; a user may be anywhere.
        let elsewhere = match &target {
            Target::Connection(_) => local == 0,
            Target::User(_) => true,
            _ => false,
        };
        match (&self.remote, elsewhere) {
            (Some(remote), true) => {
                let remote = remote.backplane.abort(target);
                Box::pin(async move {
                    remote.await?;
                    Ok(local)
                })
            }
            _ => Box::pin(std::future::ready(Ok(local))),
        }
    }

    fn remove_from_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        if let Some(remote) = &self.remote {
            if !self.holds(&connection) {
                return remote.backplane.remove_from_group(connection, group);
            }
        }
        self.group_delete(&connection, &group);
        Box::pin(std::future::ready(Ok(())))
    }
}
