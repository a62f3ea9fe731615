//! [`InFlightCalls`]: the calls awaiting the server's answer, by
//! invocation id, and the id counter.
//!
//! One table per [`HubConnection`](super::HubConnection) (it outlives
//! reconnects: ids keep counting). It only stores and resolves entries;
//! the connection's lock around it is the caller's.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::upload::UploadControl;
use crate::protocol::{CompletionResult, Payload};
use crate::{HubError, HubErrorKind};

/// Where an `invoke`'s Completion goes.
pub(crate) type ResultSender = oneshot::Sender<Result<CompletionResult, HubError>>;

/// A call awaiting the server's answer.
enum InFlight {
    /// An `invoke`: one Completion.
    Invoke {
        result: ResultSender,
        uploads: UploadControl,
    },
    /// A `stream`: StreamItems into `items`, then a Completion into
    /// `outcome`. `outcome` is always decided before `items` is dropped, so
    /// the consumer reads it once the items run out.
    Stream {
        items: mpsc::Sender<Payload>,
        outcome: oneshot::Sender<Result<(), HubError>>,
        uploads: UploadControl,
    },
}

/// What became of a StreamItem.
pub(crate) enum ItemDelivery {
    /// Taken, or nobody wants it any more.
    Done,
    /// The stream's buffer is full: wait on `items` (outside the lock).
    Full {
        items: mpsc::Sender<Payload>,
        item: Payload,
    },
}

/// A call taken out of the table; see [`InFlightCalls::forget`].
pub(crate) struct ForgottenCall(#[allow(dead_code)] InFlight);

/// The ids a new call uses: its upload streams' first, then its own.
pub(crate) struct CallIds {
    pub(crate) stream_ids: Vec<String>,
    pub(crate) invocation_id: Option<String>,
}

/// The calls in flight; see the module documentation.
#[derive(Default)]
pub(crate) struct InFlightCalls {
    /// The next invocation or upload-stream id (one counter from 0, as
    /// the JS client).
    next_id: u64,
    calls: HashMap<String, InFlight>,
}

impl InFlightCalls {
    /// The ids of a call with `uploads` upload streams, with an invocation
    /// id unless it is a send (as the JS client: `Sum` with one upload is
    /// `streamIds:["0"]`, `invocationId:"1"`). Nothing is taken until
    /// [`commit`](Self::commit).
    pub(crate) fn ids(&self, uploads: usize, with_invocation_id: bool) -> CallIds {
        let first = self.next_id;
        let after_streams = first + uploads as u64;
        CallIds {
            stream_ids: (first..after_streams).map(|id| id.to_string()).collect(),
            invocation_id: with_invocation_id.then(|| after_streams.to_string()),
        }
    }

    /// Takes the ids of [`ids`](Self::ids) once the call's message is queued.
    pub(crate) fn commit(&mut self, ids: &CallIds) {
        self.next_id += ids.stream_ids.len() as u64 + u64::from(ids.invocation_id.is_some());
    }

    /// Registers an `invoke` awaiting its Completion.
    pub(crate) fn insert_invoke(
        &mut self,
        id: String,
        result: ResultSender,
        uploads: UploadControl,
    ) {
        self.calls.insert(id, InFlight::Invoke { result, uploads });
    }

    /// Registers a `stream` awaiting its items and Completion.
    pub(crate) fn insert_stream(
        &mut self,
        id: String,
        items: mpsc::Sender<Payload>,
        outcome: oneshot::Sender<Result<(), HubError>>,
        uploads: UploadControl,
    ) {
        self.calls.insert(
            id,
            InFlight::Stream {
                items,
                outcome,
                uploads,
            },
        );
    }

    /// Takes `id` out (its caller stopped waiting). Dropping what is
    /// returned ends the call's uploads with an error Completion, so drop
    /// it after queueing anything that must go before them.
    pub(crate) fn forget(&mut self, id: &str) -> Option<ForgottenCall> {
        self.calls.remove(id).map(ForgottenCall)
    }

    /// Resolves `id` with the server's Completion.
    pub(crate) fn complete(&mut self, id: &str, result: CompletionResult) {
        match self.calls.remove(id) {
            Some(InFlight::Invoke {
                result: sender,
                uploads,
            }) => {
                uploads.finish();
                let _ = sender.send(Ok(result));
            }
            Some(InFlight::Stream {
                outcome, uploads, ..
            }) => {
                uploads.finish();
                // A result after stream items is ignored, as the JS client does.
                let _ = outcome.send(match result {
                    CompletionResult::Error(error) => {
                        Err(HubError::with_kind(HubErrorKind::Remote, error))
                    }
                    CompletionResult::Void | CompletionResult::Value(_) => Ok(()),
                });
            }
            None => debug!(
                invocation_id = id,
                "completion for an unknown invocation ignored"
            ),
        }
    }

    /// Hands a StreamItem to the stream `id`, if its buffer has room.
    pub(crate) fn stream_item(&mut self, id: &str, item: Payload) -> ItemDelivery {
        match self.calls.get(id) {
            Some(InFlight::Stream { items, .. }) => match items.try_send(item) {
                Ok(()) => ItemDelivery::Done,
                Err(mpsc::error::TrySendError::Full(item)) => ItemDelivery::Full {
                    items: items.clone(),
                    item,
                },
                // The consumer is being dropped and will cancel.
                Err(mpsc::error::TrySendError::Closed(_)) => ItemDelivery::Done,
            },
            Some(InFlight::Invoke { .. }) => {
                // A stream item for a plain invocation fails it, as in the
                // JS client.
                if let Some(InFlight::Invoke { result, .. }) = self.calls.remove(id) {
                    let _ = result.send(Err(HubError::with_kind(
                        HubErrorKind::Protocol,
                        "Unexpected message type: 2",
                    )));
                }
                ItemDelivery::Done
            }
            None => {
                debug!(
                    invocation_id = id,
                    "stream item for an unknown or canceled stream ignored"
                );
                ItemDelivery::Done
            }
        }
    }

    /// Ends the stream `id` with `error` (its consumer stalled); `true`
    /// when it was still running.
    pub(crate) fn fail_stream(&mut self, id: &str, error: HubError) -> bool {
        match self.calls.remove(id) {
            Some(InFlight::Stream { outcome, .. }) => {
                let _ = outcome.send(Err(error));
                true
            }
            Some(other) => {
                self.calls.insert(id.to_owned(), other);
                false
            }
            None => false,
        }
    }

    /// Fails every call with `error` (the connection is gone).
    pub(crate) fn fail_all(&mut self, error: &HubError) {
        for (_, call) in self.calls.drain() {
            match call {
                InFlight::Invoke { result, .. } => {
                    let _ = result.send(Err(error.clone()));
                }
                InFlight::Stream { outcome, .. } => {
                    let _ = outcome.send(Err(error.clone()));
                }
            }
        }
    }
}
