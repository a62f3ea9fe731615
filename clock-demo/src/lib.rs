//! The clock demo contract: ASP.NET Core's "Host ASP.NET Core SignalR in
//! background services" sample, in Rust.
//!
//! A background worker calls `show_time` on every client each second
//! through a `HubContext<ClockHub>`; clients may also ask for the time.

use hub_runtime::{Timestamp, hub, hub_client};

/// What the server calls on clock clients (`IClock` in the sample).
#[hub_client]
pub trait IClock {
    /// Shows the server's current time.
    async fn show_time(&self, now: Timestamp);
}

/// The clock hub: clients connect to it to receive the time.
#[derive(Debug, Default)]
pub struct ClockHub;

#[hub(client = IClock)]
impl ClockHub {
    /// The server's current time, on request (`GetTime`).
    pub async fn get_time(&self) -> Timestamp {
        Timestamp::now()
    }
}
