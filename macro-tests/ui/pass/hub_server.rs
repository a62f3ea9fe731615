//! A `#[hub_server]` contract: the hub implements the trait (with a hook),
//! and the typed proxy's calls have the trait's types.

use futures_util::Stream;
use hub_runtime::client::HubConnection;
use hub_runtime::hub::UploadStream;
use hub_runtime::proxy::ItemStream;
use hub_runtime::{CallContext, HubError, hub, hub_client, hub_server};

#[hub_client]
pub trait IChatClient {
    async fn receive(&self, message: String);
}

#[hub_server]
pub trait IChatHub {
    async fn send_message(&self, ctx: &CallContext<Self>, message: String) -> Result<(), HubError>;
    async fn count(&self) -> u64;
    async fn history(&self, limit: u32) -> impl Stream<Item = String>;
    async fn sum(&self, numbers: UploadStream<i64>) -> Result<i64, HubError>;
    #[hub_method(send, name = "note")]
    async fn fire(&self, text: String);
}

pub struct ChatHub;

#[hub(client = IChatClient)]
impl IChatHub for ChatHub {
    async fn send_message(&self, ctx: &CallContext<Self>, message: String) -> Result<(), HubError> {
        ctx.clients().all().receive(message).await
    }

    async fn count(&self) -> u64 {
        0
    }

    async fn history(&self, limit: u32) -> impl Stream<Item = String> {
        futures_util::stream::iter((0..limit).map(|n| n.to_string()))
    }

    async fn sum(&self, _numbers: UploadStream<i64>) -> Result<i64, HubError> {
        Ok(0)
    }

    async fn fire(&self, _text: String) {}

    async fn on_connected(&self, _ctx: CallContext<Self>) -> Result<(), HubError> {
        Ok(())
    }
}

#[allow(dead_code)]
async fn calls(connection: HubConnection) -> Result<(), HubError> {
    let hub = connection.hub::<IChatHubProxy>();
    hub.send_message("hi".to_owned()).await?;
    let count: u64 = hub.count().await?;
    let history: ItemStream<String> = hub.history(3)?;
    let sum: i64 = hub.sum(futures_util::stream::iter([1_i64, 2])).await?;
    hub.fire("note".to_owned()).await?;
    let _ = (count, history, sum);
    Ok(())
}

fn main() {
    let _ = hub_runtime::server::HubServer::new(ChatHub);
    assert_eq!(
        <ChatHub as hub_runtime::Hub>::METHODS
            .iter()
            .map(|method| method.name)
            .collect::<Vec<_>>(),
        ["SendMessage", "Count", "History", "Sum", "note"]
    );
}
