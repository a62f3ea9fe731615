//! Every way a `#[hub]` method streams, and upload stream parameters.

use std::pin::Pin;

use futures_util::StreamExt as _;
use hub_runtime::hub::{Hub, MethodKind, Stream, UploadStream};
use hub_runtime::{CallContext, HubError, hub, hub_client};

#[hub_client]
pub trait Client {
    async fn receive(&self, value: i64);
}

pub struct StreamHub;

type Numbers = futures_util::stream::Iter<std::vec::IntoIter<i64>>;

#[hub(client = Client)]
impl StreamHub {
    async fn counter(&self, count: i64) -> impl Stream<Item = i64> {
        futures_util::stream::iter(0..count)
    }

    async fn fallible(&self) -> impl Stream<Item = Result<String, HubError>> + Send {
        futures_util::stream::iter(vec![Ok("a".to_owned()), Err(HubError::new("b"))])
    }

    async fn refusing(&self, ok: bool) -> Result<impl Stream<Item = i64>, HubError> {
        if ok {
            Ok(futures_util::stream::iter(vec![1]))
        } else {
            Err(HubError::new("no"))
        }
    }

    async fn boxed(&self) -> Pin<Box<dyn Stream<Item = u8> + Send>> {
        futures_util::stream::iter(vec![1_u8]).boxed()
    }

    #[hub_method(stream)]
    async fn aliased(&self) -> Numbers {
        futures_util::stream::iter(vec![1])
    }

    async fn sum(&self, ctx: &CallContext<Self>, mut numbers: UploadStream<i64>) -> Result<i64, HubError> {
        let _ = ctx;
        let mut total = 0;
        while let Some(n) = numbers.next().await {
            total += n?;
        }
        Ok(total)
    }

    async fn pairs(
        &self,
        label: String,
        left: UploadStream<i64>,
        right: UploadStream<String>,
    ) -> impl Stream<Item = String> {
        left.zip(right)
            .map(move |(l, r)| format!("{label}{}{}", l.unwrap_or(0), r.unwrap_or_default()))
    }
}

fn main() {
    let kinds: Vec<(&str, MethodKind, usize, usize)> = StreamHub::METHODS
        .iter()
        .map(|m| (m.name, m.kind, m.parameters, m.upload_streams))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("Counter", MethodKind::ServerStream, 1, 0),
            ("Fallible", MethodKind::ServerStream, 0, 0),
            ("Refusing", MethodKind::ServerStream, 1, 0),
            ("Boxed", MethodKind::ServerStream, 0, 0),
            ("Aliased", MethodKind::ServerStream, 0, 0),
            ("Sum", MethodKind::Unary, 0, 1),
            ("Pairs", MethodKind::ServerStream, 1, 2),
        ]
    );
}
