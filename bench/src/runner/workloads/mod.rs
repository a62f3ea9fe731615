//! One module per workload; each runs against a started server (the slow
//! consumer and the connect storm start their own) and returns its result
//! records.

mod broadcast;
mod clock;
mod connect_storm;
mod echo;
mod idle;
mod single;
mod slow_consumer;

pub(crate) use broadcast::broadcast;
pub(crate) use clock::clock;
pub(crate) use connect_storm::{SKIP_NEGOTIATION, connect_storm};
pub(crate) use echo::echo;
pub(crate) use idle::idle;
pub(crate) use single::single;
pub(crate) use slow_consumer::slow_consumer;

/// A workload's records, or why it failed.
pub(crate) type Outcome = Result<Vec<serde_json::Value>, String>;
