//! Which envelopes a node has already acted on, so that a second copy of
//! one is dropped.
//!
//! A backplane can hand a node the same envelope twice. With Redis
//! Cluster, while a slot moves or after a failover, a node can be
//! subscribed to a channel at two Redis nodes (the demoted primary still
//! relays its shard's messages) and hears them over both subscriptions,
//! two TCP connections, so one copy can also arrive after later messages.
//! And a batch whose `PUBLISH` broke mid-flight is published again.
//!
//! Every envelope carries its origin node and a sequence number that the
//! origin counts up for every envelope it publishes, on any channel; a
//! receiving node keeps, per origin, which of the latest [`WINDOW`]
//! numbers it has seen (the anti-replay window of IPsec, RFC 4303
//! §3.4.3). The first copy of each envelope passes, any later copy is
//! dropped. Where two subscriptions carry the same stretch, each in order,
//! the first copies come in order too.
//!
//! An envelope older than the window (more than [`WINDOW`] envelopes of
//! its origin behind the newest seen) passes: it cannot be told from a
//! late first copy, and losing a message is worse than a rare repeat.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// How many of an origin's latest sequence numbers are remembered: 2 KiB
/// per origin. A second copy comes while its origin has published fewer
/// envelopes than that since: over two subscriptions the copies are
/// milliseconds apart, and a batch published again goes out before
/// anything newer (a batch is at most 1,024 `PUBLISH`es).
pub(crate) const WINDOW: u64 = 16 * 1024;

/// Origins remembered at most; the one heard from longest ago is
/// forgotten first (nodes that restarted have new ids).
const MAX_ORIGINS: usize = 1024;

/// The envelopes seen, per origin (see the module docs).
#[derive(Default)]
pub(crate) struct DuplicateFilter {
    origins: Mutex<Origins>,
}

#[derive(Default)]
struct Origins {
    by_id: HashMap<Box<str>, Window>,
    /// Counts calls, for forgetting the origin heard from longest ago.
    clock: u64,
}

struct Window {
    /// The highest sequence number seen.
    highest: u64,
    /// Bit `n % WINDOW` is set when `n` was seen, for the `WINDOW`
    /// numbers up to `highest`.
    seen: Box<[u64]>,
    /// When the origin was last heard from ([`Origins::clock`]): the
    /// quietest origin is forgotten first.
    last_heard: u64,
}

impl Window {
    fn new() -> Self {
        Window {
            highest: 0,
            seen: vec![0; (WINDOW / 64) as usize].into_boxed_slice(),
            last_heard: 0,
        }
    }

    fn bit(sequence: u64) -> (usize, u64) {
        let index = sequence % WINDOW;
        ((index / 64) as usize, 1 << (index % 64))
    }

    /// Whether `sequence` is seen for the first time; marks it seen.
    fn first_copy(&mut self, sequence: u64) -> bool {
        if sequence > self.highest {
            // The window slides: the bits of the numbers it gains (up to
            // and including `sequence`) held numbers that fall out of it.
            if sequence - self.highest >= WINDOW {
                self.seen.fill(0);
            } else {
                // Bit by bit up to the next word boundary, then whole words.
                let mut gained = self.highest + 1;
                while gained <= sequence {
                    let (word, mask) = Self::bit(gained);
                    if gained % 64 == 0 && sequence - gained >= 63 {
                        self.seen[word] = 0;
                        gained += 64;
                    } else {
                        self.seen[word] &= !mask;
                        gained += 1;
                    }
                }
            }
            self.highest = sequence;
        } else if self.highest - sequence >= WINDOW {
            return true;
        }
        let (word, mask) = Self::bit(sequence);
        let first = self.seen[word] & mask == 0;
        self.seen[word] |= mask;
        first
    }
}

impl std::fmt::Debug for DuplicateFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuplicateFilter").finish_non_exhaustive()
    }
}

impl DuplicateFilter {
    /// Whether the envelope `sequence` of `origin` arrives for the first
    /// time (act on it) or is a copy of one that already did (drop it).
    pub(crate) fn first_copy(&self, origin: &str, sequence: u64) -> bool {
        let mut origins = self.origins.lock().unwrap_or_else(PoisonError::into_inner);
        origins.clock += 1;
        let now = origins.clock;
        // The common case, a known origin: one lookup, no allocation.
        if let Some(window) = origins.by_id.get_mut(origin) {
            window.last_heard = now;
            return window.first_copy(sequence);
        }
        if origins.by_id.len() >= MAX_ORIGINS {
            let quietest = origins
                .by_id
                .iter()
                .min_by_key(|(_, window)| window.last_heard)
                .map(|(id, _)| id.clone());
            if let Some(quietest) = quietest {
                origins.by_id.remove(&quietest);
            }
        }
        let mut window = Window::new();
        window.last_heard = now;
        let first = window.first_copy(sequence);
        origins.by_id.insert(Box::from(origin), window);
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_copy_is_dropped_in_any_order_and_origins_are_apart() {
        let filter = DuplicateFilter::default();
        for sequence in 1..=100 {
            assert!(filter.first_copy("a", sequence), "first copy of {sequence}");
        }
        // Another origin counts on its own.
        assert!(filter.first_copy("b", 50));
        for sequence in (1..=100).rev() {
            assert!(!filter.first_copy("a", sequence), "repeat of {sequence}");
        }
        assert!(!filter.first_copy("b", 50));
        // Out of order (two publishers of one node racing): each once.
        for sequence in [105, 102, 101, 104, 103] {
            assert!(filter.first_copy("a", sequence), "first copy of {sequence}");
        }
        for sequence in 101..=105 {
            assert!(!filter.first_copy("a", sequence), "repeat of {sequence}");
        }
    }

    #[test]
    fn the_window_slides_and_what_falls_out_of_it_passes() {
        let filter = DuplicateFilter::default();
        assert!(filter.first_copy("a", 1));
        // A number skipped earlier is still a first copy while in the window.
        assert!(filter.first_copy("a", WINDOW));
        assert!(filter.first_copy("a", 2));
        assert!(!filter.first_copy("a", 2));
        // Slide by one: 1 falls out and passes again (older than the window).
        assert!(filter.first_copy("a", WINDOW + 1));
        assert!(filter.first_copy("a", 1));
        // The bit that 1 shared with WINDOW + 1 belongs to WINDOW + 1 now.
        assert!(!filter.first_copy("a", WINDOW + 1));
        // A jump past the whole window forgets everything before it.
        assert!(filter.first_copy("a", 10 * WINDOW));
        assert!(filter.first_copy("a", 10 * WINDOW - 1));
        assert!(filter.first_copy("a", 2));
        assert!(!filter.first_copy("a", 10 * WINDOW));
    }

    #[test]
    fn a_jump_within_the_window_clears_what_it_passes_word_by_word() {
        let filter = DuplicateFilter::default();
        // Every number of a first window seen, then the window slides by
        // most of its length in one jump (whole words cleared) and by odd
        // amounts (bits at both ends of the words).
        for sequence in 1..=WINDOW {
            assert!(filter.first_copy("a", sequence));
        }
        let jump = WINDOW + WINDOW / 2 + 3;
        assert!(filter.first_copy("a", jump));
        // The numbers the jump brought into the window are unseen; the ones
        // it kept are still seen.
        for sequence in WINDOW + 1..jump {
            assert!(filter.first_copy("a", sequence), "first copy of {sequence}");
        }
        for sequence in jump - WINDOW + 1..=jump {
            assert!(!filter.first_copy("a", sequence), "repeat of {sequence}");
        }
    }

    #[test]
    fn origins_are_bounded_and_the_quietest_is_forgotten() {
        let filter = DuplicateFilter::default();
        for origin in 0..MAX_ORIGINS {
            assert!(filter.first_copy(&format!("node-{origin}"), 1));
        }
        // node-0 is heard from again: node-1 is now the quietest.
        assert!(!filter.first_copy("node-0", 1));
        assert!(filter.first_copy("new", 1));
        let origins = filter.origins.lock().unwrap();
        assert_eq!(origins.by_id.len(), MAX_ORIGINS);
        assert!(origins.by_id.contains_key("node-0"));
        assert!(!origins.by_id.contains_key("node-1"));
    }
}
