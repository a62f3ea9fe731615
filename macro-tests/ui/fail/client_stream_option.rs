use hub_runtime::hub_client;

#[hub_client]
pub trait Client {
    // `stream` is for hub methods only.
    #[hub_method(stream)]
    async fn receive(&self, value: i64);
}

fn main() {}
