//! [`ClientHandlers`]: a client's methods that the server calls, by name.

use std::fmt;
use std::sync::Arc;

use crate::BoxFuture;
use crate::hub::{Arguments, InvocationError};
use crate::protocol::Payload;

/// What a client method answered: nothing (a method without a return
/// value), or a result for the server's client-result invocation.
pub type ClientMethodResult = Result<Option<Payload>, InvocationError>;

/// One client method: takes the invocation's arguments.
pub type ClientMethod =
    Arc<dyn Fn(Arguments) -> BoxFuture<'static, ClientMethodResult> + Send + Sync>;

/// The client methods a connection answers, looked up case-insensitively as
/// the official clients do.
///
/// A `#[hub_client]` trait's `into_handlers()` builds one from an
/// implementation of the trait, wiring every method.
#[derive(Clone, Default)]
pub struct ClientHandlers {
    methods: Vec<(&'static str, usize, ClientMethod)>,
}

impl ClientHandlers {
    /// No methods.
    pub fn new() -> Self {
        ClientHandlers::default()
    }

    /// Adds the method `name` (its wire name) taking `parameters` arguments.
    pub fn insert(&mut self, name: &'static str, parameters: usize, method: ClientMethod) {
        self.methods.push((name, parameters, method));
    }

    /// Adds every method of `other`.
    pub fn extend(&mut self, other: ClientHandlers) {
        self.methods.extend(other.methods);
    }

    /// Removes every method registered under `target` (compared
    /// case-insensitively); returns how many there were.
    pub fn remove(&mut self, target: &str) -> usize {
        let before = self.methods.len();
        self.methods
            .retain(|(name, _, _)| !name.eq_ignore_ascii_case(target));
        before - self.methods.len()
    }

    /// The wire names of the methods.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.methods.iter().map(|(name, _, _)| *name)
    }

    /// Every method registered under `target`, compared case-insensitively.
    pub fn find<'a>(
        &'a self,
        target: &'a str,
    ) -> impl Iterator<Item = (usize, &'a ClientMethod)> + 'a {
        self.methods
            .iter()
            .filter(move |(name, _, _)| name.eq_ignore_ascii_case(target))
            .map(|(_, parameters, method)| (*parameters, method))
    }
}

impl fmt::Debug for ClientHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}
