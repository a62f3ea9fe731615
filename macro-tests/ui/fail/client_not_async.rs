use hub_runtime::hub_client;

#[hub_client]
pub trait IClock {
    fn show_time(&self, now: u64);
    async fn with_body(&self) {}
    const INTERVAL: u64;
}

fn main() {}
