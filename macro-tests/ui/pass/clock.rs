//! The IClock contract of the ASP.NET Core sample, a hub with a context
//! parameter and `Result` returns, and a client implementation.

use std::sync::Arc;

use hub_runtime::{CallContext, HubContext, HubError, Timestamp, hub, hub_client};

#[hub_client]
pub trait IClock {
    /// The time, every second.
    async fn show_time(&self, now: Timestamp);
    /// A client result.
    async fn confirm(&self, question: String) -> bool;
}

pub struct ClockHub;

#[hub(client = IClock)]
impl ClockHub {
    pub async fn get_time(&self) -> Timestamp {
        Timestamp::now()
    }

    async fn ask(&self, ctx: CallContext<Self>, question: String) -> Result<bool, HubError> {
        ctx.clients().caller().confirm(question).await
    }

    #[hub_method(name = "tell")]
    async fn tell_others(&self, now: Timestamp, ctx: &CallContext<Self>) -> Result<(), HubError> {
        ctx.clients().others().show_time(now).await
    }

    #[hub_method(skip)]
    fn helper(&self) {}
}

struct Clock;

impl IClock for Clock {
    async fn show_time(&self, _now: Timestamp) {}

    async fn confirm(&self, _question: String) -> bool {
        true
    }
}

async fn tick(ctx: HubContext<ClockHub>) -> Result<(), HubError> {
    ctx.clients().all().show_time(Timestamp::now()).await?;
    ctx.clients().group("g").show_time(Timestamp::now()).await?;
    let _yes: bool = ctx.clients().client("id").confirm("?".to_owned()).await?;
    Ok(())
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let handlers = Clock.into_handlers();
    assert_eq!(handlers.names().count(), 2);
    ClockHub.helper();
    let _hub: Arc<ClockHub> = Arc::new(ClockHub);
    let _ = tick;
    fn spawnable(ctx: HubContext<ClockHub>) {
        assert_send(&tick(ctx));
    }
    let _ = spawnable;
}
