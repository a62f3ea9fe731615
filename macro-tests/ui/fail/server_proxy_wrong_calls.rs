//! The typed proxy of a `#[hub_server]` trait: a wrong method, a wrong
//! argument type and a wrong result type do not compile.

use hub_runtime::client::HubConnection;
use hub_runtime::{HubError, Timestamp, hub_server};

#[hub_server]
pub trait IClockHub {
    async fn get_time(&self) -> Timestamp;
    async fn add(&self, a: i32, b: i32) -> i32;
}

async fn calls(connection: HubConnection) -> Result<(), HubError> {
    let hub = connection.hub::<IClockHubProxy>();
    hub.get_tme().await?;
    hub.add(1, "two").await?;
    let text: String = hub.get_time().await?;
    let _ = text;
    Ok(())
}

fn main() {
    let _ = calls;
}
