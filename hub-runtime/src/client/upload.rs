//! Upload streams: the tasks that send the items of an [`Upload`]
//! argument as StreamItems, then its Completion.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::arguments::Upload;
use super::writer::Outbound;
use crate::HubError;
use crate::protocol::{Completion, CompletionResult, HubMessage, HubProtocol, Payload, StreamItem};

/// How many items of one upload may wait in the writer's queue; the upload
/// reads its source again only once the oldest of them was written.
const UPLOAD_WINDOW: usize = 16;

/// The error an upload ends with when its caller stopped waiting.
const UPLOAD_CANCELED: &str = "The invocation was canceled by the client.";

/// Stops the uploads of one invocation. Dropped without
/// [`finish`](Self::finish), the uploads end with an error Completion
/// (the caller gave up); finished, they stop without one (the server has
/// answered and no longer reads them).
#[derive(Default)]
pub(crate) struct UploadControl {
    stops: Vec<oneshot::Sender<()>>,
}

impl UploadControl {
    /// The server answered: stop the uploads quietly.
    pub(crate) fn finish(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
    }
}

/// Starts one task per upload, sending to `outbound` (the connection the
/// invocation went out on). `detached` uploads (of a `send`) cannot be
/// stopped by the caller.
pub(crate) fn start_uploads(
    outbound: &mpsc::UnboundedSender<Outbound>,
    protocol: HubProtocol,
    uploads: Vec<Upload>,
    stream_ids: &[String],
    detached: bool,
) -> UploadControl {
    let mut control = UploadControl::default();
    for (upload, stream_id) in uploads.into_iter().zip(stream_ids) {
        let stop = if detached {
            None
        } else {
            let (stop_tx, stop_rx) = oneshot::channel();
            control.stops.push(stop_tx);
            Some(stop_rx)
        };
        tokio::spawn(run_upload(
            outbound.clone(),
            protocol,
            stream_id.clone(),
            upload.into_items(protocol),
            stop,
        ));
    }
    control
}

/// Why an upload stops before its source ends.
enum UploadStop {
    /// The server answered the invocation.
    Quiet,
    /// The caller stopped waiting.
    Canceled,
}

async fn stop_signal(stop: Option<oneshot::Receiver<()>>) -> UploadStop {
    match stop {
        Some(stop) => match stop.await {
            Ok(()) => UploadStop::Quiet,
            Err(_) => UploadStop::Canceled,
        },
        None => std::future::pending().await,
    }
}

fn encode(protocol: HubProtocol, message: &HubMessage) -> Option<Bytes> {
    let mut buffer = BytesMut::new();
    match protocol.encode(message, &mut buffer) {
        Ok(()) => Some(buffer.freeze()),
        Err(error) => {
            debug!(%error, "an upload message could not be encoded");
            None
        }
    }
}

fn completion(stream_id: &str, error: Option<String>) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id: stream_id.to_owned(),
        result: match error {
            Some(error) => CompletionResult::Error(error),
            None => CompletionResult::Void,
        },
    })
}

/// Sends the items of one upload, then its Completion.
async fn run_upload(
    outbound: mpsc::UnboundedSender<Outbound>,
    protocol: HubProtocol,
    stream_id: String,
    mut items: BoxStream<'static, Result<Payload, String>>,
    stop: Option<oneshot::Receiver<()>>,
) {
    let mut stop = std::pin::pin!(stop_signal(stop));
    let mut in_flight: VecDeque<oneshot::Receiver<Result<(), HubError>>> = VecDeque::new();
    let end = loop {
        let next = tokio::select! {
            biased;
            reason = &mut stop => break Err(reason),
            () = outbound.closed() => return,
            next = items.next() => next,
        };
        let item = match next {
            Some(Ok(item)) => item,
            Some(Err(error)) => break Ok(Some(error)),
            None => break Ok(None),
        };
        let message = HubMessage::StreamItem(StreamItem {
            headers: Vec::new(),
            invocation_id: stream_id.clone(),
            item,
        });
        let Some(bytes) = encode(protocol, &message) else {
            break Ok(Some(
                "The client could not encode a stream item.".to_owned(),
            ));
        };
        let (sent_tx, sent_rx) = oneshot::channel();
        let data = Outbound::Data {
            bytes,
            sent: Some(sent_tx),
        };
        if outbound.send(data).is_err() {
            return;
        }
        in_flight.push_back(sent_rx);
        if in_flight.len() >= UPLOAD_WINDOW {
            let Some(oldest) = in_flight.pop_front() else {
                continue;
            };
            tokio::select! {
                biased;
                reason = &mut stop => break Err(reason),
                written = oldest => match written {
                    Ok(Ok(())) => {}
                    // The socket failed or the connection is gone.
                    _ => return,
                },
            }
        }
    };
    let error = match end {
        Ok(error) => error,
        Err(UploadStop::Quiet) => return,
        Err(UploadStop::Canceled) => Some(UPLOAD_CANCELED.to_owned()),
    };
    if let Some(bytes) = encode(protocol, &completion(&stream_id, error)) {
        let _ = outbound.send(Outbound::Data { bytes, sent: None });
    }
}
