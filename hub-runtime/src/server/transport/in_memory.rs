//! The in-memory transport: a connection's frames cross a pair of bounded
//! channels inside one process, with no socket and no port.
//!
//! It carries what a WebSocket carries — whole frames in either transfer
//! format, and a Close — so everything above the transport (handshake, hub
//! protocol, keep-alive, dispatch) runs exactly as over a network. The
//! server's test client ([`crate::server::HubServer::test_client`]) is
//! built on it.

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{CloseCode, FrameSink, FrameSource, TransportError};
use crate::protocol::TransferFormat;

/// How many frames may wait in each direction before the sender waits: the
/// same backpressure a socket's buffers give, kept small.
const FRAME_QUEUE: usize = 64;

/// One unit on an in-memory connection, as a WebSocket message would be.
#[derive(Debug)]
pub(crate) enum MemoryFrame {
    /// Hub protocol bytes (the protocol's transfer format needs no
    /// marking in memory).
    Data(Bytes),
    /// The sender ends the connection on purpose (a WebSocket Close frame
    /// with this close code).
    Close(u16),
}

/// The client's end of an in-memory connection.
pub(crate) struct MemoryClientEnd {
    /// Frames to the server.
    pub(crate) to_server: mpsc::Sender<MemoryFrame>,
    /// Frames from the server.
    pub(crate) from_server: mpsc::Receiver<MemoryFrame>,
}

/// A new in-memory connection: the server's two transport halves and the
/// client's end.
pub(crate) fn pair() -> (MemorySource, MemorySink, MemoryClientEnd) {
    let (to_server, from_client) = mpsc::channel(FRAME_QUEUE);
    let (to_client, from_server) = mpsc::channel(FRAME_QUEUE);
    (
        MemorySource {
            from_client,
            close_seen: false,
        },
        MemorySink(to_client),
        MemoryClientEnd {
            to_server,
            from_server,
        },
    )
}

/// The server's receiving half.
pub(crate) struct MemorySource {
    from_client: mpsc::Receiver<MemoryFrame>,
    close_seen: bool,
}

impl FrameSource for MemorySource {
    async fn next_frame(&mut self) -> Option<Result<Bytes, TransportError>> {
        if self.close_seen {
            return None;
        }
        // `recv` is cancel-safe: a dropped future loses no frame.
        match self.from_client.recv().await? {
            MemoryFrame::Data(bytes) => Some(Ok(bytes)),
            MemoryFrame::Close(_) => {
                self.close_seen = true;
                None
            }
        }
    }

    fn closed_gracefully(&self) -> bool {
        self.close_seen
    }
}

/// The server's sending half.
pub(crate) struct MemorySink(mpsc::Sender<MemoryFrame>);

fn client_gone() -> TransportError {
    TransportError("the in-memory client is gone".to_owned())
}

impl FrameSink for MemorySink {
    fn supported_formats(&self) -> &'static [TransferFormat] {
        &[TransferFormat::Text, TransferFormat::Binary]
    }

    async fn feed(&mut self, frame: Bytes, _format: TransferFormat) -> Result<(), TransportError> {
        self.0
            .send(MemoryFrame::Data(frame))
            .await
            .map_err(|_| client_gone())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        // Every fed frame is already in the channel.
        Ok(())
    }

    async fn close(&mut self, code: CloseCode) -> Result<(), TransportError> {
        self.0
            .send(MemoryFrame::Close(code.websocket()))
            .await
            .map_err(|_| client_gone())
    }
}
