//! The dispatcher: from an Invocation to the hub method and back to one
//! Completion, with the .NET server's error texts.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use tracing::Instrument as _;
use tracing::field::Empty;

use super::Shared;
use crate::authorization::{Authorization, AuthorizationRequest, Policies};
use crate::filter::{Filters, HubInvocation};
use crate::hub::{
    Arguments, HubCall, InvocationError, MethodKind, MethodOutput, MethodRunner, StreamItems,
    UploadChannel,
};
use crate::protocol::{
    Completion, CompletionResult, HubMessage, Invocation, Payload, StreamInvocation,
};
use crate::server::connection::streams::StreamSender;
use crate::server::connection::{ConnectionHandle, Dispatcher};
use crate::targets::HubLifetimeManager;
use crate::telemetry::hub_metrics::Outcome;
use crate::{BoxFuture, CallContext, Hub, HubError, HubErrorKind};

/// The outcome of a hub method that returned (or panicked into) `outcome`.
fn outcome_of<T>(outcome: &Result<T, InvocationError>) -> Outcome {
    match outcome {
        Ok(_) => Outcome::Ok,
        Err(InvocationError::Unauthorized) => Outcome::Unauthorized,
        Err(InvocationError::Blocked(_)) => Outcome::Blocked,
        Err(InvocationError::Hub(error) | InvocationError::Stream(error)) => {
            Outcome::of_error(error)
        }
        Err(_) => Outcome::Error,
    }
}

/// The start of an invocation, when something will use its duration (a
/// metrics recorder, or a subscriber that records the span): a clock read
/// is a measurable part of an echo call.
fn timer(connection: &ConnectionHandle, span: &tracing::Span) -> Option<std::time::Instant> {
    (connection.metrics().recording() || !span.is_disabled()).then(std::time::Instant::now)
}

/// Records how an invocation ended on its span and in the metrics;
/// `elapsed` is `None` for one refused before its method ran.
fn finish_invocation(
    connection: &ConnectionHandle,
    span: &tracing::Span,
    method: Option<usize>,
    outcome: Outcome,
    elapsed: Option<std::time::Duration>,
) {
    connection.metrics().invocation(method, outcome, elapsed);
    if span.is_disabled() {
        return;
    }
    span.record("signalr.invocation.outcome", outcome.as_str());
    if let Some(elapsed) = elapsed {
        span.record("signalr.invocation.duration", elapsed.as_secs_f64());
    }
    if outcome != Outcome::Ok {
        span.record("otel.status_code", "error");
        span.record("error.type", outcome.as_str());
    }
}

/// The span of one invocation (`signalr.invocation`) or streaming
/// invocation (`signalr.stream`), child of the connection's span; with the
/// `opentelemetry` feature, the caller's trace context in `headers`
/// becomes its OpenTelemetry parent.
fn invocation_span(
    connection: &ConnectionHandle,
    service: &'static str,
    streaming: bool,
    target: &str,
    invocation_id: Option<&str>,
    headers: &crate::protocol::Headers,
) -> tracing::Span {
    let span = if streaming {
        tracing::info_span!(parent: connection.span_id(), "signalr.stream",
            otel.name = %format_args!("{service}/{target}"),
            otel.kind = "server",
            rpc.system = "signalr",
            rpc.service = service,
            rpc.method = target,
            signalr.invocation.id = invocation_id,
            signalr.invocation.outcome = Empty,
            signalr.invocation.duration = Empty,
            otel.status_code = Empty,
            error.type = Empty,
        )
    } else {
        tracing::info_span!(parent: connection.span_id(), "signalr.invocation",
            otel.name = %format_args!("{service}/{target}"),
            otel.kind = "server",
            rpc.system = "signalr",
            rpc.service = service,
            rpc.method = target,
            signalr.invocation.id = invocation_id,
            signalr.invocation.outcome = Empty,
            signalr.invocation.duration = Empty,
            otel.status_code = Empty,
            error.type = Empty,
        )
    };
    #[cfg(feature = "opentelemetry")]
    crate::telemetry::trace_context::adopt_parent(&span, headers);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = headers;
    span
}

/// Case-insensitive lookup over `Hub::METHODS`, built once per server.
pub(crate) struct MethodTable {
    by_name: HashMap<String, usize>,
    /// Every name, in `METHODS` order, when all are ASCII: an ASCII target
    /// is then found without lowercasing it into a new string.
    ascii: Option<Vec<&'static str>>,
}

impl MethodTable {
    pub(crate) fn new<H: Hub>() -> Self {
        let mut by_name = HashMap::new();
        for (index, method) in H::METHODS.iter().enumerate() {
            by_name.entry(method.name.to_lowercase()).or_insert(index);
        }
        let ascii = H::METHODS
            .iter()
            .all(|method| method.name.is_ascii())
            .then(|| H::METHODS.iter().map(|method| method.name).collect());
        MethodTable { by_name, ascii }
    }

    pub(crate) fn find(&self, target: &str) -> Option<usize> {
        match &self.ascii {
            // The first match, as the map keeps the first of equal names.
            Some(names) if target.is_ascii() => names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(target)),
            _ => self.by_name.get(&target.to_lowercase()).copied(),
        }
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
        InvocationError::Stream(error) => {
            let base = "An error occurred on the server while streaming results.".to_owned();
            match error.kind() {
                HubErrorKind::Hub | HubErrorKind::Remote => {
                    with(base, format!("HubException: {}", error.message()), true)
                }
                kind => with(
                    base,
                    format!("{kind:?}Exception: {}", error.message()),
                    false,
                ),
            }
        }
        InvocationError::UploadStreamCount { provided, expected } => with(
            unexpected,
            format!(
                "HubException: Client sent {provided} stream(s), Hub method expects {expected}."
            ),
            true,
        ),
        InvocationError::UploadStreamInUse(id) => with(
            unexpected,
            format!("HubException: Stream ID '{id}' is already in use."),
            true,
        ),
        // ASP.NET Core's DefaultHubDispatcher text, whatever the
        // detailed-errors setting.
        InvocationError::Unauthorized => {
            format!("Failed to invoke '{target}' because user is unauthorized")
        }
        InvocationError::Blocked(error) => with(
            unexpected,
            format!("HubException: {}", error.message()),
            true,
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

/// The Completion error of a server-to-client stream stopped by a server
/// shutdown.
const STREAM_STOPPED_BY_SHUTDOWN: &str =
    "The stream was stopped because the server is shutting down.";

fn completion(invocation_id: String, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: Vec::new(),
        invocation_id,
        result,
    })
}

/// What stands between an invocation and its method: the method's
/// authorization, then the filters. `None` (the common case: nothing
/// declared, no filter) costs nothing.
struct Gate {
    authorization: Option<&'static Authorization>,
    policies: Arc<Policies>,
    filters: Arc<Filters>,
}

/// Runs method `index` of `hub` for `call` behind `gate`: a call the
/// authorization refuses fails with [`InvocationError::Unauthorized`] and
/// reaches no filter.
async fn guarded_invoke<H: Hub>(
    gate: Option<Gate>,
    hub: Arc<H>,
    index: usize,
    call: HubCall<H>,
) -> Result<MethodOutput, InvocationError> {
    let Some(gate) = gate else {
        return hub.invoke(index, call).await;
    };
    let method = H::METHODS[index].name;
    if let Some(authorization) = gate.authorization {
        let context = call.context();
        let request = AuthorizationRequest {
            identity: context.identity(),
            request: context.request(),
            method: Some(method),
            arguments: Some(call.arguments()),
        };
        if !gate.policies.allows(authorization, &request).await {
            return Err(InvocationError::Unauthorized);
        }
    }
    if gate.filters.is_empty() {
        return hub.invoke(index, call).await;
    }
    // The filters see copies: the call itself moves into the method.
    let connection = call.context().connection().clone();
    let arguments = call.arguments().clone();
    let invocation = HubInvocation {
        hub: std::any::type_name::<H>(),
        method,
        connection: &connection,
        arguments: &arguments,
    };
    gate.filters
        .run_invocation(&invocation, move || hub.invoke(index, call))
        .await
}

impl<H: Hub> Shared<H> {
    /// The gate of method `index`, if it has anything to check.
    fn gate(&self, index: usize) -> Option<Gate> {
        let authorization = self.method_authorization.get(index).copied().flatten();
        (authorization.is_some() || !self.filters.is_empty()).then(|| Gate {
            authorization,
            policies: self.policies.clone(),
            filters: self.filters.clone(),
        })
    }

    fn call_context(&self, connection: &ConnectionHandle) -> CallContext<H> {
        CallContext::for_connection(
            connection.context().clone(),
            self.registry.clone() as Arc<dyn HubLifetimeManager>,
        )
    }

    /// Sends `text` as an error Completion when the invocation has an id.
    fn reject_with(
        &self,
        connection: &ConnectionHandle,
        invocation_id: Option<String>,
        text: String,
    ) {
        match invocation_id {
            Some(id) => {
                let _ = connection.send_message(&completion(id, CompletionResult::Error(text)));
            }
            None => tracing::debug!(connection = %connection.id(), error = %text,
                "fire-and-forget invocation refused"),
        }
    }

    /// Checks the upload streams of an invocation of `method` and opens
    /// them; on failure the invocation has been answered.
    fn open_uploads(
        &self,
        connection: &Arc<ConnectionHandle>,
        invocation_id: &Option<String>,
        target: &str,
        expected: usize,
        stream_ids: Vec<String>,
        span: &tracing::Span,
    ) -> Option<UploadGuard> {
        if stream_ids.len() != expected {
            let error = InvocationError::UploadStreamCount {
                provided: stream_ids.len(),
                expected,
            };
            self.reject(connection, invocation_id.clone(), target, &error);
            return None;
        }
        match connection.open_uploads(&stream_ids) {
            Ok(channels) => Some(UploadGuard {
                // Open as long as the upload streams are.
                span: if stream_ids.is_empty() {
                    tracing::Span::none()
                } else {
                    tracing::info_span!(parent: span, "signalr.upload",
                        rpc.system = "signalr",
                        signalr.stream.ids = ?stream_ids)
                },
                connection: connection.clone(),
                ids: stream_ids,
                channels,
            }),
            Err(id) => {
                let error = InvocationError::UploadStreamInUse(id);
                self.reject(connection, invocation_id.clone(), target, &error);
                None
            }
        }
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
    fn register(&self, connection: &Arc<ConnectionHandle>) -> BoxFuture<'static, ()> {
        // Scale-out: other nodes reach the connection once this holds.
        self.registry
            .add(connection)
            .unwrap_or_else(|| Box::pin(std::future::ready(())))
    }

    fn connected(
        &self,
        connection: &Arc<ConnectionHandle>,
    ) -> BoxFuture<'static, Result<(), HubError>> {
        if self.options.close_on_authentication_expiration {
            close_on_expiry(connection);
        }
        let context = self.call_context(connection);
        let hub = self.hub.clone();
        let filters = self.filters.clone();
        Box::pin(async move {
            let connection = context.connection().clone();
            let connected = filters.run_connected(&connection, move || hub.on_connected(context));
            match AssertUnwindSafe(connected).catch_unwind().await {
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
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } = invocation;
        // The .NET server treats an empty id as fire-and-forget.
        let invocation_id = invocation_id.filter(|id| !id.is_empty());
        let span = invocation_span(
            connection,
            self.service,
            false,
            &target,
            invocation_id.as_deref(),
            &headers,
        );
        let refused = |method| {
            finish_invocation(connection, &span, method, Outcome::Error, None);
        };
        let Some(index) = self.methods.find(&target) else {
            refused(None);
            self.reject(
                connection,
                invocation_id,
                &target,
                &InvocationError::UnknownMethod,
            );
            return None;
        };
        let method = &H::METHODS[index];
        if arguments.len() != method.parameters {
            refused(Some(index));
            let error = InvocationError::ArgumentCount {
                provided: arguments.len(),
                expected: method.parameters,
            };
            self.reject(connection, invocation_id, &target, &error);
            return None;
        }
        if method.kind == MethodKind::ServerStream {
            refused(Some(index));
            let text = format!(
                "The client attempted to invoke the streaming '{target}' method with a non-streaming invocation."
            );
            self.reject_with(connection, invocation_id, text);
            return None;
        }
        let Some(uploads) = self.open_uploads(
            connection,
            &invocation_id,
            &target,
            method.upload_streams,
            stream_ids,
            &span,
        ) else {
            refused(Some(index));
            return None;
        };

        let call = HubCall::new(self.call_context(connection), Arguments::new(arguments))
            .with_uploads(uploads.channels.clone());
        let hub = self.hub.clone();
        let job = InvocationJob {
            connection: connection.clone(),
            invocation_id,
            target,
            uploads,
            index,
            detailed: self.options.enable_detailed_errors,
            span,
        };
        Some(match self.gate(index) {
            // The common case: the method's future goes into the job
            // unboxed (one allocation for both).
            None => hub.invoke_with(index, call, job),
            gate => job.run(guarded_invoke(gate, hub, index, call)),
        })
    }

    fn stream_invocation(
        &self,
        connection: &Arc<ConnectionHandle>,
        invocation: StreamInvocation,
    ) -> Option<BoxFuture<'static, ()>> {
        let StreamInvocation {
            headers,
            invocation_id,
            target,
            arguments,
            stream_ids,
        } = invocation;
        if invocation_id.is_empty() {
            tracing::debug!(connection = %connection.id(), target, "StreamInvocation without an id; ignored");
            return None;
        }
        let span = invocation_span(
            connection,
            self.service,
            true,
            &target,
            Some(&invocation_id),
            &headers,
        );
        let refused = |method| {
            finish_invocation(connection, &span, method, Outcome::Error, None);
        };
        let Some(index) = self.methods.find(&target) else {
            refused(None);
            self.reject(
                connection,
                Some(invocation_id),
                &target,
                &InvocationError::UnknownMethod,
            );
            return None;
        };
        let method = &H::METHODS[index];
        if arguments.len() != method.parameters {
            refused(Some(index));
            let error = InvocationError::ArgumentCount {
                provided: arguments.len(),
                expected: method.parameters,
            };
            self.reject(connection, Some(invocation_id), &target, &error);
            return None;
        }
        if method.kind != MethodKind::ServerStream {
            refused(Some(index));
            let text = format!(
                "The client attempted to invoke the non-streaming '{target}' method with a streaming invocation."
            );
            self.reject_with(connection, Some(invocation_id), text);
            return None;
        }
        let Some(stream) = connection.start_stream(&invocation_id) else {
            refused(Some(index));
            let text = format!("Invocation ID '{invocation_id}' is already in use.");
            self.reject_with(connection, Some(invocation_id), text);
            return None;
        };
        let id = Some(invocation_id.clone());
        let Some(uploads) = self.open_uploads(
            connection,
            &id,
            &target,
            method.upload_streams,
            stream_ids,
            &span,
        ) else {
            refused(Some(index));
            connection.end_stream(&invocation_id, stream.generation);
            return None;
        };

        let items = StreamItems::new(Arc::new(StreamSender::new(
            connection.clone(),
            invocation_id.clone(),
        )));
        let call = HubCall::new(self.call_context(connection), Arguments::new(arguments))
            .with_stream_items(items)
            .with_uploads(uploads.channels.clone());
        let hub = self.hub.clone();
        let gate = self.gate(index);
        let connection = connection.clone();
        let detailed = self.options.enable_detailed_errors;
        let job_span = span.clone();
        Some(Box::pin(async move {
            let started = timer(&connection, &job_span);
            let mut closing = connection.close_signal();
            let running = AssertUnwindSafe(guarded_invoke(gate, hub, index, call)).catch_unwind();
            // Cancelling drops the method's future, and with it its stream:
            // the producer stops at once.
            let outcome = tokio::select! {
                outcome = running => Some(outcome),
                _ = stream.cancelled => None,
                // Whether the connection closes for a server shutdown (the
                // watch's guard must not live on across the awaits below).
                shutdown = async {
                    matches!(
                        closing.wait_for(|reason| reason.is_some()).await.as_deref(),
                        Ok(Some(crate::server::connection::CloseReason::Shutdown))
                    )
                } => {
                    connection.end_stream(&invocation_id, stream.generation);
                    let elapsed = started.map(|started| started.elapsed());
                    finish_invocation(&connection, &job_span, Some(index), Outcome::Ok, elapsed);
                    // A server shutdown stops the stream, but the client is
                    // still there (answers are written while the connection
                    // drains): it gets a Completion with an error now, not
                    // only the Close once the drain is over. Otherwise
                    // nobody is left to answer.
                    if shutdown {
                        let error = CompletionResult::Error(STREAM_STOPPED_BY_SHUTDOWN.to_owned());
                        let _ = connection.send_reply(&completion(invocation_id, error)).await;
                    }
                    return;
                }
            };
            let elapsed = started.map(|started| started.elapsed());
            drop(uploads);
            connection.end_stream(&invocation_id, stream.generation);
            let kind = match &outcome {
                None => Outcome::Ok,
                Some(Ok(result)) => outcome_of(result),
                Some(Err(_)) => Outcome::Error,
            };
            finish_invocation(&connection, &job_span, Some(index), kind, elapsed);
            let result = match outcome {
                // As ASP.NET Core: a cancelled stream still gets its
                // Completion, without an error.
                None => CompletionResult::Void,
                Some(Ok(Ok(_))) => CompletionResult::Void,
                Some(Ok(Err(error))) => {
                    tracing::debug!(connection = %connection.id(), target, ?error, "stream failed");
                    CompletionResult::Error(error_text(&target, &error, detailed))
                }
                Some(Err(_)) => {
                    tracing::error!(connection = %connection.id(), target, "streaming hub method panicked");
                    let error = InvocationError::Stream(HubError::with_kind(
                        HubErrorKind::Transport,
                        "the hub method panicked",
                    ));
                    CompletionResult::Error(error_text(&target, &error, detailed))
                }
            };
            let _ = connection
                .send_reply(&completion(invocation_id, result))
                .await;
        }.instrument(span)))
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
        let filters = self.filters.clone();
        Box::pin(async move {
            let connection = context.connection().clone();
            let seen = error.clone();
            let disconnected = filters.run_disconnected(&connection, seen.as_ref(), move || {
                hub.on_disconnected(context, error)
            });
            if AssertUnwindSafe(disconnected).catch_unwind().await.is_err() {
                tracing::error!("on_disconnected panicked");
            }
        })
    }
}

/// An Invocation past its checks, waiting for its method's future: runs
/// it, then answers with a Completion when the invocation has an id. As a
/// [`MethodRunner`] it takes the method's future unboxed, so that the job
/// and the method's future take one allocation together.
struct InvocationJob {
    connection: Arc<ConnectionHandle>,
    invocation_id: Option<String>,
    target: String,
    uploads: UploadGuard,
    index: usize,
    detailed: bool,
    /// `signalr.invocation`, which the job runs in.
    span: tracing::Span,
}

impl MethodRunner for InvocationJob {
    type Output = BoxFuture<'static, ()>;

    fn run<F>(self, method: F) -> Self::Output
    where
        F: Future<Output = Result<MethodOutput, InvocationError>> + Send + 'static,
    {
        let span = self.span.clone();
        Box::pin(self.answer(method).instrument(span))
    }
}

impl InvocationJob {
    async fn answer<F>(self, method: F)
    where
        F: Future<Output = Result<MethodOutput, InvocationError>> + Send + 'static,
    {
        let InvocationJob {
            connection,
            invocation_id,
            target,
            uploads,
            index,
            detailed,
            span,
        } = self;
        let started = timer(&connection, &span);
        let outcome = AssertUnwindSafe(method)
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(connection = %connection.id(), target, "hub method panicked");
                Err(InvocationError::Result("the hub method panicked".into()))
            });
        let elapsed = started.map(|started| started.elapsed());
        // The method is done: its upload streams take no more items.
        drop(uploads);
        let mut kind = outcome_of(&outcome);
        if let Err(error) = &outcome {
            tracing::debug!(connection = %connection.id(), target, ?error,
                "invocation failed");
        }
        if let Some(id) = invocation_id {
            let result = match outcome {
                Ok(MethodOutput::Value(payload)) => CompletionResult::Value(payload),
                #[allow(unreachable_patterns)]
                Ok(_) => CompletionResult::Value(Payload::null()),
                Err(error) => CompletionResult::Error(error_text(&target, &error, detailed)),
            };
            // An answer to the connection's own invocation waits for room
            // (backpressure on the caller), see `send_reply`.
            let mut answer = completion(id, result);
            if let Err(error) = connection.send_reply(&answer).await {
                // The result did not serialize: answer with an error (the
                // id moves over: no copy on the common path).
                tracing::debug!(connection = %connection.id(), target, %error,
                    "result not serializable");
                kind = Outcome::Error;
                let error = InvocationError::Result(error.to_string());
                let text = error_text(&target, &error, detailed);
                if let HubMessage::Completion(answer) = &mut answer {
                    answer.result = CompletionResult::Error(text);
                }
                let _ = connection.send_reply(&answer).await;
            }
        }
        finish_invocation(&connection, &span, Some(index), kind, elapsed);
    }
}

/// The upload streams of one invocation, closed when the invocation ends
/// however it ends (completed, failed, dropped before it ran).
struct UploadGuard {
    /// `signalr.upload`, closed with the streams.
    #[allow(dead_code)]
    span: tracing::Span,
    connection: Arc<ConnectionHandle>,
    ids: Vec<String>,
    channels: Vec<Arc<UploadChannel>>,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if !self.ids.is_empty() {
            self.connection.close_uploads(&self.ids, &self.channels);
        }
    }
}

/// Closes `connection` when its identity expires (or never, without an
/// expiry); the timer ends with the connection.
fn close_on_expiry(connection: &Arc<ConnectionHandle>) {
    let Some(expiry) = connection.context().identity().expires_at() else {
        return;
    };
    let delay = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    let mut closing = connection.close_signal();
    let connection = Arc::downgrade(connection);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {
                if let Some(connection) = connection.upgrade() {
                    tracing::debug!(connection = %connection.id(), "authentication expired; closing");
                    connection.abort(crate::server::connection::CloseReason::AuthenticationExpired);
                }
            }
            _ = closing.wait_for(|reason| reason.is_some()) => {}
        }
    });
}
