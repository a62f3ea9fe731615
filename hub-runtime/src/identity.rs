//! [`Identity`]: who is behind a connection — user id, roles, claims, an
//! optional expiry and typed extensions — as an authenticator made it
//! from the HTTP request (see `server::Authenticator`).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// Who is behind a connection: what ASP.NET Core calls the user's
/// `ClaimsPrincipal`, in Rust's idiom.
///
/// An identity with a user id is *authenticated*; [`Identity::anonymous`]
/// is not. Roles are kept distinct and in ordinal order. Claims are
/// `(type, value)` pairs in the order they were added, several of one type
/// allowed. Typed extensions carry anything else an authentication layer
/// decoded (a JWT's claims struct, a tenant), read back by type.
///
/// ```
/// use hub_runtime::Identity;
///
/// #[derive(Clone)]
/// struct Tenant(u32);
///
/// let identity = Identity::user("alice")
///     .with_role("editor")
///     .with_role("admin")
///     .with_claim("email", "alice@example.com")
///     .with_extension(Tenant(7));
/// assert!(identity.is_authenticated());
/// assert_eq!(identity.user_id(), Some("alice"));
/// assert!(identity.is_in_role("admin"));
/// assert_eq!(identity.roles().collect::<Vec<_>>(), ["admin", "editor"]);
/// assert_eq!(identity.claim("email"), Some("alice@example.com"));
/// assert_eq!(identity.extension::<Tenant>().map(|t| t.0), Some(7));
/// assert!(!Identity::anonymous().is_authenticated());
/// ```
#[derive(Clone, Default)]
pub struct Identity {
    user_id: Option<Arc<str>>,
    roles: BTreeSet<String>,
    claims: Vec<(String, String)>,
    expires_at: Option<SystemTime>,
    extensions: http::Extensions,
}

impl Identity {
    /// Nobody: a connection without credentials.
    pub fn anonymous() -> Self {
        Identity::default()
    }

    /// The authenticated user `user_id` (what `clients().user(…)` addresses).
    pub fn user(user_id: impl Into<Arc<str>>) -> Self {
        Identity {
            user_id: Some(user_id.into()),
            ..Identity::default()
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.insert(role.into());
        self
    }

    /// Adds a claim of type `kind`.
    pub fn with_claim(mut self, kind: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.push((kind.into(), value.into()));
        self
    }

    /// Sets when the identity stops being valid (a token's `exp`). With
    /// `HubOptions::close_on_authentication_expiration` the connection is
    /// closed then.
    pub fn with_expiry(mut self, expires_at: SystemTime) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Adds a typed extension (one value per type; a second replaces the
    /// first).
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Whether a user is authenticated (the identity has a user id).
    pub fn is_authenticated(&self) -> bool {
        self.user_id.is_some()
    }

    /// The user id, `None` when anonymous.
    pub fn user_id(&self) -> Option<&str> {
        self.user_id.as_deref()
    }

    /// The user id, shared.
    pub fn user_id_arc(&self) -> Option<&Arc<str>> {
        self.user_id.as_ref()
    }

    /// Whether the identity has `role` (compared exactly, as ASP.NET Core's
    /// `IsInRole`).
    pub fn is_in_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// The roles, distinct, in ordinal order.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.iter().map(String::as_str)
    }

    /// The first claim of type `kind`.
    pub fn claim(&self, kind: &str) -> Option<&str> {
        self.claims
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, value)| value.as_str())
    }

    /// Every claim of type `kind`, in order.
    pub fn claims_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.claims
            .iter()
            .filter(move |(k, _)| k == kind)
            .map(|(_, value)| value.as_str())
    }

    /// Every claim, `(type, value)`, in order.
    pub fn claims(&self) -> impl Iterator<Item = (&str, &str)> {
        self.claims.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// When the identity stops being valid, if it ever does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether the identity has expired at `now`.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|expiry| now >= expiry)
    }

    /// The typed extension of type `T`.
    pub fn extension<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.extensions.get::<T>()
    }

    /// Every typed extension.
    pub fn extensions(&self) -> &http::Extensions {
        &self.extensions
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user_id", &self.user_id)
            .field("roles", &self.roles)
            .field("claims", &self.claims)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
