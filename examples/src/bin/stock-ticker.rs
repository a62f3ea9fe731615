//! # stock-ticker
//!
//! Server-to-client streaming with a background producer: a task moves a
//! stock price every `--tick-ms` and pushes it to every client
//! (`price_changed`, a typed broadcast) and into every open
//! `StreamStocks` stream. A client cancelling its stream drops the
//! server's stream; SIGINT/SIGTERM stops the producer first, then closes
//! every connection, and the process exits with 0. Run it with
//!
//! ```text
//! cargo run -p hub-examples --bin stock-ticker     # --bind / HUB_BIND, --tick-ms
//! ```
//!
//! The hub is at `/hubs/stocks`. Its tests: `examples/tests/stock_ticker.rs`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use hub_examples::stock_ticker::{HUB_PATH, Market};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A stock ticker hub at /hubs/stocks: broadcasts and a server-to-client stream."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Milliseconds between two price changes.
    #[arg(long, env = "TICK_MS", default_value_t = 500)]
    tick_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("info");
    let args = <Args as clap::Parser>::parse();
    let market = Market::open(Duration::from_millis(args.tick_ms.max(1)));
    let app = axum::Router::new().nest(HUB_PATH, market.hub.router());
    match hub_examples::serve(app, args.bind, market.close()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("stock-ticker: {error}");
            ExitCode::FAILURE
        }
    }
}
