use hub_runtime::{HubContext, hub, hub_client};

#[hub_client]
pub trait IQuiz {
    async fn question(&self, text: String) -> String;
}

pub struct QuizHub;

#[hub(client = IQuiz)]
impl QuizHub {}

async fn ask(ctx: HubContext<QuizHub>) {
    // A client result comes from one client: `client(id)` or `caller()`.
    let _ = ctx.clients().all().question("?".to_owned()).await;
}

fn main() {
    let _ = ask;
}
