//! [`ConnectionContext`]: what the server knows about one connection —
//! its id, identity, the HTTP request that opened it, its typed items —
//! and the way to abort it. Hub methods reach it through
//! [`CallContext`](crate::CallContext), filters directly.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use http::request::Parts;

use crate::Identity;
use crate::targets::ConnectionId;

/// One connection as hub methods, hooks and filters see it. Cheap to share
/// (the server hands out an `Arc`).
pub struct ConnectionContext {
    connection_id: ConnectionId,
    identity: Arc<Identity>,
    request: Option<Parts>,
    items: ConnectionItems,
    aborter: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for ConnectionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionContext")
            .field("connection_id", &self.connection_id)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl ConnectionContext {
    /// The context of `connection_id` for `identity`, opened by `request`
    /// (`None` outside a server, e.g. in a unit test of a hub method).
    pub fn new(connection_id: ConnectionId, identity: Identity, request: Option<Parts>) -> Self {
        ConnectionContext {
            connection_id,
            identity: Arc::new(identity),
            request,
            items: ConnectionItems::default(),
            aborter: OnceLock::new(),
        }
    }

    /// The connection id.
    pub fn connection_id(&self) -> &ConnectionId {
        &self.connection_id
    }

    /// Who is behind the connection.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The user id, `None` when anonymous.
    pub fn user_id(&self) -> Option<&str> {
        self.identity.user_id()
    }

    /// The HTTP request that opened the connection: the WebSocket upgrade,
    /// or the first request of Server-Sent Events and Long Polling (the
    /// transport's, not negotiate's). Method, URI, headers and extensions
    /// (what tower layers in front of the hub put there).
    pub fn request(&self) -> Option<&Parts> {
        self.request.as_ref()
    }

    /// The client's address, when the app is served with
    /// `hub_runtime::server::serve` or with axum's
    /// `into_make_service_with_connect_info::<SocketAddr>()` (both put
    /// axum's `ConnectInfo` in each request).
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.request
            .as_ref()?
            .extensions
            .get::<axum_connect_info::ConnectInfo>()
            .map(|info| info.0)
    }

    /// The connection's typed items, shared by all its methods and filters.
    pub fn items(&self) -> &ConnectionItems {
        &self.items
    }

    /// Closes the connection: the client gets a Close message with an
    /// error, then the transport ends. Does nothing outside a server or
    /// when the connection is already closing.
    pub fn abort(&self) {
        if let Some(abort) = self.aborter.get() {
            abort();
        }
    }

    /// Sets what [`ConnectionContext::abort`] does (the server, once).
    #[cfg(feature = "server")]
    pub(crate) fn set_aborter(&self, abort: Box<dyn Fn() + Send + Sync>) {
        let _ = self.aborter.set(abort);
    }
}

/// The client address type axum puts in the request's extensions
/// (`ConnectInfo<SocketAddr>`), named here without making the always
/// compiled part of the crate depend on axum.
#[cfg(feature = "server")]
mod axum_connect_info {
    pub(super) type ConnectInfo = axum::extract::ConnectInfo<std::net::SocketAddr>;
}
#[cfg(not(feature = "server"))]
mod axum_connect_info {
    /// Never present without the server.
    #[derive(Clone)]
    pub(super) struct ConnectInfo(pub(super) std::net::SocketAddr);
}

/// Typed per-connection items, `http::Extensions`-style: one value per
/// type, set and read by any method or filter of the connection, gone
/// when it closes (ASP.NET Core's `Context.Items`, typed).
///
/// ```
/// use hub_runtime::hub::ConnectionContext;
///
/// #[derive(Clone, Default)]
/// struct Nickname(String);
///
/// let context = ConnectionContext::new("c1".into(), hub_runtime::Identity::anonymous(), None);
/// context.items().insert(Nickname("ada".into()));
/// assert_eq!(context.items().get::<Nickname>().map(|n| n.0), Some("ada".to_owned()));
/// context.items().update(|n: &mut Nickname| n.0.push('!'));
/// assert_eq!(context.items().get::<Nickname>().unwrap().0, "ada!");
/// ```
#[derive(Default)]
pub struct ConnectionItems(Mutex<http::Extensions>);

impl ConnectionItems {
    fn lock(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        // Plain values: consistent whatever panicked while holding them.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.lock().insert(value)
    }

    /// A copy of the value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().get::<T>().cloned()
    }

    /// Removes the value of type `T`.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.lock().remove::<T>()
    }

    /// Runs `change` on the value of type `T` (its default first when
    /// absent) and returns what `change` returns.
    pub fn update<T, R>(&self, change: impl FnOnce(&mut T) -> R) -> R
    where
        T: Clone + Default + Send + Sync + 'static,
    {
        change(self.lock().get_or_insert_default::<T>())
    }
}
