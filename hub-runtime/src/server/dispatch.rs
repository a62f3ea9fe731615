//! The dispatcher: from an Invocation to the hub method and back to one
//! Completion, with the .NET server's error texts.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use super::Shared;
use crate::clients::HubLifetimeManager;
use crate::connection::{ConnectionHandle, Dispatcher};
use crate::hub::{Arguments, HubCall, InvocationError, MethodKind, MethodOutput};
use crate::protocol::{
    Completion, CompletionResult, HubMessage, Invocation, Payload, StreamInvocation,
};
use crate::{BoxFuture, CallContext, Hub, HubError, HubErrorKind};

/// Case-insensitive lookup over `Hub::METHODS`, built once per server.
pub(crate) struct MethodTable {
    by_name: HashMap<String, usize>,
}

impl MethodTable {
    pub(crate) fn new<H: Hub>() -> Self {
        let mut by_name = HashMap::new();
        for (index, method) in H::METHODS.iter().enumerate() {
            by_name.entry(method.name.to_lowercase()).or_insert(index);
        }
        MethodTable { by_name }
    }

    pub(crate) fn find(&self, target: &str) -> Option<usize> {
        self.by_name.get(&target.to_lowercase()).copied()
    }
}

/// The Completion error text for a failed invocation of `target`, as the
/// .NET server words it (DefaultHubDispatcher, ErrorMessageHelper).
pub(crate) fn error_text(target: &str, error: &InvocationError, detailed: bool) -> String {
    let binding = format!("Failed to invoke '{target}' due to an error on the server.");
    let unexpected = format!("An unexpected error occurred invoking '{target}' on the server.");
    let with = |base: String, detail: String, always: bool| {
        if always || detailed {
            format!("{base} {detail}")
        } else {
            base
        }
    };
    match error {
        InvocationError::UnknownMethod => {
            with(binding, "HubException: Method does not exist.".into(), true)
        }
        InvocationError::ArgumentCount { provided, expected } => with(
            binding,
            format!(
                "InvalidDataException: Invocation provides {provided} argument(s) but target expects {expected}."
            ),
            false,
        ),
        InvocationError::ArgumentBinding { index, message } => with(
            binding,
            format!(
                "InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked. (argument {index}: {message})"
            ),
            false,
        ),
        InvocationError::Result(message) => with(
            unexpected,
            format!("SerializationException: {message}"),
            false,
        ),
        InvocationError::Hub(error) => match error.kind() {
            // HubException: the message always reaches the client. A client
            // result's error surfaces in .NET as a HubException too.
            HubErrorKind::Hub | HubErrorKind::Remote => with(
                unexpected,
                format!("HubException: {}", error.message()),
                true,
            ),
            kind => with(
                unexpected,
                format!("{kind:?}Exception: {}", error.message()),
                false,
            ),
        },
        #[allow(unreachable_patterns)]
        other => with(unexpected, format!("{other:?}"), false),
    }
}

fn completion(invocation_id: String, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id,
        result,
    })
}

impl<H: Hub> Shared<H> {
    fn call_context(&self, connection: &ConnectionHandle) -> CallContext<H> {
        CallContext::new(
            connection.id().clone(),
            connection.user().cloned(),
            self.registry.clone() as Arc<dyn HubLifetimeManager>,
        )
    }

    /// Sends an error Completion when the invocation has an id.
    fn reject(
        &self,
        connection: &ConnectionHandle,
        invocation_id: Option<String>,
        target: &str,
        error: &InvocationError,
    ) {
        let text = error_text(target, error, self.options.enable_detailed_errors);
        match invocation_id {
            Some(id) => {
                let _ = connection.send_message(&completion(id, CompletionResult::Error(text)));
            }
            None => {
                tracing::debug!(connection = %connection.id(), target, error = %text,
                    "fire-and-forget invocation failed");
            }
        }
    }
}

impl<H: Hub> Dispatcher for Shared<H> {
    fn connected(
        &self,
        connection: &Arc<ConnectionHandle>,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        self.registry.add(connection);
        let context = self.call_context(connection);
        let hub = self.hub.clone();
        Box::pin(async move {
            match AssertUnwindSafe(hub.on_connected(context))
                .catch_unwind()
                .await
            {
                Ok(result) => result,
                Err(_) => Err(HubError::with_kind(
                    HubErrorKind::Transport,
                    "on_connected panicked",
                )),
            }
        })
    }

    fn invocation(
        &self,
        connection: &Arc<ConnectionHandle>,
        invocation: Invocation,
    ) -> Option<BoxFuture<'static, ()>> {
        let Invocation {
            invocation_id,
            target,
            arguments,
            stream_ids,
            ..
        } = invocation;
        // The .NET server treats an empty id as fire-and-forget.
        let invocation_id = invocation_id.filter(|id| !id.is_empty());
        let Some(index) = self.methods.find(&target) else {
            self.reject(
                connection,
                invocation_id,
                &target,
                &InvocationError::UnknownMethod,
            );
            return None;
        };
        let method = &H::METHODS[index];
        if !stream_ids.is_empty() {
            let error = InvocationError::Hub(HubError::new(format!(
                "Client sent {} stream(s), Hub method expects 0.",
                stream_ids.len()
            )));
            self.reject(connection, invocation_id, &target, &error);
            return None;
        }
        if arguments.len() != method.parameters {
            let error = InvocationError::ArgumentCount {
                provided: arguments.len(),
                expected: method.parameters,
            };
            self.reject(connection, invocation_id, &target, &error);
            return None;
        }

        let call = HubCall::new(self.call_context(connection), Arguments::new(arguments));
        let hub = self.hub.clone();
        let connection = connection.clone();
        let detailed = self.options.enable_detailed_errors;
        Some(Box::pin(async move {
            let outcome = AssertUnwindSafe(hub.invoke(index, call))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::error!(connection = %connection.id(), target, "hub method panicked");
                    Err(InvocationError::Result("the hub method panicked".into()))
                });
            let Some(id) = invocation_id else {
                if let Err(error) = outcome {
                    tracing::debug!(connection = %connection.id(), target, ?error,
                        "fire-and-forget invocation failed");
                }
                return;
            };
            let result = match outcome {
                Ok(MethodOutput::Value(payload)) => CompletionResult::Value(payload),
                #[allow(unreachable_patterns)]
                Ok(_) => CompletionResult::Value(Payload::null()),
                Err(error) => CompletionResult::Error(error_text(&target, &error, detailed)),
            };
            match connection.send_message(&completion(id.clone(), result)) {
                Ok(_) => {}
                Err(error) => {
                    // The result did not serialize: answer with an error.
                    let error = InvocationError::Result(error.to_string());
                    let text = error_text(&target, &error, detailed);
                    let _ = connection.send_message(&completion(id, CompletionResult::Error(text)));
                }
            }
        }))
    }

    fn stream_invocation(&self, connection: &Arc<ConnectionHandle>, invocation: StreamInvocation) {
        let target = invocation.target;
        let id = Some(invocation.invocation_id).filter(|id| !id.is_empty());
        let text = match self.methods.find(&target) {
            None => error_text(&target, &InvocationError::UnknownMethod, false),
            Some(index) => match H::METHODS[index].kind {
                MethodKind::Unary => format!(
                    "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
                ),
                #[allow(unreachable_patterns)]
                _ => format!("Streaming invocations of '{target}' are not supported yet."),
            },
        };
        if let Some(id) = id {
            let _ = connection.send_message(&completion(id, CompletionResult::Error(text)));
        }
    }

    fn disconnected(
        &self,
        connection: &Arc<ConnectionHandle>,
        error: Option<HubError>,
        was_connected: bool,
    ) -> BoxFuture<'static, ()> {
        self.registry.remove(connection);
        if !was_connected {
            return Box::pin(async {});
        }
        let context = self.call_context(connection);
        let hub = self.hub.clone();
        Box::pin(async move {
            if AssertUnwindSafe(hub.on_disconnected(context, error))
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!("on_disconnected panicked");
            }
        })
    }
}
