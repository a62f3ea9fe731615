use hub_runtime::{hub, hub_client};

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: u64);
}

pub struct ClockHub;

#[hub(client = IClock)]
impl ClockHub {
    fn not_async(&self) -> u64 {
        0
    }

    async fn no_self(_now: u64) {}

    async fn generic<T>(&self, _value: T) {}

    async fn now(&self) {}

    #[hub_method(name = "NOW")]
    async fn now_again(&self) {}

    #[hub_method(skip)]
    fn helper(&self) {}
}

fn main() {}
