//! The dispatcher task: runs the client methods the server invokes.
//!
//! Each handler starts in arrival order and they run concurrently (a
//! handler may await an `invoke` whose server method calls back into this
//! client). A client-result invocation is answered with a Completion.

use std::sync::Arc;

use bytes::BytesMut;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tracing::warn;

use super::shared::Shared;
use super::writer::Outbound;
use crate::handlers::ClientHandlers;
use crate::hub::{Arguments, InvocationError};
use crate::protocol::{Completion, CompletionResult, HubMessage, HubProtocol, Invocation};

/// Runs client-method handlers for the server's invocations.
pub(crate) async fn run_dispatcher(
    shared: Arc<Shared>,
    mut invocations: mpsc::UnboundedReceiver<Invocation>,
    outbound: mpsc::UnboundedSender<Outbound>,
) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            invocation = invocations.recv() => match invocation {
                Some(invocation) => running.push(invoke_handlers(shared.handlers(), invocation, shared.config.protocol, outbound.clone())),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    // Let handlers already running finish (their replies go nowhere).
    while running.next().await.is_some() {}
}

/// Runs every handler registered for `invocation.target` and answers a
/// client-result invocation.
async fn invoke_handlers(
    handlers: Arc<ClientHandlers>,
    invocation: Invocation,
    protocol: HubProtocol,
    outbound: mpsc::UnboundedSender<Outbound>,
) {
    let methods: Vec<_> = handlers
        .find(&invocation.target)
        .map(|(_, method)| method.clone())
        .collect();
    if methods.is_empty() {
        warn!(
            "No client method with the name '{}' found.",
            invocation.target.to_lowercase()
        );
    }
    let mut result = None;
    let mut error = None;
    for method in methods {
        match method(Arguments::new(invocation.arguments.clone())).await {
            Ok(Some(payload)) => {
                if result.is_some() && invocation.invocation_id.is_some() {
                    error = Some("Client provided multiple results.".to_owned());
                }
                result = Some(payload);
            }
            Ok(None) => {}
            Err(failure) => {
                warn!(target = %invocation.target, error = %describe(&failure), "client method failed");
                error = Some(describe(&failure));
            }
        }
    }
    let Some(invocation_id) = invocation.invocation_id else {
        if result.is_some() {
            warn!(target = %invocation.target, "result given for a method the server does not expect a result from");
        }
        return;
    };
    let result = match (error, result) {
        (Some(error), _) => CompletionResult::Error(error),
        (None, Some(payload)) => CompletionResult::Value(payload),
        (None, None) => CompletionResult::Error("Client didn't provide a result.".to_owned()),
    };
    let message = HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id,
        result,
    });
    let mut buffer = BytesMut::new();
    let bytes = match protocol.encode(&message, &mut buffer) {
        Ok(()) => buffer.freeze(),
        Err(encode_error) => {
            warn!(%encode_error, "client result could not be serialized");
            let HubMessage::Completion(mut completion) = message else {
                return;
            };
            completion.result = CompletionResult::Error(format!(
                "Client result could not be serialized: {encode_error}"
            ));
            let mut buffer = BytesMut::new();
            if protocol
                .encode(&HubMessage::Completion(completion), &mut buffer)
                .is_err()
            {
                return;
            }
            buffer.freeze()
        }
    };
    let _ = outbound.send(Outbound::Data { bytes, sent: None });
}

/// The text of a failed client method, sent as the Completion's error.
fn describe(error: &InvocationError) -> String {
    match error {
        InvocationError::Hub(error) => error.message().to_owned(),
        InvocationError::ArgumentCount { provided, expected } => {
            format!("Invocation provides {provided} argument(s) but target expects {expected}.")
        }
        InvocationError::ArgumentBinding { index, message } => {
            format!("Error binding argument {index}: {message}")
        }
        InvocationError::Result(message) => message.clone(),
        InvocationError::UnknownMethod => "Client didn't provide a result.".to_owned(),
        // Stream-related failures of hub methods; client methods have no
        // streams, so the debug form is enough.
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}
