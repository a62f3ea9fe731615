//! The outbound queue of one connection: what the hub sends it, waiting
//! for the connection's writer.
//!
//! Hand-written instead of a `tokio::sync::mpsc` channel because a channel
//! allocates its first block of slots (32 slots, about 1.8 kB with our
//! items) when it is created, so every idle connection paid for a queue it
//! did not use (valgrind massif, 19,000 idle connections). This queue is a
//! `VecDeque` behind a mutex, which allocates when the first item is
//! queued, plus a waker for the one consumer and a [`Notify`] for the
//! producers that wait for room: about 100 bytes inline in the connection's
//! handle, nothing on the heap while nothing is queued. The lock is held
//! for a push or a pop only, never across an await.

use std::collections::VecDeque;
#[cfg(test)]
use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

/// What the writer receives.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// One or more whole encoded records.
    Records(Bytes),
    /// The last frame: write it (if not empty) after everything queued
    /// before it, then close the transport.
    Close(Bytes),
}

/// A queue that has emptied gives its slots back when it grew beyond this
/// many: a burst does not pin memory for the rest of the connection, and a
/// connection that gets a message now and then keeps its first small
/// allocation instead of making one per message.
const RETAINED_SLOTS: usize = 8;

/// Why an item was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    /// The queue holds its capacity of items.
    Full(Outbound),
    /// The writer is gone.
    Closed,
}

/// A bounded multi-producer, single-consumer queue of [`Outbound`] items
/// that allocates only while something is queued (see the module docs).
pub(crate) struct OutboundQueue {
    state: Mutex<QueueState>,
    capacity: usize,
    /// The writer's waker.
    consumer: AtomicWaker,
    /// Producers waiting for room ([`OutboundQueue::push`]).
    room: Notify,
    /// Whether a producer may be waiting in `room`: an atomic load per
    /// batch instead of `Notify`'s lock when none waits.
    room_wanted: AtomicBool,
}

struct QueueState {
    items: VecDeque<Outbound>,
    /// The writer is gone: pushes fail.
    closed: bool,
    /// No more pushes come: the writer sees the end once the queue is
    /// empty.
    finished: bool,
}

impl std::fmt::Debug for OutboundQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundQueue")
            .field("len", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl OutboundQueue {
    /// An empty queue of at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        OutboundQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                closed: false,
                finished: false,
            }),
            capacity: capacity.max(1),
            consumer: AtomicWaker::new(),
            room: Notify::new(),
            room_wanted: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The queue stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `item` without waiting.
    pub(crate) fn try_push(&self, item: Outbound) -> Result<(), PushError> {
        {
            let mut state = self.lock();
            if state.closed {
                return Err(PushError::Closed);
            }
            if state.items.len() >= self.capacity {
                return Err(PushError::Full(item));
            }
            state.items.push_back(item);
        }
        self.consumer.wake();
        Ok(())
    }

    /// Queues `item`, waiting for room. Returns `false` when the writer is
    /// gone.
    pub(crate) async fn push(&self, mut item: Outbound) -> bool {
        loop {
            let mut room = pin!(self.room.notified());
            // Registered before the check: room made after it wakes us.
            room.as_mut().enable();
            self.room_wanted.store(true, Ordering::SeqCst);
            match self.try_push(item) {
                Ok(()) => return true,
                Err(PushError::Closed) => return false,
                Err(PushError::Full(back)) => item = back,
            }
            room.await;
        }
    }

    /// Takes the next item, waiting for one; `None` once the queue is
    /// [finished](OutboundQueue::finish) and empty. For the one consumer
    /// (the writer polls [`OutboundQueue::poll_pop`] itself).
    #[cfg(test)]
    pub(crate) async fn pop(&self) -> Option<Outbound> {
        poll_fn(|cx| self.poll_pop(cx)).await
    }

    /// Polls for the next item (see [`OutboundQueue::pop`]).
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Outbound>> {
        if let Some(item) = self.try_pop_inner() {
            return Poll::Ready(item);
        }
        self.consumer.register(cx.waker());
        // Again: an item pushed between the first check and the
        // registration woke the previous waker.
        match self.try_pop_inner() {
            Some(item) => Poll::Ready(item),
            None => Poll::Pending,
        }
    }

    /// `Some(item)`, `Some(None)` (finished), or `None` (empty).
    fn try_pop_inner(&self) -> Option<Option<Outbound>> {
        let mut state = self.lock();
        match Self::take(&mut state) {
            Some(item) => Some(Some(item)),
            None if state.finished => Some(None),
            None => None,
        }
    }

    /// Takes the next item if there is one, without waiting.
    pub(crate) fn try_pop(&self) -> Option<Outbound> {
        Self::take(&mut self.lock())
    }

    fn take(state: &mut QueueState) -> Option<Outbound> {
        let item = state.items.pop_front()?;
        if state.items.is_empty() && state.items.capacity() > RETAINED_SLOTS {
            state.items = VecDeque::new();
        }
        Some(item)
    }

    /// Wakes the producers waiting for room; the consumer calls it after a
    /// batch (an atomic load when none waits).
    pub(crate) fn room_made(&self) {
        if self.room_wanted.load(Ordering::SeqCst) && self.room_wanted.swap(false, Ordering::SeqCst)
        {
            self.room.notify_waiters();
        }
    }

    /// How many items are queued.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// How many more items fit.
    pub(crate) fn free(&self) -> usize {
        self.capacity.saturating_sub(self.len())
    }

    /// The most items the queue holds.
    pub(crate) fn max_capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the writer is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The writer is gone: drops what is queued, and every push fails from
    /// now on (waiting producers too).
    pub(crate) fn close(&self) {
        let items = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        drop(items);
        self.room.notify_waiters();
    }

    /// No more pushes will come: the consumer's [`OutboundQueue::pop`]
    /// answers `None` once it has taken what is queued.
    pub(crate) fn finish(&self) {
        self.lock().finished = true;
        self.consumer.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &'static str) -> Outbound {
        Outbound::Records(Bytes::from_static(text.as_bytes()))
    }

    #[tokio::test]
    async fn the_queue_is_bounded_ordered_and_waits_for_room() {
        let queue = std::sync::Arc::new(OutboundQueue::new(2));
        assert_eq!(
            queue.lock().items.capacity(),
            0,
            "an empty queue holds no allocation"
        );
        queue.try_push(records("a")).expect("room for the first");
        queue.try_push(records("b")).expect("room for the second");
        assert!(
            matches!(queue.try_push(records("c")), Err(PushError::Full(_))),
            "a full queue refuses a push without waiting"
        );
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.push(records("c")).await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "a push waits while the queue is full"
        );
        assert!(matches!(queue.pop().await, Some(Outbound::Records(r)) if r == "a"));
        queue.room_made();
        assert!(
            waiting.await.expect("the push task"),
            "a waiting push is queued once room is made"
        );
        assert!(matches!(queue.try_pop(), Some(Outbound::Records(r)) if r == "b"));
        assert!(matches!(queue.try_pop(), Some(Outbound::Records(r)) if r == "c"));
        assert!(queue.try_pop().is_none(), "the queue is empty");
        queue.finish();
        assert!(
            queue.pop().await.is_none(),
            "a finished, empty queue ends the consumer"
        );
        queue.close();
        assert!(
            matches!(queue.try_push(records("d")), Err(PushError::Closed)),
            "a closed queue refuses pushes"
        );
    }

    #[test]
    fn an_emptied_queue_gives_back_a_large_allocation() {
        let queue = OutboundQueue::new(1024);
        for _ in 0..100 {
            queue.try_push(records("x")).expect("room");
        }
        while queue.try_pop().is_some() {}
        assert_eq!(
            queue.lock().items.capacity(),
            0,
            "a burst's slots are freed once the queue is empty"
        );
    }
}
