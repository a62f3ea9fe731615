//! The Long Polling transport: polls for what the server has, POSTs to it;
//! requests reuse the pooled client's connections.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::sync::mpsc;

use super::frame::{Frame, FrameSink, FrameSource, transport_error};
use super::http::{HttpTarget, channel_source, post_sink};
use crate::HubError;

/// How long one poll may take (as the official clients), above the
/// server's poll timeout.
const POLL_TIMEOUT: Duration = Duration::from_secs(100);

/// Starts polling: the first poll must answer 200 at once; then polls run
/// until the server answers 204 or the client closes.
pub(super) async fn open(target: HttpTarget) -> Result<(FrameSink, FrameSource), HubError> {
    let (status, _) = target
        .exchange(Method::GET, &[("_", "0")], Bytes::new(), target.timeout)
        .await?;
    if status != StatusCode::OK {
        return Err(transport_error(format!(
            "Long Polling failed to connect: the server answered {status}"
        )));
    }
    let (frames, receiver) = mpsc::channel(16);
    let (stop, stopped) = mpsc::channel::<()>(1);
    tokio::spawn(poll(target.clone(), frames, stopped));
    Ok((post_sink(target, stop, true), channel_source(receiver)))
}

/// Polls until the server ends the transport or the client closes it.
async fn poll(
    target: HttpTarget,
    frames: mpsc::Sender<Result<Frame, HubError>>,
    mut stopped: mpsc::Receiver<()>,
) {
    let mut poll = 1_u64;
    loop {
        poll += 1;
        let cache_buster = poll.to_string();
        let query = [("_", cache_buster.as_str())];
        let outcome = tokio::select! {
            outcome = target.exchange(Method::GET, &query, Bytes::new(), POLL_TIMEOUT) => outcome,
            _ = stopped.recv() => return,
            () = frames.closed() => return,
        };
        let frame = match outcome {
            Ok((StatusCode::OK, body)) if body.is_empty() => continue,
            Ok((StatusCode::OK, body)) => Ok(Frame::Data(body)),
            Ok((StatusCode::NO_CONTENT, _)) => Ok(Frame::Close(None)),
            Ok((status, _)) => Err(transport_error(format!(
                "poll failed with status code {status}"
            ))),
            Err(error) => Err(error),
        };
        let last = !matches!(frame, Ok(Frame::Data(_)));
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}
