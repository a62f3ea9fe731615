//! The session: one task per `start()` owns everything that changes the
//! state. It connects, waits for the live connection to end, reconnects
//! following the policy, and finally reports `Closed`. Each live
//! connection has three tasks of its own: the [writer](super::writer), the
//! [reader](super::reader) and the [dispatcher](super::dispatcher).

use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info};

use super::dispatcher::run_dispatcher;
use super::events::{ClosedReason, HubConnectionEvent, HubConnectionState};
use super::handshake::handshake;
use super::reader::{ConnectionEnd, ReaderStart, run_reader};
use super::reconnect::RetryContext;
use super::shared::{Shared, closed_error};
use super::stateful::wrap;
use super::transport::fallback::{Opened, open_transport};
use super::transport::frame::transport_error;
use super::writer::{CLOSE_TIMEOUT, Outbound, run_writer};
use crate::protocol::negotiate::TransportType;
use crate::protocol::{Close, HubMessage};
use crate::{HubError, HubErrorKind};

/// A live connection: handshake done, tasks running.
struct Live {
    connection_id: Option<String>,
    transport: TransportType,
    outbound: mpsc::UnboundedSender<Outbound>,
    reader: JoinHandle<ConnectionEnd>,
    writer: JoinHandle<()>,
}

/// Waits until `stop` becomes true.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The sender lives in `Shared` until the session finishes; if it is
    // gone, nobody can ask to stop any more: wait forever.
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one `start()` to the final close.
pub(crate) async fn run_session(
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    started: oneshot::Sender<Result<(), HubError>>,
) {
    let first = tokio::select! {
        result = connect(&shared) => result,
        () = stopped(&mut stop) => Err(closed_error("The connection was stopped during negotiation.")),
    };
    let mut live = match first {
        Ok(live) => live,
        Err(error) => {
            shared.finish(None);
            let _ = started.send(Err(error));
            return;
        }
    };
    if !shared.install(&live.outbound, live.connection_id.clone(), live.transport) {
        shut_down(live, &shared).await;
        shared.finish(None);
        let _ = started.send(Err(closed_error(
            "The connection was stopped before the hub handshake could complete.",
        )));
        return;
    }
    let _ = started.send(Ok(()));

    loop {
        let end = run_live(&mut live, &shared, &mut stop).await;
        shared.teardown(end.error.as_ref());
        if *stop.borrow() {
            shared.finish(Some((ClosedReason::Stopped, None)));
            return;
        }
        let Some(policy) = shared.config.reconnect.clone() else {
            shared.finish(Some((end.closed_reason(), end.error)));
            return;
        };
        if !end.allow_reconnect {
            shared.finish(Some((end.closed_reason(), end.error)));
            return;
        }

        let started_at = Instant::now();
        let mut context = RetryContext {
            previous_retry_count: 0,
            elapsed: Duration::ZERO,
            retry_reason: end.error.clone().unwrap_or_else(|| {
                HubError::with_kind(
                    HubErrorKind::ConnectionClosed,
                    "Attempting to reconnect due to a unknown error.",
                )
            }),
        };
        let Some(mut delay) = policy.next_retry_delay(&context) else {
            info!("not reconnecting: the reconnect policy gave up before the first attempt");
            shared.finish(Some((end.closed_reason(), end.error)));
            return;
        };
        let reconnecting = shared.state.send_if_modified(|state| {
            if *state == HubConnectionState::Connected {
                *state = HubConnectionState::Reconnecting;
                true
            } else {
                false
            }
        });
        if !reconnecting {
            shared.finish(Some((ClosedReason::Stopped, None)));
            return;
        }
        info!(error = ?end.error, "connection lost; reconnecting");
        shared.emit(HubConnectionEvent::Reconnecting {
            error: end.error.clone(),
        });

        live = loop {
            info!(
                attempt = context.previous_retry_count + 1,
                ?delay,
                "reconnect attempt scheduled"
            );
            let attempt = tokio::select! {
                () = stopped(&mut stop) => None,
                result = async {
                    tokio::time::sleep(delay).await;
                    connect(&shared).await
                } => Some(result),
            };
            match attempt {
                None => {
                    shared.finish(Some((ClosedReason::Stopped, None)));
                    return;
                }
                Some(Ok(new_live)) => break new_live,
                Some(Err(error)) => {
                    info!(%error, "reconnect attempt failed");
                    context.previous_retry_count += 1;
                    context.elapsed = started_at.elapsed();
                    context.retry_reason = error;
                    match policy.next_retry_delay(&context) {
                        Some(next) => delay = next,
                        None => {
                            info!(
                                attempts = context.previous_retry_count,
                                "reconnect retries exhausted"
                            );
                            shared.finish(Some((
                                ClosedReason::ReconnectFailed,
                                Some(context.retry_reason),
                            )));
                            return;
                        }
                    }
                }
            }
        };
        if !shared.install(&live.outbound, live.connection_id.clone(), live.transport) {
            shut_down(live, &shared).await;
            shared.finish(Some((ClosedReason::Stopped, None)));
            return;
        }
        info!(connection_id = ?live.connection_id, "reconnected");
        shared.emit(HubConnectionEvent::Reconnected {
            connection_id: live.connection_id.clone(),
        });
    }
}

/// Waits for `live` to end, or stops it when asked to.
async fn run_live(
    live: &mut Live,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> ConnectionEnd {
    let lost = |e: tokio::task::JoinError| ConnectionEnd {
        error: Some(transport_error(format!(
            "The connection's reader failed: {e}"
        ))),
        allow_reconnect: true,
        server_close: false,
    };
    let end = tokio::select! {
        end = &mut live.reader => Some(end.unwrap_or_else(lost)),
        () = stopped(stop) => None,
    };
    match end {
        Some(end) => {
            // The server closed, timed out or broke the protocol: close our
            // side without a Close message.
            let _ = live.outbound.send(Outbound::Close { message: None });
            end
        }
        None => {
            let message = shared.encode(&HubMessage::Close(Close::default())).ok();
            let _ = live.outbound.send(Outbound::Close { message });
            // Give the server a moment to close its side, then cut.
            match tokio::time::timeout(CLOSE_TIMEOUT, &mut live.reader).await {
                Ok(end) => drop(end),
                Err(_) => live.reader.abort(),
            }
            ConnectionEnd {
                error: None,
                allow_reconnect: false,
                server_close: false,
            }
        }
    }
}

/// Closes a connection that will not be used (stop raced with connect).
async fn shut_down(mut live: Live, shared: &Shared) {
    let message = shared.encode(&HubMessage::Close(Close::default())).ok();
    let _ = live.outbound.send(Outbound::Close { message });
    if tokio::time::timeout(CLOSE_TIMEOUT, &mut live.reader)
        .await
        .is_err()
    {
        live.reader.abort();
    }
    live.writer.abort();
}

/// Opens a transport, handshakes and starts the connection's tasks.
async fn connect(shared: &Arc<Shared>) -> Result<Live, HubError> {
    let config = &shared.config;
    let protocol = config.protocol;
    let Opened {
        mut sink,
        mut source,
        transport: transport_type,
        connection_id,
        resume,
    } = open_transport(config).await?;
    let version = if resume.is_some() { 2 } else { 1 };
    let leftover = match handshake(
        &mut sink,
        &mut source,
        protocol,
        version,
        config.handshake_timeout,
    )
    .await
    {
        Ok(leftover) => leftover,
        Err(error) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            return Err(error);
        }
    };
    debug!(
        ?connection_id,
        transport = transport_type.name(),
        "handshake complete"
    );
    let (sink, source, leftover) = match (resume, config.stateful_reconnect) {
        (Some(reopen), Some(buffer_size)) => {
            wrap(sink, source, leftover, protocol, buffer_size, reopen)
        }
        _ => (sink, source, leftover),
    };

    let (outbound_tx, outbound_rx) = mpsc::unbounded_channel();
    let (failed_tx, failed_rx) = oneshot::channel();
    let (dispatch_tx, dispatch_rx) = mpsc::unbounded_channel();

    // A Ping right after the handshake, as the official clients do; it
    // also turns on the server's client timeout.
    let ping = shared.encode(&HubMessage::Ping)?;
    let _ = outbound_tx.send(Outbound::Data {
        bytes: ping,
        sent: None,
    });

    let writer = tokio::spawn(run_writer(
        sink,
        outbound_rx,
        config.keep_alive_interval,
        shared.encode(&HubMessage::Ping)?,
        failed_tx,
    ));
    tokio::spawn(run_dispatcher(
        shared.clone(),
        dispatch_rx,
        outbound_tx.clone(),
    ));
    let reader = tokio::spawn(run_reader(
        shared.clone(),
        ReaderStart {
            source,
            buffer: leftover,
            decoder: protocol.decoder(config.max_message_size),
            server_timeout: config.server_timeout,
            dispatch: dispatch_tx,
            writer_failed: failed_rx,
        },
    ));
    Ok(Live {
        connection_id,
        transport: transport_type,
        outbound: outbound_tx,
        reader,
        writer,
    })
}
