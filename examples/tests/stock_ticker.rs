//! The stock-ticker example: a stream and broadcasts from the background
//! producer, in memory and from the `stock-ticker` binary over a socket;
//! cancelling a stream and stopping the process are clean.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{PATIENCE, next, started};
use futures_util::StreamExt as _;
use hub_examples::stock_ticker::{HUB_PATH, IStockClient, IStockTickerProxy, Market, Stock};
use hub_runtime::client::{HubConnection, HubConnectionBuilder};
use tokio::sync::mpsc;

struct Prices(mpsc::UnboundedSender<Stock>);

impl IStockClient for Prices {
    async fn price_changed(&self, stock: Stock) {
        let _ = self.0.send(stock);
    }
}

/// Streams three changes, cancels the stream, and sees broadcasts.
async fn watch_the_market(builder: HubConnectionBuilder) {
    let (sender, mut broadcasts) = mpsc::unbounded_channel();
    let connection = started(builder.handlers(Prices(sender).into_handlers())).await;
    let ticker = connection.hub::<IStockTickerProxy>();
    let all = ticker.get_all_stocks().await.unwrap();
    assert_eq!(all.len(), 3);

    let mut stream = ticker.stream_stocks().unwrap();
    for _ in 0..3 {
        let stock = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(
            all.iter().any(|known| known.symbol == stock.symbol),
            "{stock:?}"
        );
    }
    // Dropping the stream cancels it on the server; the connection goes on.
    drop(stream);
    let changed = next(&mut broadcasts).await;
    assert!(all.iter().any(|known| known.symbol == changed.symbol));
    assert_eq!(ticker.get_all_stocks().await.unwrap().len(), 3);
    connection.stop().await;
}

#[tokio::test]
async fn stream_and_broadcasts_in_memory() {
    let market = Market::open(Duration::from_millis(5));
    watch_the_market(market.hub.test_client()).await;
    // The producer stops when told, and the hub closes.
    tokio::time::timeout(PATIENCE, market.close())
        .await
        .unwrap();
}

#[tokio::test]
async fn stream_and_broadcasts_from_the_binary() {
    let server =
        hub_tests::ServerProcess::start(env!("CARGO_BIN_EXE_stock-ticker"), &["--tick-ms", "10"]);
    watch_the_market(HubConnection::builder(format!(
        "{}{HUB_PATH}",
        server.base_url()
    )))
    .await;
    assert!(server.terminate(), "stock-ticker exits with 0 on SIGTERM");
}
