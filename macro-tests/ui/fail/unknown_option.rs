use hub_runtime::{hub, hub_client};

#[hub_client(krate = hub_runtime)]
pub trait IClock {
    #[hub_method(rename = "Show")]
    async fn show_time(&self, now: u64);
}

pub struct ClockHub;

#[hub(client = IClock, clients = IOther)]
impl ClockHub {
    #[hub_method(nam = "Now")]
    async fn now(&self) -> u64 {
        0
    }
}

fn main() {}
