//! The upload example: a client-to-server stream with progress, in memory
//! and with the `upload` binary (server and `upload send FILE`) over a
//! socket.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{next, started};
use hub_examples::upload::{FNV_OFFSET, IUploadClient, IUploadHubProxy, UploadHub, fnv1a};
use hub_runtime::server::HubServer;
use tokio::sync::mpsc;

struct Progress(mpsc::UnboundedSender<u64>);

impl IUploadClient for Progress {
    async fn progress(&self, _name: String, bytes: u64) {
        let _ = self.0.send(bytes);
    }
}

#[tokio::test]
async fn chunks_arrive_with_progress_in_memory() {
    let hub = HubServer::new(UploadHub);
    let (sender, mut progress) = mpsc::unbounded_channel();
    let connection = started(hub.test_client().handlers(Progress(sender).into_handlers())).await;
    let chunks = vec![vec![1_u8; 1000], vec![2_u8; 1000], vec![3_u8; 500]];
    let all: Vec<u8> = chunks.concat();
    let received = connection
        .hub::<IUploadHubProxy>()
        .upload("numbers.bin".to_owned(), futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(received.bytes, 2500);
    assert_eq!(received.chunks, 3);
    assert_eq!(received.checksum, fnv1a(FNV_OFFSET, &all));
    assert_eq!(next(&mut progress).await, 1000);
    assert_eq!(next(&mut progress).await, 2000);
    assert_eq!(next(&mut progress).await, 2500);
    connection.stop().await;
}

#[test]
fn upload_send_streams_a_file_to_the_upload_binary() {
    let server = hub_tests::ServerProcess::start(env!("CARGO_BIN_EXE_upload"), &[]);
    let file = std::env::temp_dir().join(format!("upload-example-{}.bin", std::process::id()));
    let bytes: Vec<u8> = (0..10_000_u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_upload"))
        .arg("send")
        .arg(&file)
        .args(["--url", &format!("{}/hubs/upload", server.base_url())])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "upload send failed: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // 10 000 bytes in 4 KiB chunks: progress after each of the three.
    assert!(stdout.contains(": 4096 bytes"), "{stdout}");
    assert!(stdout.contains(": 8192 bytes"), "{stdout}");
    assert!(stdout.contains(": 10000 bytes"), "{stdout}");
    assert!(
        stdout.contains("10000 bytes in 3 chunks, checksum ok"),
        "{stdout}"
    );
    assert!(server.terminate(), "upload exits with 0 on SIGTERM");
}
