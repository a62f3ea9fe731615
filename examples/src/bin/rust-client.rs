//! # rust-client
//!
//! The typed Rust client, as a chat terminal: it connects to any SignalR
//! server by URL, `http://` or `https://`, that serves the chat contract
//! (`hub_examples::chat`: the `chat` example, or an ASP.NET Core hub with
//! the same methods), signs in with a bearer token, joins a room, prints
//! what is posted there, and posts each line typed on stdin — all through
//! the typed proxy (`IChatHubProxy`) and the typed handlers
//! (`IChatClient`), no method-name strings. A line `/announce TEXT` calls
//! the moderator-only `announce` (sign in with `--role moderator`; anyone
//! else is refused and stays connected), `/whisper USER TEXT` whispers.
//! It reconnects by itself when the server goes away (automatic reconnect;
//! joining the room again, since a new connection is in no group), and
//! with `--stateful-reconnect` a dropped WebSocket is resumed without
//! losing a message (the server must allow it). Run the `chat` example,
//! then:
//!
//! ```text
//! cargo run -p hub-examples --bin rust-client -- --user ann --room lobby   # --url / HUB_URL
//! cargo run -p hub-examples --bin rust-client -- --user mia --role moderator
//! ```
//!
//! Over https (the `chat` example with `--tls-cert`/`--tls-key`), the
//! server's certificate must be trusted: by the system's roots, the PEM
//! file named by `SSL_CERT_FILE`, or the CA certificate given with
//! `--ca-cert FILE` (for a development CA):
//!
//! ```text
//! cargo run -p hub-examples --bin rust-client -- --url https://localhost:5001/hubs/chat --ca-cert ca.pem --user ann
//! ```
//!
//! Its tests: `examples/tests/chat.rs` (clients chatting through the
//! `chat` binary over http, and over https with a moderator announcing).

use std::io::Write as _;
use std::process::ExitCode;

use hub_examples::chat::{ChatMessage, IChatClient, IChatHubProxy};
use hub_runtime::client::{HubConnection, HubConnectionEvent};
use hub_runtime::protocol::HubProtocol;
use tokio::io::AsyncBufReadExt as _;

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "A typed chat client: joins a room, prints its messages, posts stdin lines."
)]
struct Args {
    /// The chat hub's URL.
    #[arg(
        long,
        env = "HUB_URL",
        default_value = "http://127.0.0.1:5000/hubs/chat"
    )]
    url: String,
    /// Sign in as this user (sent as the bearer token `user-NAME`); without it, read only.
    #[arg(long, env = "HUB_USER")]
    user: Option<String>,
    /// Sign in with this role too (repeatable; token `user-NAME.role-ROLE`):
    /// `--role moderator` may `/announce`.
    #[arg(long = "role", value_name = "ROLE", requires = "user")]
    roles: Vec<String>,
    /// Trust only this PEM CA certificate for https (instead of the
    /// system's roots or `SSL_CERT_FILE`).
    #[arg(long, env = "HUB_CA_CERT", value_name = "FILE")]
    ca_cert: Option<std::path::PathBuf>,
    /// The room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Use the MessagePack hub protocol instead of JSON.
    #[arg(long)]
    messagepack: bool,
    /// Resume a dropped WebSocket without losing messages (stateful reconnect).
    #[arg(long)]
    stateful_reconnect: bool,
}

/// Prints what the hub sends, one line each, on stdout.
struct Terminal;

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

impl IChatClient for Terminal {
    async fn message_posted(&self, message: ChatMessage) {
        say(&format!(
            "[{}] {}: {}",
            message.room, message.from, message.text
        ));
    }

    async fn whispered(&self, message: ChatMessage) {
        say(&format!("(whisper) {}: {}", message.from, message.text));
    }

    async fn joined(&self, room: String, user: String) {
        say(&format!("[{room}] {user} joined"));
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("error");
    let args = <Args as clap::Parser>::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rust-client: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), hub_runtime::HubError> {
    let token = args.user.as_ref().map(|user| {
        // The chat example's token format (`hub_examples::chat::ChatTokens`).
        let roles: String = args
            .roles
            .iter()
            .map(|role| format!(".role-{role}"))
            .collect();
        format!("user-{user}{roles}")
    });
    let mut builder = HubConnection::builder(args.url.as_str())
        .access_token(move || token.clone())
        .automatic_reconnect()
        .handlers(Terminal.into_handlers());
    if let Some(file) = &args.ca_cert {
        let pem = std::fs::read(file).map_err(|error| {
            hub_runtime::HubError::new(format!("--ca-cert {}: {error}", file.display()))
        })?;
        builder = builder.root_certificates(pem);
    }
    if args.messagepack {
        builder = builder.protocol(HubProtocol::MessagePack);
    }
    if args.stateful_reconnect {
        // The official clients' default buffer: 100 000 bytes.
        builder = builder.stateful_reconnect(100_000);
    }
    let connection = builder.build()?;
    let mut events = connection.events();
    connection.start().await?;
    let chat = connection.hub::<IChatHubProxy>();
    chat.join(args.room.clone()).await?;
    eprintln!(
        "rust-client: in {} as {} over {:?}",
        args.room,
        chat.whoami().await?.as_deref().unwrap_or("a guest"),
        connection.transport()
    );

    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => command(&chat, &args.room, &line).await,
                // End of input: leave.
                Ok(None) | Err(_) => break,
            },
            event = events.recv() => match event {
                Ok(HubConnectionEvent::Reconnecting { .. }) => eprintln!("rust-client: reconnecting…"),
                Ok(HubConnectionEvent::Reconnected { .. }) => {
                    // A new connection is in no group: join again.
                    if let Err(error) = chat.join(args.room.clone()).await {
                        eprintln!("rust-client: cannot join {} again: {error}", args.room);
                    }
                    eprintln!("rust-client: reconnected");
                }
                Ok(HubConnectionEvent::Closed { error, .. }) => {
                    return Err(error.unwrap_or_else(|| hub_runtime::HubError::new("the connection closed")));
                }
                Err(_) => {}
            },
            () = hub_runtime::shutdown_signal() => break,
        }
    }
    connection.stop().await;
    Ok(())
}

/// Runs one line typed on stdin: `/announce TEXT`, `/whisper USER TEXT`, or
/// a message to post. A refusal (a guest posting, a non-moderator
/// announcing) is printed; the connection stays up.
async fn command(chat: &IChatHubProxy, room: &str, line: &str) {
    let (what, done) = if let Some(text) = line.strip_prefix("/announce ") {
        (
            "announced",
            chat.announce(room.to_owned(), text.to_owned()).await,
        )
    } else if let Some(rest) = line.strip_prefix("/whisper ") {
        let Some((user, text)) = rest.split_once(' ') else {
            eprintln!("rust-client: usage: /whisper USER TEXT");
            return;
        };
        (
            "whispered",
            chat.whisper(user.to_owned(), text.to_owned()).await,
        )
    } else {
        ("posted", chat.post(room.to_owned(), line.to_owned()).await)
    };
    if let Err(error) = done {
        eprintln!("rust-client: not {what}: {error}");
    }
}
