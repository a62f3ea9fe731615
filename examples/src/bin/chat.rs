//! # chat
//!
//! A chat server: rooms are hub groups, people are users (a connection's
//! bearer token `user-NAME` names it, `user-NAME.role-moderator` makes it a
//! moderator; without a token it may only read), moderators may
//! `announce` (a method restricted with `#[authorize(roles("moderator"))]`;
//! anyone else gets an `unauthorized` error and stays connected),
//! and the hub's clients implement a typed contract
//! (`hub_examples::chat::IChatClient`) that the server calls through typed
//! proxies. Run it with
//!
//! ```text
//! cargo run -p hub-examples --bin chat            # --bind / HUB_BIND, default 127.0.0.1:5000
//! ```
//!
//! then chat from terminals with the `rust-client` example
//! (`cargo run -p hub-examples --bin rust-client -- --user ann --room lobby`).
//! Its tests (`examples/tests/chat.rs`) drive the hub in memory
//! (`HubServer::test_client`) and over a socket.

use std::net::SocketAddr;
use std::process::ExitCode;

use hub_examples::chat;

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A chat hub at /hubs/chat: rooms (groups), users (bearer token user-NAME[.role-moderator])."
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
    let hub = chat::server();
    let stopping = hub.clone();
    match hub_examples::serve(chat::app(&hub), args.bind, async move {
        stopping.shutdown().await
    })
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {error}");
            ExitCode::FAILURE
        }
    }
}
