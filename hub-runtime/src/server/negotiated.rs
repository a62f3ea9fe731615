//! The table of negotiated connections: what `POST negotiate` stores
//! under a fresh token until the transport request takes it (or a POST
//! that comes first queues its body there).

use std::sync::{Arc, PoisonError};
use std::time::Instant;

use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;

use super::responses::text;
use super::{Negotiated, Shared};
use crate::Hub;

/// 16 random bytes from the OS, base64url without padding (22 URL-safe
/// characters), as ASP.NET Core makes connection ids and tokens.
pub(super) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Two ids as [`random_id`] makes them (a connection id and its token)
/// from one call to the OS generator: negotiate needs both, and a
/// connect storm pays the system call per negotiate.
pub(super) fn random_id_pair() -> Option<(String, String)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    let (first, second) = bytes.split_at(16);
    Some((
        URL_SAFE_NO_PAD.encode(first),
        URL_SAFE_NO_PAD.encode(second),
    ))
}

/// Stores a negotiated connection, forgetting those older than the
/// disconnect timeout; refused when too many wait already.
/// (The refusal is boxed: it is the rare path; clippy `result_large_err`.)
pub(super) fn remember<H: Hub>(
    shared: &Shared<H>,
    token: String,
    entry: Negotiated,
) -> Result<(), Box<Response>> {
    let now = Instant::now();
    let limit = shared.options.disconnect_timeout;
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    negotiated.retain(|_, entry| now.duration_since(entry.created) < limit);
    if let Some(refused) = super::limits::refuse_negotiate(shared, negotiated.len()) {
        return Err(Box::new(refused));
    }
    negotiated.insert(token, entry);
    Ok(())
}

/// Takes the negotiated connection of `token` for a transport request of
/// `user`: 404 when it does not exist or is stale, 403 (and the token
/// stays negotiated for its owner) when `user` is not the user who
/// negotiated it — a token seen by someone else does not let them in.
#[allow(clippy::result_large_err)]
pub(super) fn take_negotiated<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    user: &Option<Arc<str>>,
) -> Result<Negotiated, Box<Response>> {
    let not_found = || Box::new(text(StatusCode::NOT_FOUND, "No Connection with that ID"));
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let Some(entry) = negotiated.get(token) else {
        return Err(not_found());
    };
    if entry.created.elapsed() >= shared.options.disconnect_timeout {
        negotiated.remove(token);
        return Err(not_found());
    }
    if entry.user != *user {
        return Err(Box::new(text(StatusCode::FORBIDDEN, "Forbidden")));
    }
    negotiated.remove(token).ok_or_else(not_found)
}

/// Queues a POST body for a negotiated connection whose transport request
/// has not come yet. Returns `None` when `token` is not negotiated, and
/// `Some(false)` when too many bodies wait already. The caller has checked
/// the user with [`negotiated_user_matches`].
pub(super) fn queue_early_post<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    body: bytes::Bytes,
) -> Option<bool> {
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let entry = negotiated
        .get_mut(token)
        .filter(|entry| entry.created.elapsed() < shared.options.disconnect_timeout)?;
    let (sender, _) = entry
        .early_input
        .get_or_insert_with(crate::server::transport::post_channel);
    Some(sender.try_send(body).is_ok())
}

/// Whether a request of `user` may use the negotiated (not yet live)
/// token `token`: `true` when the token is not negotiated (the caller then
/// answers 404) or was negotiated by `user`.
pub(super) fn negotiated_user_matches<H: Hub>(
    shared: &Shared<H>,
    token: &str,
    user: &Option<Arc<str>>,
) -> bool {
    shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(token)
        .is_none_or(|entry| entry.user == *user)
}
