use hub_runtime::hub_client;

#[hub_client]
pub trait IClock {
    async fn no_self(now: u64);
    async fn by_value(self, now: u64);
    async fn by_mut(&mut self, now: u64);
}

fn main() {}
