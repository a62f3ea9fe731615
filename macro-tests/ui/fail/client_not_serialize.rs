use hub_runtime::hub_client;

pub struct Opaque;

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: Opaque);
    async fn question(&self) -> Opaque;
}

fn main() {}
