//! Authorization declared with `#[authorize]` on a hub or its methods:
//! authenticated users only, roles, and [`Policy`] types.
//!
//! ```
//! use hub_runtime::{authorize, hub, hub_client};
//!
//! #[hub_client]
//! pub trait IChat {
//!     async fn receive(&self, message: String);
//! }
//!
//! mod policies {
//!     use hub_runtime::authorization::{AuthorizationRequest, SyncPolicy};
//!
//!     /// Allows renaming a room (the call's first argument) to its owner only.
//!     pub struct RoomOwner {
//!         pub owners: std::collections::HashMap<String, String>,
//!     }
//!
//!     impl SyncPolicy for RoomOwner {
//!         fn check(&self, request: &AuthorizationRequest<'_>) -> bool {
//!             let room: Option<String> = request.arguments.and_then(|a| a.bind(0).ok());
//!             room.and_then(|room| self.owners.get(&room)).map(String::as_str)
//!                 == request.identity.user_id()
//!         }
//!     }
//! }
//!
//! pub struct ChatHub;
//!
//! #[hub(client = IChat)]
//! #[authorize] // the whole hub: users only (401 at negotiate)
//! impl ChatHub {
//!     #[authorize(roles("admin", "moderator"))] // either role
//!     async fn ban(&self, user: String) {
//!         let _ = user;
//!     }
//!
//!     #[authorize(policy = policies::RoomOwner)] // a Policy type, checked by the compiler
//!     async fn rename_room(&self, room: String, name: String) {
//!         let _ = (room, name);
//!     }
//! }
//!
//! # #[cfg(feature = "server")]
//! # {
//! use hub_runtime::server::HubServer;
//!
//! // Every policy the hub names is registered, with its state; without
//! // `.policy(…)` `try_build` refuses.
//! assert!(HubServer::builder(ChatHub).try_build().is_err());
//! let server = HubServer::builder(ChatHub)
//!     .policy(policies::RoomOwner { owners: Default::default() })
//!     .try_build();
//! assert!(server.is_ok());
//! # }
//! ```
//!
//! A method refused is answered with an error Completion,
//! `Failed to invoke 'X' because user is unauthorized`, and the connection
//! stays usable; a hub refused answers 401 to negotiate and to the
//! transport requests. Several `#[authorize]` attributes must all hold.
//! Authorization runs before the hub filters
//! ([`HubFilter`](crate::filter::HubFilter)).
//!
//! A policy type named in an attribute must be registered on the server
//! (`HubServerBuilder::policy`), which gives it its state; the server
//! refuses to build otherwise.

use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use http::request::Parts;

use crate::invocation::Arguments;
use crate::{BoxFuture, Identity};

/// What one `#[authorize]` (or several, merged) requires: built by the
/// `#[hub]` macro as a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorization {
    /// Every group must contain a role of the caller (each
    /// `roles(…)` is one group: any of its roles).
    pub roles: &'static [&'static [&'static str]],
    /// Every policy must allow the call.
    pub policies: &'static [PolicyRef],
}

impl Authorization {
    /// Authenticated users only, nothing more.
    pub const AUTHENTICATED: Authorization = Authorization {
        roles: &[],
        policies: &[],
    };

    /// Whether `identity` passes the roles (and is authenticated); the
    /// policies are checked by [`Policies::allows`].
    pub fn allows_identity(&self, identity: &Identity) -> bool {
        identity.is_authenticated()
            && self
                .roles
                .iter()
                .all(|any| any.iter().any(|role| identity.is_in_role(role)))
    }
}

/// A [`Policy`] type named in an attribute: its path as written and its
/// `TypeId`.
#[derive(Clone, Copy)]
pub struct PolicyRef {
    name: &'static str,
    type_id: fn() -> TypeId,
}

impl PolicyRef {
    /// The policy `P`, named `name` in messages. Does not compile unless
    /// `P` implements [`Policy`].
    pub const fn of<P: Policy>(name: &'static str) -> Self {
        PolicyRef {
            name,
            type_id: TypeId::of::<P>,
        }
    }

    /// The policy's path as written in the attribute.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The policy's type.
    pub fn type_id(&self) -> TypeId {
        (self.type_id)()
    }
}

impl PartialEq for PolicyRef {
    fn eq(&self, other: &Self) -> bool {
        self.type_id() == other.type_id()
    }
}

impl Eq for PolicyRef {}

impl std::fmt::Debug for PolicyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// What a policy decides on: who calls, over which request, which method
/// with which arguments (both `None` when the whole hub is checked, at
/// negotiate and at the transport requests).
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    /// Who calls.
    pub identity: &'a Identity,
    /// The HTTP request (at negotiate, the negotiate request; at an
    /// invocation, the one that opened the connection), if any.
    pub request: Option<&'a Parts>,
    /// The method's wire name, for a method.
    pub method: Option<&'a str>,
    /// The method's arguments, still encoded (`bind::<T>(index)`).
    pub arguments: Option<&'a Arguments>,
}

/// An authorization policy, named by its type in
/// `#[authorize(policy = path::ToType)]` and registered, with whatever
/// state it needs, on the server (`HubServerBuilder::policy`).
///
/// `authorize` may await (a database). A policy that never awaits can
/// implement [`SyncPolicy`] instead.
///
/// ```
/// use hub_runtime::authorization::{AuthorizationRequest, Policy};
///
/// /// Allows a call whose first argument is a room the caller owns.
/// struct RoomOwner { owners: std::collections::HashMap<String, String> }
///
/// impl Policy for RoomOwner {
///     async fn authorize(&self, request: &AuthorizationRequest<'_>) -> bool {
///         let room: Option<String> = request.arguments.and_then(|a| a.bind(0).ok());
///         room.and_then(|room| self.owners.get(&room)).map(String::as_str)
///             == request.identity.user_id()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an authorization policy: implement `Policy` (async) or `SyncPolicy` for it",
    label = "named as a policy here",
    note = "implement `hub_runtime::authorization::Policy` (async) or `SyncPolicy` for `{Self}`, then register it with `HubServerBuilder::policy`"
)]
pub trait Policy: Send + Sync + 'static {
    /// Whether the call (or the connection) is allowed.
    fn authorize(&self, request: &AuthorizationRequest<'_>) -> impl Future<Output = bool> + Send;
}

/// A [`Policy`] that decides without awaiting.
///
/// ```
/// use hub_runtime::authorization::{AuthorizationRequest, SyncPolicy};
///
/// /// Users whose name starts with `staff_`.
/// struct Staff;
///
/// impl SyncPolicy for Staff {
///     fn check(&self, request: &AuthorizationRequest<'_>) -> bool {
///         request.identity.user_id().is_some_and(|user| user.starts_with("staff_"))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an authorization policy: implement `Policy` (async) or `SyncPolicy` for it",
    label = "named as a policy here",
    note = "implement `hub_runtime::authorization::Policy` (async) or `SyncPolicy` for `{Self}`, then register it with `HubServerBuilder::policy`"
)]
pub trait SyncPolicy: Send + Sync + 'static {
    /// Whether the call (or the connection) is allowed.
    fn check(&self, request: &AuthorizationRequest<'_>) -> bool;
}

impl<P: SyncPolicy> Policy for P {
    fn authorize(&self, request: &AuthorizationRequest<'_>) -> impl Future<Output = bool> + Send {
        std::future::ready(self.check(request))
    }
}

/// The object-safe form of [`Policy`].
trait DynPolicy: Send + Sync + 'static {
    fn authorize_boxed<'a>(&'a self, request: &'a AuthorizationRequest<'a>) -> BoxFuture<'a, bool>;
}

impl<P: Policy> DynPolicy for P {
    fn authorize_boxed<'a>(&'a self, request: &'a AuthorizationRequest<'a>) -> BoxFuture<'a, bool> {
        Box::pin(self.authorize(request))
    }
}

/// The policies registered on one server, by type.
#[derive(Default, Clone)]
pub struct Policies(HashMap<TypeId, Arc<dyn DynPolicy>>);

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("count", &self.0.len())
            .finish()
    }
}

impl Policies {
    /// Registers `policy` (replacing one of the same type).
    pub fn insert<P: Policy>(&mut self, policy: P) {
        self.0.insert(TypeId::of::<P>(), Arc::new(policy));
    }

    /// Whether a policy of that type is registered.
    pub fn contains(&self, policy: &PolicyRef) -> bool {
        self.0.contains_key(&policy.type_id())
    }

    /// Whether `request` passes `authorization`: the identity's roles
    /// first, then each policy in order (an unregistered one refuses).
    pub async fn allows(
        &self,
        authorization: &Authorization,
        request: &AuthorizationRequest<'_>,
    ) -> bool {
        if !authorization.allows_identity(request.identity) {
            return false;
        }
        for policy in authorization.policies {
            let Some(registered) = self.0.get(&policy.type_id()) else {
                return false;
            };
            if !registered.authorize_boxed(request).await {
                return false;
            }
        }
        true
    }
}

/// A policy named by a hub's `#[authorize]` but not registered on its
/// server: [`HubServerBuilder::try_build`](crate::server::HubServerBuilder::try_build)
/// refuses to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the policy `{policy}` named in `#[authorize]` of hub `{hub}` is not registered: add `.policy({policy} {{ … }})` to the server builder"
)]
pub struct UnregisteredPolicy {
    /// The hub's type name.
    pub hub: &'static str,
    /// The policy's path as written.
    pub policy: &'static str,
}
