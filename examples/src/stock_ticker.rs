//! The stock ticker hub: a background producer moves prices; clients
//! either receive every change as a broadcast ([`IStockClient`]) or
//! subscribe to a server-to-client stream ([`IStockTicker::stream_stocks`])
//! that ends when they cancel it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::Stream;
use hub_runtime::server::HubServer;
use hub_runtime::{HubContext, hub, hub_client, hub_server};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// A stock and its price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stock {
    /// The ticker symbol.
    pub symbol: String,
    /// The price in cents (whole numbers: no float rounding on the wire).
    pub price_cents: i64,
}

/// What the ticker calls on every client.
#[hub_client]
pub trait IStockClient {
    /// A price changed.
    async fn price_changed(&self, stock: Stock);
}

/// What clients call on the ticker.
#[hub_server]
pub trait IStockTicker {
    /// Every stock's current price.
    async fn get_all_stocks(&self) -> Vec<Stock>;
    /// Every price change from now on, until the client cancels the
    /// stream (or disconnects, which cancels it too).
    async fn stream_stocks(&self) -> impl Stream<Item = Stock>;
}

/// The market: prices, and a channel of changes.
#[derive(Debug)]
pub struct StockTicker {
    prices: Arc<Mutex<Vec<Stock>>>,
    changes: broadcast::Sender<Stock>,
}

impl Default for StockTicker {
    fn default() -> Self {
        let stocks = [("MSFT", 41_000), ("AAPL", 19_000), ("GOOG", 17_000)]
            .into_iter()
            .map(|(symbol, price_cents)| Stock {
                symbol: symbol.to_owned(),
                price_cents,
            })
            .collect();
        StockTicker {
            prices: Arc::new(Mutex::new(stocks)),
            // A slow stream subscriber skips changes rather than holding
            // memory: a ticker only cares about the latest prices.
            changes: broadcast::channel(64).0,
        }
    }
}

#[hub(client = IStockClient)]
impl IStockTicker for StockTicker {
    async fn get_all_stocks(&self) -> Vec<Stock> {
        self.prices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn stream_stocks(&self) -> impl Stream<Item = Stock> {
        let changes = self.changes.subscribe();
        // Dropping the stream (the client's CancelInvocation) drops the
        // receiver: nothing is left behind.
        futures_util::stream::unfold(changes, |mut changes| async move {
            loop {
                match changes.recv().await {
                    Ok(stock) => return Some((stock, changes)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }
}

/// The background producer: every `tick`, moves one stock's price and
/// tells every client (broadcast and streams), until `stop` turns true.
pub async fn produce(
    hub: HubContext<StockTicker>,
    ticker: Arc<Mutex<Vec<Stock>>>,
    changes: broadcast::Sender<Stock>,
    tick: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut step: u64 = 0;
    let mut ticks = tokio::time::interval(tick);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        step += 1;
        let changed = {
            let mut prices = ticker.lock().unwrap_or_else(PoisonError::into_inner);
            let count = prices.len().max(1) as u64;
            let Some(stock) = prices.get_mut((step % count) as usize) else {
                continue;
            };
            // A deterministic walk: up three steps, down two.
            stock.price_cents += if step % 5 < 3 { 25 } else { -25 };
            stock.clone()
        };
        let _ = changes.send(changed.clone());
        if let Err(error) = hub.clients().all().price_changed(changed).await {
            tracing::warn!(%error, "cannot broadcast a price");
        }
    }
}

/// A running ticker: the hub and its producer task.
pub struct Market {
    /// The hub.
    pub hub: HubServer<StockTicker>,
    stop: watch::Sender<bool>,
    producer: tokio::task::JoinHandle<()>,
}

impl Market {
    /// Starts the hub and its producer, moving a price every `tick`.
    pub fn open(tick: Duration) -> Market {
        let ticker = StockTicker::default();
        let prices = ticker.prices.clone();
        let changes = ticker.changes.clone();
        let hub = HubServer::new(ticker);
        let (stop, stopped) = watch::channel(false);
        let producer = tokio::spawn(produce(hub.context(), prices, changes, tick, stopped));
        Market {
            hub,
            stop,
            producer,
        }
    }

    /// Stops the producer (and waits for it), then closes every
    /// connection.
    pub async fn close(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.producer.await {
            tracing::warn!(%error, "the producer ended abnormally");
        }
        self.hub.shutdown().await;
    }
}

/// Where the hub is mounted.
pub const HUB_PATH: &str = "/hubs/stocks";
