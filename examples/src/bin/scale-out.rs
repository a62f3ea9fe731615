//! # scale-out
//!
//! Two hub processes and Redis, started by one command: `scale-out`
//! starts a private `redis-server` (or uses `--redis URL`), then two
//! processes of the chat hub (`hub_examples::chat`) that share it through
//! the Redis backplane (`HubServerBuilder::backplane`), so a message posted
//! to a room on one node reaches the room's members on the other. Each
//! node prints `node N listening on http://HOST:PORT`; Ctrl-C (or SIGTERM)
//! stops both nodes and Redis. Needs `redis-server` on the PATH
//! (`apt-get install redis-server`). Run it with
//!
//! ```text
//! cargo run -p hub-examples --bin scale-out        # --bind (node 1), --bind2 (node 2), --redis
//! cargo run -p hub-examples --bin rust-client -- --user ann --url http://127.0.0.1:5000/hubs/chat
//! cargo run -p hub-examples --bin rust-client -- --user bob --url http://127.0.0.1:5001/hubs/chat
//! ```
//!
//! Its test: `examples/tests/scale_out.rs`.

use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use hub_examples::chat;
use hub_runtime::backplane::RedisBackplane;
use hub_runtime::server::HubServer;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Two chat hub processes sharing a Redis backplane, started by one command."
)]
struct Args {
    /// Node 1's address; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    /// Node 2's address; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND2", default_value = "127.0.0.1:5001")]
    bind2: SocketAddr,
    /// Use this Redis instead of starting a private `redis-server`.
    #[arg(long, env = "HUB_REDIS", value_name = "URL")]
    redis: Option<String>,
    #[command(subcommand)]
    node: Option<Node>,
}

#[derive(Debug, clap::Subcommand)]
enum Node {
    /// Run one node (what the command starts twice).
    Node {
        /// Address to listen on.
        #[arg(long)]
        bind: SocketAddr,
        /// The Redis backplane's URL.
        #[arg(long)]
        redis: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("warn");
    let args = <Args as clap::Parser>::parse();
    let result = match args.node {
        Some(Node::Node { bind, redis }) => node(bind, &redis).await,
        None => launch(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("scale-out: {error}");
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One node: the chat hub on the backplane.
async fn node(bind: SocketAddr, redis: &str) -> Result<(), Error> {
    let backplane = RedisBackplane::connect(redis).await?;
    let hub: HubServer<chat::ChatHub> = HubServer::builder(chat::ChatHub)
        .authenticator(chat::ChatTokens)
        .backplane(backplane)
        .build();
    let stopping = hub.clone();
    hub_examples::serve(
        chat::app(&hub),
        bind,
        async move { stopping.shutdown().await },
    )
    .await?;
    Ok(())
}

/// Starts Redis (unless given) and two nodes; stops them all on a signal.
async fn launch(args: Args) -> Result<(), Error> {
    let mut redis_process = None;
    let redis = match args.redis {
        Some(url) => url,
        None => {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start redis-server (is it installed?): {e}"))?;
            redis_process = Some(child);
            wait_for_port(port).await?;
            format!("redis://127.0.0.1:{port}")
        }
    };
    let exe = std::env::current_exe()?;
    let mut nodes = Vec::new();
    for (number, bind) in [(1, args.bind), (2, args.bind2)] {
        let mut child = Command::new(&exe)
            .args(["node", "--bind", &bind.to_string(), "--redis", &redis])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .map_err(|_| format!("node {number} did not start"))??
            .ok_or_else(|| format!("node {number} exited"))?;
        announce(&format!("node {number} {line}"))?;
        nodes.push(child);
    }
    hub_runtime::shutdown_signal().await;
    for node in &mut nodes {
        terminate(node).await;
    }
    if let Some(mut redis) = redis_process {
        terminate(&mut redis).await;
    }
    Ok(())
}

/// A line on stdout, at once (scripts and tests wait for it).
fn announce(line: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()
}

async fn wait_for_port(port: u16) -> Result<(), Error> {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("redis-server did not listen on port {port}").into())
}

/// SIGTERM (a clean stop: the nodes close their connections), then
/// SIGKILL after 10 s.
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}
