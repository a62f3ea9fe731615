//! The streams of one connection: server-to-client streams (cancellation,
//! the window of items in flight) and client-to-server upload streams (the
//! buffers between the read loop and the hub methods).
//!
//! # Flow control
//!
//! - **Server to client.** Each stream may have at most
//!   `stream_buffer_capacity` encoded items in the connection's outbound
//!   queue. An item's bytes carry a semaphore permit that is released when
//!   the writer has written (or copied) them, so a producer faster
//!   than its client waits at [`StreamSender::send`]; other streams, other
//!   invocations and broadcasts to the same connection are not held up,
//!   and the outbound queue never overflows because of a stream.
//! - **Client to server.** Each upload stream buffers
//!   `stream_buffer_capacity` items (ASP.NET Core's `StreamBufferCapacity`,
//!   10). The read loop may push up to as many again in total, across the
//!   connection's upload streams, beyond those capacities: a bounded
//!   lookahead so that what follows a full stream in the client's message
//!   order — the answer to a client result the consuming hub method
//!   awaits, items of another stream it reads first, a CancelInvocation —
//!   is still read. At that limit the read loop stops reading the
//!   connection until a hub method takes items (TCP backpressure on the
//!   client). A hub method that neither reads its upload stream nor
//!   returns, while the client keeps sending, can therefore stall its own
//!   connection's reading; the client-result timeout still ends any wait
//!   for an answer behind it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::ConnectionHandle;
use crate::hub::{ItemSink, RoomSignal, UploadChannel};
use crate::protocol::{Completion, CompletionResult, HubMessage, Payload, StreamItem};
use crate::{BoxFuture, HubError, HubErrorKind};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single inserts and removes: consistent whatever panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stream state of one connection.
pub(crate) struct ConnectionStreams {
    capacity: usize,
    /// Running server-to-client streams: generation and cancel switch.
    outgoing: Mutex<HashMap<String, (u64, oneshot::Sender<()>)>>,
    generation: AtomicU64,
    /// Open upload streams by stream id.
    uploads: Mutex<HashMap<String, Arc<UploadChannel>>>,
    /// Whether an upload stream was ever opened: until then the read loop
    /// checks no buffers (most connections never upload).
    ever_uploaded: AtomicBool,
    room: Arc<RoomSignal>,
}

/// A registered server-to-client stream; see
/// [`ConnectionHandle::start_stream`].
pub(crate) struct OutgoingStream {
    pub(crate) generation: u64,
    pub(crate) cancelled: oneshot::Receiver<()>,
}

impl ConnectionStreams {
    pub(crate) fn new(capacity: usize) -> Self {
        ConnectionStreams {
            capacity: capacity.max(1),
            outgoing: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
            uploads: Mutex::new(HashMap::new()),
            ever_uploaded: AtomicBool::new(false),
            room: Arc::new(RoomSignal::default()),
        }
    }
}

impl ConnectionHandle {
    /// How many items each stream buffers (both directions).
    pub(crate) fn stream_capacity(&self) -> usize {
        self.streams.capacity
    }

    /// Registers the server-to-client stream `id`; `None` when a running
    /// stream already has that id.
    pub(crate) fn start_stream(&self, id: &str) -> Option<OutgoingStream> {
        let mut outgoing = lock(&self.streams.outgoing);
        if outgoing.contains_key(id) {
            return None;
        }
        let generation = self.streams.generation.fetch_add(1, Ordering::Relaxed);
        let (cancel, cancelled) = oneshot::channel();
        outgoing.insert(id.to_owned(), (generation, cancel));
        Some(OutgoingStream {
            generation,
            cancelled,
        })
    }

    /// Forgets stream `id` once it has ended (unless a newer stream took
    /// the id after a cancel).
    pub(crate) fn end_stream(&self, id: &str, generation: u64) {
        let mut outgoing = lock(&self.streams.outgoing);
        if outgoing.get(id).is_some_and(|(g, _)| *g == generation) {
            outgoing.remove(id);
        }
    }

    /// The client's CancelInvocation: stops stream `id`. An id that matches
    /// no running stream is ignored, as the spec asks.
    pub(crate) fn cancel_stream(&self, id: &str) {
        if let Some((_, cancel)) = lock(&self.streams.outgoing).remove(id) {
            let _ = cancel.send(());
        } else {
            tracing::debug!(connection = %self.id, invocation = id,
                "CancelInvocation for no running stream; ignored");
        }
    }

    /// Opens the upload streams `ids` of one invocation. Fails with the
    /// first id that is already open (or repeated).
    pub(crate) fn open_uploads(&self, ids: &[String]) -> Result<Vec<Arc<UploadChannel>>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut uploads = lock(&self.streams.uploads);
        for (index, id) in ids.iter().enumerate() {
            if uploads.contains_key(id) || ids[..index].contains(id) {
                return Err(id.clone());
            }
        }
        self.streams.ever_uploaded.store(true, Ordering::Relaxed);
        Ok(ids
            .iter()
            .map(|id| {
                let channel = UploadChannel::new(self.streams.capacity, self.streams.room.clone());
                uploads.insert(id.clone(), channel.clone());
                channel
            })
            .collect())
    }

    /// Closes the upload streams of an invocation that has ended: later
    /// items for them are ignored.
    pub(crate) fn close_uploads(&self, ids: &[String], channels: &[Arc<UploadChannel>]) {
        let mut uploads = lock(&self.streams.uploads);
        for (id, channel) in ids.iter().zip(channels) {
            if uploads
                .get(id)
                .is_some_and(|open| Arc::ptr_eq(open, channel))
            {
                uploads.remove(id);
            }
            channel.complete(Ok(()));
        }
        drop(uploads);
        // The closed streams' buffered items no longer count.
        self.streams.room.notify();
    }

    /// A StreamItem from the client: into its upload stream. Items for
    /// unknown or finished streams are ignored, as ASP.NET Core does.
    pub(crate) fn upload_item(&self, item: StreamItem) {
        let channel = lock(&self.streams.uploads)
            .get(&item.invocation_id)
            .cloned();
        match channel {
            Some(channel) => channel.push(item.item),
            None => tracing::debug!(connection = %self.id, stream = %item.invocation_id,
                "StreamItem for no open upload stream; ignored"),
        }
    }

    /// A Completion from the client that ends an upload stream; `false`
    /// when no upload stream has its id (it may answer a client result).
    pub(crate) fn complete_upload(&self, completion: &Completion) -> bool {
        let Some(channel) = lock(&self.streams.uploads).remove(&completion.invocation_id) else {
            return false;
        };
        channel.complete(match &completion.result {
            CompletionResult::Error(error) => {
                Err(HubError::with_kind(HubErrorKind::Remote, error.clone()))
            }
            CompletionResult::Void | CompletionResult::Value(_) => Ok(()),
        });
        true
    }

    /// Items buffered beyond the upload streams' capacities, in total.
    pub(crate) fn upload_excess(&self) -> usize {
        lock(&self.streams.uploads)
            .values()
            .map(|channel| channel.excess())
            .sum()
    }

    /// Whether the read loop must pause: the lookahead beyond full upload
    /// streams is used up.
    pub(crate) fn uploads_blocked(&self) -> bool {
        // Set under the uploads lock before any item can be buffered, and
        // read by the read loop that buffers them: never stale here.
        self.streams.ever_uploaded.load(Ordering::Relaxed)
            && self.upload_excess() >= self.streams.capacity
    }

    /// Signalled when a hub method takes items from an over-full upload
    /// stream.
    pub(crate) fn upload_room(&self) -> Arc<RoomSignal> {
        self.streams.room.clone()
    }

    /// The connection is over: every upload stream fails with
    /// `ConnectionClosed`, every server stream is cancelled.
    pub(crate) fn close_streams(&self) {
        let uploads: Vec<_> = lock(&self.streams.uploads).drain().collect();
        for (_, channel) in uploads {
            channel.complete(Err(HubError::with_kind(
                HubErrorKind::ConnectionClosed,
                "The underlying connection was closed.",
            )));
        }
        let outgoing: Vec<_> = lock(&self.streams.outgoing).drain().collect();
        for (_, (_, cancel)) in outgoing {
            let _ = cancel.send(());
        }
        self.streams.room.notify();
    }
}

/// Encoded bytes that hold one slot of a stream's window until the writer
/// has consumed them.
struct WindowedRecord {
    bytes: Bytes,
    _slot: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for WindowedRecord {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// The [`ItemSink`] of one server-to-client stream.
pub(crate) struct StreamSender {
    handle: Arc<ConnectionHandle>,
    invocation_id: String,
    window: Arc<Semaphore>,
}

impl StreamSender {
    pub(crate) fn new(handle: Arc<ConnectionHandle>, invocation_id: String) -> Self {
        let window = Arc::new(Semaphore::new(handle.stream_capacity()));
        StreamSender {
            handle,
            invocation_id,
            window,
        }
    }
}

impl ItemSink for StreamSender {
    fn send(&self, item: Payload) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async move {
            let closed = || {
                HubError::with_kind(HubErrorKind::ConnectionClosed, "The connection was closed.")
            };
            // The semaphore is never closed: acquiring only waits.
            let slot = self
                .window
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| closed())?;
            let message = HubMessage::StreamItem(StreamItem {
                headers: Vec::new(),
                invocation_id: self.invocation_id.clone(),
                item,
            });
            let mut buffer = BytesMut::new();
            self.handle
                .protocol()
                .encode(&message, &mut buffer)
                .map_err(|error| {
                    HubError::with_kind(HubErrorKind::Serialization, error.to_string())
                        .with_source(error)
                })?;
            let record = Bytes::from_owner(WindowedRecord {
                bytes: buffer.freeze(),
                _slot: slot,
            });
            if self.handle.push(record) {
                Ok(())
            } else {
                Err(closed())
            }
        })
    }
}
