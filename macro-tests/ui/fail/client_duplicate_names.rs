use hub_runtime::hub_client;

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: u64);
    #[hub_method(name = "showtime")]
    async fn show_time_again(&self, now: u64);
}

fn main() {}
