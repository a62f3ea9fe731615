//! The connection registry: this process's [`HubLifetimeManager`].
//!
//! Connections by id, groups and users, each in its own `RwLock`ed map
//! that is only held to snapshot a recipient list (`Arc` clones), never
//! while pushing into queues. A broadcast is encoded once per protocol in
//! use among its recipients and the frozen bytes are shared by all of them.
//! The recipient list of `All` is cached between membership changes, so a
//! steady-state broadcast takes no per-connection lock work at all.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

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
        }
    }

    /// Registers a connection (after its handshake).
    pub(crate) fn add(&self, handle: &Handle) {
        {
            let mut connections = write!(self.connections);
            connections.map.insert(handle.id().clone(), handle.clone());
            connections.generation += 1;
        }
        if let Some(user) = handle.user() {
            write!(self.users)
                .entry(user.clone())
                .or_default()
                .insert(handle.id().clone(), handle.clone());
        }
    }

    /// Forgets a connection, its groups and its user entry.
    pub(crate) fn remove(&self, handle: &Handle) {
        let id = handle.id();
        {
            let mut connections = write!(self.connections);
            if connections.map.remove(id).is_some() {
                connections.generation += 1;
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
                }
            }
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

    /// Pushes `message` to `recipients`, encoding it once per protocol.
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

impl HubLifetimeManager for Registry {
    fn send(&self, target: Target, invocation: Invocation) -> BoxFuture<'_, Result<(), HubError>> {
        let recipients = self.recipients(&target);
        let result = if recipients.is_empty() {
            Ok(())
        } else {
            self.deliver(&recipients, &HubMessage::Invocation(invocation))
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
        if let Some(handle) = self.connection(&connection) {
            let mut groups = write!(self.groups);
            groups
                .by_connection
                .entry(connection.clone())
                .or_default()
                .insert(group.clone());
            groups
                .by_name
                .entry(group.clone())
                .or_default()
                .insert(connection.clone(), handle);
            drop(groups);
            // The connection may have ended meanwhile: `remove` has then
            // already cleaned its groups, so undo this late addition.
            if self.connection(&connection).is_none() {
                return self.remove_from_group(connection, group);
            }
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn remove_from_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        let mut groups = write!(self.groups);
        if let Some(names) = groups.by_connection.get_mut(&connection) {
            names.remove(&group);
            if names.is_empty() {
                groups.by_connection.remove(&connection);
            }
        }
        if let Some(members) = groups.by_name.get_mut(&group) {
            members.remove(&connection);
            if members.is_empty() {
                groups.by_name.remove(&group);
            }
        }
        drop(groups);
        Box::pin(std::future::ready(Ok(())))
    }
}
