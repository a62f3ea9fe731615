use hub_runtime::{hub, hub_client};

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: u64);
}

#[hub(client = IClock)]
pub struct ClockHub;

fn main() {}
