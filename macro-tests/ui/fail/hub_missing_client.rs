use hub_runtime::hub;

pub struct ClockHub;

#[hub]
impl ClockHub {
    async fn now(&self) -> u64 {
        0
    }
}

fn main() {}
