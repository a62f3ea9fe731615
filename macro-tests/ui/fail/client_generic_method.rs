use hub_runtime::hub_client;

#[hub_client]
pub trait IClock {
    async fn show<T: serde::Serialize>(&self, value: T);
}

fn main() {}
