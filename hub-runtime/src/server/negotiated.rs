//! The table of negotiated connections: what `POST negotiate` stores
//! under a fresh token until the transport request takes it (or a POST
//! that comes first queues its body there).

use std::sync::PoisonError;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Negotiated, Shared};
use crate::Hub;

/// 16 random bytes from the OS, base64url without padding (22 URL-safe
/// characters), as ASP.NET Core makes connection ids and tokens.
pub(super) fn random_id() -> Option<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Stores a negotiated connection, forgetting those older than the
/// disconnect timeout.
pub(super) fn remember<H: Hub>(
    shared: &Shared<H>,
    token: String,
    connection_id: String,
    stateful: bool,
) {
    let now = Instant::now();
    let limit = shared.options.disconnect_timeout;
    let mut negotiated = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    negotiated.retain(|_, entry| now.duration_since(entry.created) < limit);
    negotiated.insert(
        token,
        Negotiated {
            connection_id,
            created: now,
            stateful,
            early_input: None,
        },
    );
}

/// Takes the negotiated connection of `token`, if it exists and is fresh.
pub(super) fn take_negotiated<H: Hub>(shared: &Shared<H>, token: &str) -> Option<Negotiated> {
    let entry = shared
        .negotiated
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(token)?;
    (entry.created.elapsed() < shared.options.disconnect_timeout).then_some(entry)
}

/// Queues a POST body for a negotiated connection whose transport request
/// has not come yet. Returns `None` when `token` is not negotiated, and
/// `Some(false)` when too many bodies wait already.
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
