use hub_runtime::{hub, hub_client};

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: u64);
}

pub struct Opaque;

pub struct ClockHub;

#[hub(client = IClock)]
impl ClockHub {
    async fn take(&self, value: Opaque) -> u64 {
        let _ = value;
        0
    }

    async fn give(&self) -> Opaque {
        Opaque
    }
}

fn main() {}
