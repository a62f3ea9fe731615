//! Pinning: the server under test and the load generator each get a core
//! of their own, so that a ratio between two servers does not depend on
//! how the scheduler happened to share two cores between a server and
//! its clients in one run (the cause of the echo ratio moving from 0.48×
//! to 0.68× between two runs of nearly the same code).
//!
//! The load generator pins itself to the first core it may run on,
//! before its runtime starts (threads inherit the mask), and starts each
//! server with `--cpu` set to the last one; the server pins itself the
//! same way. Each runtime then sizes itself to one core.

/// The cores of a pinned run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cores {
    /// The load generator's core.
    pub loadgen: usize,
    /// The server's core.
    pub server: usize,
}

/// Separate cores for the load generator and the server, or `None` when
/// this process may run on fewer than two.
pub fn choose() -> Option<Cores> {
    let cores = core_affinity::get_core_ids()?;
    match (cores.first(), cores.last()) {
        (Some(first), Some(last)) if cores.len() >= 2 => Some(Cores {
            loadgen: first.id,
            server: last.id,
        }),
        _ => None,
    }
}

/// Pins the calling thread (and every thread it starts afterwards) to
/// `core`. Returns whether the kernel took the mask.
pub fn pin_current_thread(core: usize) -> bool {
    core_affinity::set_for_current(core_affinity::CoreId { id: core })
}
