//! The Server-Sent Events transport: an event stream from the server,
//! POSTs to it (the JSON protocol only).

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::sync::mpsc;

use super::frame::{Frame, FrameSink, FrameSource, transport_error};
use super::http::{HttpTarget, MAX_RECEIVE, channel_source, post_sink};
use crate::HubError;
use crate::client::net::request_error;

/// Opens the event stream: resolves once the server answered it.
pub(super) async fn open(target: HttpTarget) -> Result<(FrameSink, FrameSource), HubError> {
    // As the official clients: the token also rides in the query
    // (browsers' EventSource cannot set headers).
    let token = target.token.token().await;
    let query: Vec<(&str, &str)> = token
        .as_deref()
        .map(|token| ("access_token", token))
        .into_iter()
        .collect();
    let response = tokio::time::timeout(
        target.timeout,
        target.send(
            Method::GET,
            &query,
            Some("text/event-stream"),
            Bytes::new(),
            None,
        ),
    )
    .await
    .map_err(|_| transport_error("EventSource failed to connect: timed out"))??;
    if response.status() != StatusCode::OK {
        return Err(transport_error(format!(
            "EventSource failed to connect: the server answered {}. The connection could not be \
             found on the server, either the connection ID is not present on the server, or a \
             proxy is refusing/buffering the connection.",
            response.status()
        )));
    }
    let (frames, receiver) = mpsc::channel(16);
    let (stop, stopped) = mpsc::channel::<()>(1);
    let host = target.host.clone();
    tokio::spawn(read_events(response, host, frames, stopped));
    Ok((post_sink(target, stop, false), channel_source(receiver)))
}

/// Turns the event stream's `data:` lines into frames until it ends.
async fn read_events(
    mut response: reqwest::Response,
    host: String,
    frames: mpsc::Sender<Result<Frame, HubError>>,
    mut stopped: mpsc::Receiver<()>,
) {
    let mut pending = BytesMut::new();
    let mut data = BytesMut::new();
    loop {
        let chunk = tokio::select! {
            chunk = response.chunk() => chunk,
            _ = stopped.recv() => return,
            () = frames.closed() => return,
        };
        let chunk = match chunk {
            Ok(Some(chunk)) => chunk,
            Err(error) => {
                let _ = frames
                    .send(Err(request_error("The event stream failed", &host, &error)))
                    .await;
                return;
            }
            // The server ended the stream: a normal end.
            Ok(None) => {
                let _ = frames.send(Ok(Frame::Close(None))).await;
                return;
            }
        };
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line = pending.split_to(end + 1);
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if !data.is_empty() {
                    let event = data.split().freeze();
                    if std::str::from_utf8(&event).is_err() {
                        let _ = frames
                            .send(Err(transport_error("an event is not UTF-8")))
                            .await;
                        return;
                    }
                    if frames.send(Ok(Frame::Data(event))).await.is_err() {
                        return;
                    }
                }
            } else if let Some(value) = line.strip_prefix(b"data:") {
                if !data.is_empty() {
                    data.extend_from_slice(b"\n");
                }
                data.extend_from_slice(value.strip_prefix(b" ").unwrap_or(value));
                if data.len() > MAX_RECEIVE {
                    let _ = frames
                        .send(Err(transport_error("an event is too large")))
                        .await;
                    return;
                }
            }
            // Comments (`:`) and other fields are ignored.
        }
        if pending.len() > MAX_RECEIVE {
            let _ = frames
                .send(Err(transport_error("an event line is too long")))
                .await;
            return;
        }
    }
}
