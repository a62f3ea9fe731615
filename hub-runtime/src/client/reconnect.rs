//! Automatic reconnect: when to try again after the connection was lost.

use std::time::Duration;

use crate::HubError;

/// What a [`ReconnectPolicy`] knows when it picks the next delay.
#[derive(Debug, Clone)]
pub struct RetryContext {
    /// How many reconnect attempts have failed so far in this series
    /// (0 right after the connection was lost).
    pub previous_retry_count: u32,
    /// Time spent reconnecting so far in this series.
    pub elapsed: Duration,
    /// Why the next attempt is needed: the error that ended the connection,
    /// or the one that failed the previous attempt.
    pub retry_reason: HubError,
}

/// Decides whether, and after how long, a lost connection is tried again.
///
/// Each attempt is a brand-new connection: a new negotiate, a new
/// connection id and a new handshake; nothing is replayed.
pub trait ReconnectPolicy: Send + Sync + 'static {
    /// The delay before the next attempt, or `None` to give up (the
    /// connection then closes).
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration>;
}

impl<F> ReconnectPolicy for F
where
    F: Fn(&RetryContext) -> Option<Duration> + Send + Sync + 'static,
{
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        self(context)
    }
}

/// A fixed list of delays, one per attempt, then give up — the official
/// clients' `DefaultReconnectPolicy`.
///
/// [`DefaultReconnectPolicy::default`] waits 0, 2, 10 and 30 seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultReconnectPolicy {
    delays: Vec<Duration>,
}

impl DefaultReconnectPolicy {
    /// The official clients' delays: 0, 2, 10 and 30 seconds.
    pub const DEFAULT_DELAYS: [Duration; 4] = [
        Duration::ZERO,
        Duration::from_secs(2),
        Duration::from_secs(10),
        Duration::from_secs(30),
    ];

    /// A policy that waits `delays[n]` before attempt `n + 1` and gives up
    /// once the list is used up.
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Self {
        DefaultReconnectPolicy {
            delays: delays.into_iter().collect(),
        }
    }

    /// The delays, in attempt order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }
}

impl Default for DefaultReconnectPolicy {
    fn default() -> Self {
        DefaultReconnectPolicy::new(Self::DEFAULT_DELAYS)
    }
}

impl ReconnectPolicy for DefaultReconnectPolicy {
    fn next_retry_delay(&self, context: &RetryContext) -> Option<Duration> {
        usize::try_from(context.previous_retry_count)
            .ok()
            .and_then(|index| self.delays.get(index))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(count: u32) -> RetryContext {
        RetryContext {
            previous_retry_count: count,
            elapsed: Duration::ZERO,
            retry_reason: HubError::new("lost"),
        }
    }

    #[test]
    fn default_delays_then_give_up() {
        let policy = DefaultReconnectPolicy::default();
        let delays: Vec<_> = (0..5)
            .map(|n| policy.next_retry_delay(&context(n)))
            .collect();
        assert_eq!(
            delays,
            vec![
                Some(Duration::ZERO),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(30)),
                None
            ]
        );
    }

    #[test]
    fn closures_are_policies() {
        let policy = |c: &RetryContext| (c.previous_retry_count < 2).then_some(Duration::ZERO);
        assert_eq!(policy.next_retry_delay(&context(1)), Some(Duration::ZERO));
        assert_eq!(policy.next_retry_delay(&context(2)), None);
    }
}
