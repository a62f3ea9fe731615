//! `#[hub_server]` rejects what cannot be a hub contract.

use hub_runtime::{hub_server, HubError};

#[hub_server]
pub trait IBad {
    fn not_async(&self) -> i32;
    #[hub_method(send)]
    async fn sent_with_result(&self) -> Result<i32, HubError>;
    async fn on_connected(&self);
    async fn with_body(&self) -> i32 {
        1
    }
}

fn main() {}
