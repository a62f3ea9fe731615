//! Addressing clients: connection ids, targets and the typed proxies'
//! runtime side.
//!
//! A `#[hub_client]` trait generates two proxy types that wrap the targets
//! of this module: one over a [`BroadcastTarget`] (many connections; only
//! the trait's methods without a return value) and one over a
//! [`SingleTarget`] (one connection; every method, including client results).
//! [`HubClients`] hands them out.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::protocol::{Invocation, Payload};
use crate::{BoxFuture, HubError};

/// The public id of one connection (`connectionId` in negotiate).
///
/// Cheap to clone. Built from the forms users hold ids in: `&str`,
/// `String`, `&String`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(Arc<str>);

impl ConnectionId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ConnectionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for ConnectionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ConnectionId {
    fn from(id: &str) -> Self {
        ConnectionId(Arc::from(id))
    }
}

impl From<String> for ConnectionId {
    fn from(id: String) -> Self {
        ConnectionId(Arc::from(id))
    }
}

impl From<&String> for ConnectionId {
    fn from(id: &String) -> Self {
        ConnectionId(Arc::from(id.as_str()))
    }
}

impl From<&ConnectionId> for ConnectionId {
    fn from(id: &ConnectionId) -> Self {
        id.clone()
    }
}

impl serde::Serialize for ConnectionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ConnectionId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(ConnectionId::from)
    }
}

/// Which connections a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every connection of the hub.
    All,
    /// Every connection but these.
    AllExcept(Vec<ConnectionId>),
    /// One connection.
    Connection(ConnectionId),
    /// These connections.
    Connections(Vec<ConnectionId>),
    /// The members of a group.
    Group(String),
    /// The members of any of these groups, each connection once.
    Groups(Vec<String>),
    /// The members of a group but these connections.
    GroupExcept(String, Vec<ConnectionId>),
    /// Every connection of a user.
    User(String),
    /// Every connection of these users.
    Users(Vec<String>),
}

/// Delivers messages to a hub's connections: the role of ASP.NET Core's
/// `HubLifetimeManager`.
///
/// The server's connection registry implements it for one process; a
/// backplane implements it across processes. [`HubContext`], the typed
/// proxies and group management all go through it, so hub code does not
/// change when the delivery does.
///
/// [`HubContext`]: crate::HubContext
pub trait HubLifetimeManager: Send + Sync + 'static {
    /// Sends `invocation` (fire-and-forget: no invocation id) to `target`.
    /// Returns once the message is queued for every local recipient.
    fn send(&self, target: Target, invocation: Invocation) -> BoxFuture<'_, Result<(), HubError>>;

    /// Invokes a method on one connection and waits for its answer (a
    /// client result). The manager assigns the invocation id.
    fn invoke(
        &self,
        connection: ConnectionId,
        invocation: Invocation,
    ) -> BoxFuture<'_, Result<Payload, HubError>>;

    /// Adds a connection to a group.
    fn add_to_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>>;

    /// Removes a connection from a group.
    fn remove_from_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>>;

    /// Aborts the connections of `target` (a [`Target::Connection`] or a
    /// [`Target::User`]; other targets abort nothing): each gets a Close
    /// message with an error and its transport ends. With a backplane,
    /// connections on other nodes are aborted too. Returns how many were
    /// connected to this node.
    ///
    /// The default aborts nothing and fails: a manager that cannot reach
    /// connections says so rather than pretending.
    fn abort(&self, target: Target) -> BoxFuture<'_, Result<usize, HubError>> {
        let _ = target;
        Box::pin(std::future::ready(Err(HubError::with_kind(
            crate::HubErrorKind::ConnectionNotFound,
            "this lifetime manager cannot abort connections",
        ))))
    }
}

/// The two typed proxy types of a `#[hub_client]` trait.
///
/// Implemented by the contract type that `#[hub_client]` generates
/// (`IClockContract` for a trait `IClock`); a hub names it with
/// `#[hub(client = IClock)]`.
pub trait ClientContract: 'static {
    /// The proxy for many connections: only fire-and-forget methods.
    type Broadcast: From<BroadcastTarget>;
    /// The proxy for one connection: every method, client results included.
    type Single: From<SingleTarget>;
}

fn invocation(method: &'static str, arguments: Vec<Payload>) -> Invocation {
    Invocation {
        target: method.to_owned(),
        arguments,
        ..Invocation::default()
    }
}

/// Many connections, as the runtime side of a broadcast proxy.
#[derive(Clone)]
pub struct BroadcastTarget {
    manager: Arc<dyn HubLifetimeManager>,
    target: Target,
}

impl BroadcastTarget {
    /// A target over `manager`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>, target: Target) -> Self {
        BroadcastTarget { manager, target }
    }

    /// Which connections this addresses.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends the client method `method` (its wire name) with `arguments`.
    pub async fn send(
        &self,
        method: &'static str,
        arguments: Vec<Payload>,
    ) -> Result<(), HubError> {
        self.manager
            .send(self.target.clone(), invocation(method, arguments))
            .await
    }
}

/// One connection, as the runtime side of a single-connection proxy.
#[derive(Clone)]
pub struct SingleTarget {
    manager: Arc<dyn HubLifetimeManager>,
    connection: ConnectionId,
}

impl SingleTarget {
    /// A target over `manager`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>, connection: ConnectionId) -> Self {
        SingleTarget {
            manager,
            connection,
        }
    }

    /// The addressed connection.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection
    }

    /// Sends the client method `method` without waiting for an answer.
    pub async fn send(
        &self,
        method: &'static str,
        arguments: Vec<Payload>,
    ) -> Result<(), HubError> {
        self.manager
            .send(
                Target::Connection(self.connection.clone()),
                invocation(method, arguments),
            )
            .await
    }

    /// Invokes the client method `method` and waits for its typed result.
    pub async fn invoke<T: DeserializeOwned>(
        &self,
        method: &'static str,
        arguments: Vec<Payload>,
    ) -> Result<T, HubError> {
        let payload = self
            .manager
            .invoke(self.connection.clone(), invocation(method, arguments))
            .await?;
        payload.deserialize().map_err(|error| {
            HubError::with_kind(
                crate::HubErrorKind::Serialization,
                format!(
                    "Error trying to deserialize result to {}. {error}",
                    std::any::type_name::<T>()
                ),
            )
        })
    }
}

fn ids<I>(ids: I) -> Vec<ConnectionId>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    ids.into_iter()
        .map(|id| ConnectionId::from(id.as_ref()))
        .collect()
}

fn names<I>(names: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    names
        .into_iter()
        .map(|name| name.as_ref().to_owned())
        .collect()
}

/// The typed clients of a hub: `all()`, `group("g")`, `client(&id)`, …
///
/// Obtained from [`HubContext::clients`](crate::HubContext::clients) or, in
/// a hub method, from [`CallContext::clients`](crate::CallContext::clients).
///
/// Every target takes connection ids, group names and user names in the
/// forms code holds them: anything that is [`AsRef<str>`] — `&str`,
/// `String`, `&String`, [`ConnectionId`], `&ConnectionId`, and references
/// to those. The targets of several (`clients`, `all_except`, `groups`,
/// `group_except`, `users`) take an array, a slice, a `Vec`, a reference
/// to any of these, or any iterator of such items:
///
/// ```
/// # use hub_runtime::{HubClients, clients::ClientContract};
/// # fn targets<C: ClientContract>(clients: &HubClients<C>, id: &hub_runtime::ConnectionId) {
/// let ids: Vec<String> = vec!["a".into(), "b".into()];
/// let _ = clients.client(id);
/// let _ = clients.clients(&ids);
/// let _ = clients.all_except(&["a", "b"]);
/// let _ = clients.groups(ids.iter().filter(|id| id.len() == 1));
/// # }
/// ```
pub struct HubClients<C> {
    manager: Arc<dyn HubLifetimeManager>,
    contract: PhantomData<fn() -> C>,
}

impl<C> Clone for HubClients<C> {
    fn clone(&self) -> Self {
        HubClients {
            manager: self.manager.clone(),
            contract: PhantomData,
        }
    }
}

impl<C: ClientContract> HubClients<C> {
    /// Clients over `manager`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>) -> Self {
        HubClients {
            manager,
            contract: PhantomData,
        }
    }

    fn many(&self, target: Target) -> C::Broadcast {
        BroadcastTarget::new(self.manager.clone(), target).into()
    }

    fn single(&self, connection: ConnectionId) -> C::Single {
        SingleTarget::new(self.manager.clone(), connection).into()
    }

    /// Every connection.
    pub fn all(&self) -> C::Broadcast {
        self.many(Target::All)
    }

    /// Every connection but `excluded`.
    pub fn all_except<I>(&self, excluded: I) -> C::Broadcast
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.many(Target::AllExcept(ids(excluded)))
    }

    /// One connection; its proxy also has the methods that return a value.
    pub fn client(&self, connection: impl AsRef<str>) -> C::Single {
        self.single(ConnectionId::from(connection.as_ref()))
    }

    /// These connections.
    pub fn clients<I>(&self, connections: I) -> C::Broadcast
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.many(Target::Connections(ids(connections)))
    }

    /// The members of `group`.
    pub fn group(&self, group: impl AsRef<str>) -> C::Broadcast {
        self.many(Target::Group(group.as_ref().to_owned()))
    }

    /// The members of any of `groups`.
    pub fn groups<I>(&self, groups: I) -> C::Broadcast
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.many(Target::Groups(names(groups)))
    }

    /// The members of `group` but `excluded`.
    pub fn group_except<I>(&self, group: impl AsRef<str>, excluded: I) -> C::Broadcast
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.many(Target::GroupExcept(
            group.as_ref().to_owned(),
            ids(excluded),
        ))
    }

    /// Every connection of `user`.
    pub fn user(&self, user: impl AsRef<str>) -> C::Broadcast {
        self.many(Target::User(user.as_ref().to_owned()))
    }

    /// Every connection of these users.
    pub fn users<I>(&self, users: I) -> C::Broadcast
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.many(Target::Users(names(users)))
    }
}

/// The clients as seen from inside a hub method: everything
/// [`HubClients`] has, plus the caller-relative targets.
pub struct CallerClients<C> {
    clients: HubClients<C>,
    caller: ConnectionId,
}

impl<C> Clone for CallerClients<C> {
    fn clone(&self) -> Self {
        CallerClients {
            clients: self.clients.clone(),
            caller: self.caller.clone(),
        }
    }
}

// The caller's id is already a `ConnectionId`: these share it rather than
// copy it through the `AsRef<str>` of the public targets.
impl<C: ClientContract> CallerClients<C> {
    /// The clients of `manager`, seen from `caller`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>, caller: ConnectionId) -> Self {
        CallerClients {
            clients: HubClients::new(manager),
            caller,
        }
    }

    /// The calling connection; its proxy also has the methods that return a
    /// value (client results).
    pub fn caller(&self) -> C::Single {
        self.clients.single(self.caller.clone())
    }

    /// Every connection but the caller.
    pub fn others(&self) -> C::Broadcast {
        self.clients
            .many(Target::AllExcept(vec![self.caller.clone()]))
    }

    /// The members of `group` but the caller.
    pub fn others_in_group(&self, group: impl AsRef<str>) -> C::Broadcast {
        self.clients.many(Target::GroupExcept(
            group.as_ref().to_owned(),
            vec![self.caller.clone()],
        ))
    }
}

impl<C> std::ops::Deref for CallerClients<C> {
    type Target = HubClients<C>;

    fn deref(&self) -> &HubClients<C> {
        &self.clients
    }
}

/// Group membership: `add` and `remove` by connection id.
#[derive(Clone)]
pub struct GroupManager {
    manager: Arc<dyn HubLifetimeManager>,
}

impl GroupManager {
    /// Groups over `manager`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>) -> Self {
        GroupManager { manager }
    }

    /// Adds `connection` to `group`. Membership ends when the connection does.
    pub async fn add(
        &self,
        connection: impl Into<ConnectionId>,
        group: impl Into<String>,
    ) -> Result<(), HubError> {
        self.manager
            .add_to_group(connection.into(), group.into())
            .await
    }

    /// Removes `connection` from `group`.
    pub async fn remove(
        &self,
        connection: impl Into<ConnectionId>,
        group: impl Into<String>,
    ) -> Result<(), HubError> {
        self.manager
            .remove_from_group(connection.into(), group.into())
            .await
    }
}
