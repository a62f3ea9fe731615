//! Who a connection belongs to: the pluggable [`UserIdProvider`].

use std::fmt;

use http::request::Parts;

/// A request refused by a [`UserIdProvider`]: answered with
/// `401 Unauthorized` (at negotiate and at the transport request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unauthorized;

impl fmt::Display for Unauthorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Unauthorized")
    }
}

impl std::error::Error for Unauthorized {}

/// Names the user behind an HTTP request (negotiate, WebSocket upgrade).
///
/// Returns `Ok(Some(user))` for a user, `Ok(None)` for an anonymous
/// connection, `Err(Unauthorized)` to refuse the request with 401. Every
/// connection of a user is reachable through `clients.user(…)`.
///
/// Any `Fn(&Parts) -> Result<Option<String>, Unauthorized>` is a provider.
/// [`bearer_token`] finds the token the official clients send:
///
/// ```
/// use hub_runtime::server::{Unauthorized, bearer_token};
///
/// // The token `user-NAME` names the user NAME; other tokens are refused.
/// let provider = |request: &http::request::Parts| match bearer_token(request) {
///     None => Ok(None),
///     Some(token) => token
///         .strip_prefix("user-")
///         .map(|name| Some(name.to_owned()))
///         .ok_or(Unauthorized),
/// };
/// # let _ = provider;
/// ```
pub trait UserIdProvider: Send + Sync + 'static {
    /// The user of `request`.
    fn user_id(&self, request: &Parts) -> Result<Option<String>, Unauthorized>;
}

impl<F> UserIdProvider for F
where
    F: Fn(&Parts) -> Result<Option<String>, Unauthorized> + Send + Sync + 'static,
{
    fn user_id(&self, request: &Parts) -> Result<Option<String>, Unauthorized> {
        self(request)
    }
}

/// The default provider: every connection is anonymous.
#[derive(Debug, Clone, Copy, Default)]
pub struct Anonymous;

impl UserIdProvider for Anonymous {
    fn user_id(&self, _request: &Parts) -> Result<Option<String>, Unauthorized> {
        Ok(None)
    }
}

/// The bearer token of a request: the `Authorization: Bearer T` header, or
/// else the `access_token` query parameter (percent-decoded), which is
/// where browsers put it for WebSockets and Server-Sent Events.
///
/// ```
/// let request = http::Request::get("/hub?id=x&access_token=a%20b").body(()).unwrap();
/// let (parts, ()) = request.into_parts();
/// assert_eq!(hub_runtime::server::bearer_token(&parts).as_deref(), Some("a b"));
/// ```
pub fn bearer_token(request: &Parts) -> Option<String> {
    if let Some(value) = request.headers.get(http::header::AUTHORIZATION) {
        if let Ok(text) = value.to_str() {
            let text = text.trim();
            if text.len() > 7 && text[..7].eq_ignore_ascii_case("bearer ") {
                return Some(text[7..].trim().to_owned());
            }
        }
    }
    query_parameter(request.uri.query()?, "access_token")
}

/// The percent-decoded value of the first parameter `name` of `query`.
pub(crate) fn query_parameter(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key).eq_ignore_ascii_case(name)).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
