//! The upload hub: a client streams a file to the server in chunks (a
//! client-to-server stream, `UploadStream<Vec<u8>>`), and the server
//! reports its progress back to the uploading connection as it goes.

use futures_util::StreamExt as _;
use hub_runtime::hub::UploadStream;
use hub_runtime::server::HubServer;
use hub_runtime::{CallContext, HubError, hub, hub_client, hub_server};
use serde::{Deserialize, Serialize};

/// What the server knows once an upload completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Received {
    /// The file's name, as the client gave it.
    pub name: String,
    /// How many bytes arrived.
    pub bytes: u64,
    /// How many chunks they came in.
    pub chunks: u64,
    /// FNV-1a of the bytes, so that the client can check them.
    pub checksum: u64,
}

/// What the upload hub calls on the uploading client.
#[hub_client]
pub trait IUploadClient {
    /// `bytes` of `name` have arrived so far.
    async fn progress(&self, name: String, bytes: u64);
}

/// What clients call on the upload hub.
#[hub_server]
pub trait IUploadHub {
    /// Receives `name` as a stream of chunks; answers what arrived once
    /// the client completes the stream.
    async fn upload(
        &self,
        ctx: &CallContext<Self>,
        name: String,
        chunks: UploadStream<Vec<u8>>,
    ) -> Result<Received, HubError>;
}

/// The largest upload accepted: a stream is unbounded otherwise.
pub const MAX_UPLOAD_BYTES: u64 = 64 * 1024 * 1024;

/// The upload hub.
#[derive(Debug, Default)]
pub struct UploadHub;

/// FNV-1a, 64 bits: a checksum both sides compute (hand-written: ten
/// lines, not worth a dependency).
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The FNV-1a starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[hub(client = IUploadClient)]
impl IUploadHub for UploadHub {
    async fn upload(
        &self,
        ctx: &CallContext<Self>,
        name: String,
        mut chunks: UploadStream<Vec<u8>>,
    ) -> Result<Received, HubError> {
        let mut received = Received {
            name,
            bytes: 0,
            chunks: 0,
            checksum: FNV_OFFSET,
        };
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            received.bytes += chunk.len() as u64;
            received.chunks += 1;
            if received.bytes > MAX_UPLOAD_BYTES {
                return Err(HubError::new(format!(
                    "The upload is larger than {MAX_UPLOAD_BYTES} bytes."
                )));
            }
            received.checksum = fnv1a(received.checksum, &chunk);
            // Progress goes to the uploader only; a send, not awaited for
            // an answer.
            ctx.clients()
                .caller()
                .progress(received.name.clone(), received.bytes)
                .await?;
        }
        Ok(received)
    }
}

/// Where the hub is mounted.
pub const HUB_PATH: &str = "/hubs/upload";

/// The upload hub, mounted at [`HUB_PATH`].
pub fn app(hub: &HubServer<UploadHub>) -> axum::Router {
    axum::Router::new().nest(HUB_PATH, hub.router())
}
