//! Who a connection belongs to: the async [`Authenticator`], successor of
//! [`UserIdProvider`] (which keeps working through it).

use std::future::Future;

use http::request::Parts;

use super::users::{Unauthorized, UserIdProvider};
use crate::{BoxFuture, Identity};

/// Turns the HTTP request of a connection (negotiate, and each transport
/// request: the WebSocket upgrade, Server-Sent Events, every Long Polling
/// request) into an [`Identity`], or refuses it with 401.
///
/// It may await (a database, a key set). Tower layers in front of the hub
/// run first: what they put in the request's extensions (a decoded JWT,
/// a session) is in `request.extensions`.
///
/// ```
/// use hub_runtime::Identity;
/// use hub_runtime::server::{Authenticator, Unauthorized, bearer_token};
///
/// /// Bearer tokens `NAME:ROLE`, checked against a (pretend) token store.
/// struct Tokens;
///
/// impl Authenticator for Tokens {
///     async fn authenticate(&self, request: &http::request::Parts) -> Result<Identity, Unauthorized> {
///         let Some(token) = bearer_token(request) else {
///             return Ok(Identity::anonymous());
///         };
///         tokio::task::yield_now().await; // a lookup would await here
///         let (name, role) = token.split_once(':').ok_or(Unauthorized)?;
///         Ok(Identity::user(name).with_role(role))
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// The identity behind `request`; `Ok(Identity::anonymous())` for a
    /// request without credentials, `Err(Unauthorized)` for bad ones.
    fn authenticate(
        &self,
        request: &Parts,
    ) -> impl Future<Output = Result<Identity, Unauthorized>> + Send;
}

/// The object-safe form of [`Authenticator`] the server stores.
pub(crate) trait DynAuthenticator: Send + Sync + 'static {
    fn authenticate_boxed<'a>(
        &'a self,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<Identity, Unauthorized>>;
}

impl<A: Authenticator> DynAuthenticator for A {
    fn authenticate_boxed<'a>(
        &'a self,
        request: &'a Parts,
    ) -> BoxFuture<'a, Result<Identity, Unauthorized>> {
        Box::pin(self.authenticate(request))
    }
}

/// A [`UserIdProvider`] as an [`Authenticator`]: the user id alone, no
/// roles or claims.
pub(crate) struct UserIds<P>(pub(crate) P);

impl<P: UserIdProvider> Authenticator for UserIds<P> {
    async fn authenticate(&self, request: &Parts) -> Result<Identity, Unauthorized> {
        Ok(self
            .0
            .user_id(request)?
            .map_or_else(Identity::anonymous, Identity::user))
    }
}
