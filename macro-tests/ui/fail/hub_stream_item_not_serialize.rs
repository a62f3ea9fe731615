use hub_runtime::hub::{Stream, UploadStream};
use hub_runtime::{hub, hub_client};

#[hub_client]
pub trait Client {
    async fn receive(&self, value: i64);
}

pub struct NotSerializable;

pub struct NotDeserializable;

pub struct StreamHub;

#[hub(client = Client)]
impl StreamHub {
    // Stream items go through serde.
    async fn items(&self) -> impl Stream<Item = NotSerializable> {
        futures_util::stream::iter(vec![NotSerializable])
    }

    // So do upload items.
    async fn upload(&self, values: UploadStream<NotDeserializable>) -> i64 {
        let _ = values;
        0
    }
}

fn main() {}
