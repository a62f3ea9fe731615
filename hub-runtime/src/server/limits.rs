//! Process-wide (per hub) caps: [`HubOptions::maximum_connections`] and
//! [`HubOptions::maximum_pending_negotiations`]. Requests beyond them get
//! 503, and the server says so in its log (at most once a second, so that
//! a flood does not flood the log too).
//!
//! [`HubOptions::maximum_connections`]: super::HubOptions::maximum_connections
//! [`HubOptions::maximum_pending_negotiations`]: super::HubOptions::maximum_pending_negotiations

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::response::Response;
use http::StatusCode;

use super::Shared;
use super::http::text;
use crate::Hub;

/// The second of the last warning logged.
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

/// Whether a warning may be logged now (one per second).
fn may_warn() -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    LAST_WARNING.swap(now, Ordering::Relaxed) != now
}

/// The 503 for a new connection (negotiate, or a transport request that
/// starts a session) when `maximum_connections` sessions run already.
pub(super) fn refuse_new_connection<H: Hub>(shared: &Shared<H>) -> Option<Response> {
    let limit = shared.options.maximum_connections?;
    let running = *shared.sessions.borrow();
    if running < limit {
        return None;
    }
    if may_warn() {
        tracing::warn!(
            running,
            limit,
            "connection limit reached (HubOptions::maximum_connections); new connections are refused with 503"
        );
    }
    Some(text(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server has reached its connection limit.",
    ))
}

/// The 503 for a negotiate when `pending` negotiated connections wait for
/// their transport request already.
pub(super) fn refuse_negotiate<H: Hub>(shared: &Shared<H>, pending: usize) -> Option<Response> {
    let limit = shared.options.maximum_pending_negotiations?;
    if pending < limit {
        return None;
    }
    if may_warn() {
        tracing::warn!(
            pending,
            limit,
            "negotiate limit reached (HubOptions::maximum_pending_negotiations); negotiates are refused with 503"
        );
    }
    Some(text(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many connections are being negotiated.",
    ))
}
