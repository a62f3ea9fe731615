use hub_runtime::hub_client;

#[hub_client]
pub struct IClock {
    now: u64,
}

fn main() {}
