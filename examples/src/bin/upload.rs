//! # upload
//!
//! A client-to-server stream with progress: `upload send FILE` streams a
//! file to the hub in 4 KiB chunks through the typed proxy
//! (`IUploadHubProxy::upload` takes any `Stream` of chunks); the hub
//! reads them from an `UploadStream<Vec<u8>>`, tells the uploader its
//! progress after each chunk (a typed call to `IUploadClient::progress`)
//! and answers the size, chunk count and checksum once the client
//! completes the stream. Run the server, then send a file:
//!
//! ```text
//! cargo run -p hub-examples --bin upload                          # --bind / HUB_BIND
//! cargo run -p hub-examples --bin upload -- send Cargo.lock       # --url / HUB_URL
//! ```
//!
//! Its tests: `examples/tests/upload.rs`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use hub_examples::upload::{FNV_OFFSET, IUploadClient, IUploadHubProxy, UploadHub, app, fnv1a};
use hub_runtime::client::HubConnection;
use hub_runtime::server::HubServer;

#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Serves the upload hub at /hubs/upload; `upload send FILE` uploads a file to it, with progress."
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:5000")]
    bind: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Upload FILE to the hub (instead of serving it).
    Send {
        /// The file to upload.
        file: PathBuf,
        /// The upload hub's URL.
        #[arg(
            long,
            env = "HUB_URL",
            default_value = "http://127.0.0.1:5000/hubs/upload"
        )]
        url: String,
    },
}

/// Chunk size: small enough that a chunk (a JSON array of numbers, up to
/// four bytes each) stays below the hub's 32 KB message limit.
const CHUNK: usize = 4 * 1024;

/// Prints progress as the hub reports it.
struct Progress;

impl IUploadClient for Progress {
    async fn progress(&self, name: String, bytes: u64) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "progress {name}: {bytes} bytes");
        let _ = stdout.flush();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    hub_examples::init_logging("warn");
    let args = <Args as clap::Parser>::parse();
    match args.command {
        None => {
            let bind = args.bind;
            let hub = HubServer::new(UploadHub);
            let stopping = hub.clone();
            match hub_examples::serve(app(&hub), bind, async move { stopping.shutdown().await })
                .await
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("upload: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Send { file, url }) => match send(&file, &url).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("upload: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn send(file: &std::path::Path, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = tokio::fs::read(file).await?;
    let name = file.file_name().map_or_else(
        || "upload".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    let connection = HubConnection::builder(url)
        .handlers(Progress.into_handlers())
        .build()?;
    connection.start().await?;
    let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let received = connection
        .hub::<IUploadHubProxy>()
        .upload(name, futures_util::stream::iter(chunks))
        .await?;
    connection.stop().await;
    let expected = fnv1a(FNV_OFFSET, &bytes);
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "uploaded {}: {} bytes in {} chunks, checksum {}",
        received.name,
        received.bytes,
        received.chunks,
        if received.checksum == expected {
            "ok"
        } else {
            "MISMATCH"
        }
    )?;
    if received.checksum != expected || received.bytes != bytes.len() as u64 {
        return Err("the server received other bytes than were sent".into());
    }
    Ok(())
}
