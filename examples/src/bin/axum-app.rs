//! # axum-app
//!
//! A hub mounted into an existing axum application: REST routes
//! (`GET`/`POST /api/todos`) and the hub (`/hubs/todos`) share one state,
//! a REST `POST` reaches every hub client through the hub's
//! `HubContext`, and tower layers — CORS, gzip compression, a request
//! timeout on the REST routes — wrap the router. Run it with
//!
//! ```text
//! cargo run -p hub-examples --bin axum-app         # --bind / HUB_BIND
//! curl -H 'content-type: application/json' -d '{"title":"milk"}' http://127.0.0.1:5000/api/todos
//! ```
//!
//! Its tests: `examples/tests/axum_app.rs`.

use std::net::SocketAddr;
use std::process::ExitCode;

use hub_examples::axum_app::{Todos, app};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "An axum app with REST routes at /api/todos and a hub at /hubs/todos."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("info");
    let args = <Args as clap::Parser>::parse();
    let (router, hub) = app(Todos::default());
    match hub_examples::serve(router, args.bind, async move { hub.shutdown().await }).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("axum-app: {error}");
            ExitCode::FAILURE
        }
    }
}
