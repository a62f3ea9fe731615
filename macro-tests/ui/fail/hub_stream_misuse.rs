use hub_runtime::hub::UploadStream;
use hub_runtime::{CallContext, HubError, hub, hub_client};

#[hub_client]
pub trait Client {
    async fn receive(&self, value: i64);
}

pub struct StreamHub;

#[hub(client = Client)]
impl StreamHub {
    // An upload stream is taken by value.
    async fn by_ref(&self, numbers: &UploadStream<i64>) -> i64 {
        let _ = numbers;
        0
    }

    // The item type must be named.
    async fn untyped(&self, numbers: UploadStream) -> i64 {
        let _ = numbers;
        0
    }

    // `stream` without a stream to return.
    #[hub_method(stream)]
    async fn nothing(&self) {}

    // A skipped helper cannot stream.
    #[hub_method(skip, stream)]
    fn helper(&self) {}

    // Hooks take no upload streams.
    async fn on_connected(
        &self,
        ctx: CallContext<Self>,
        numbers: UploadStream<i64>,
    ) -> Result<(), HubError> {
        let _ = (ctx, numbers);
        Ok(())
    }
}

fn main() {}
