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
//! (`cargo run -p hub-examples --bin rust-client -- --user ann --room lobby`;
//! add `--role moderator` to sign in as a moderator and type
//! `/announce TEXT`), or open `http://127.0.0.1:5000/?user=ann` in a browser
//! (`&role=moderator` for a moderator). With `--tls-cert FILE --tls-key FILE`
//! (PEM) it serves https and wss only:
//!
//! ```text
//! cargo run -p hub-examples --bin chat -- --bind 127.0.0.1:5001 --tls-cert cert.pem --tls-key key.pem
//! ```
//!
//! Its tests (`examples/tests/chat.rs`) drive the hub in memory
//! (`HubServer::test_client`) and over a socket.

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// Serve https and wss only, with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("info");
    let args = <Args as clap::Parser>::parse();
    let hub = chat::server();
    let stopping = hub.clone();
    let tls = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
    match hub_examples::serve_maybe_tls(chat::app(&hub), args.bind, tls, async move {
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
