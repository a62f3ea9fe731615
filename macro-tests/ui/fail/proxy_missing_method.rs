use hub_runtime::{HubContext, hub, hub_client};

#[hub_client]
pub trait IClock {
    async fn show_time(&self, now: u64);
}

pub struct ClockHub;

#[hub(client = IClock)]
impl ClockHub {}

async fn tick(ctx: HubContext<ClockHub>) {
    let _ = ctx.clients().all().show_date(1).await;
}

fn main() {
    let _ = tick;
}
