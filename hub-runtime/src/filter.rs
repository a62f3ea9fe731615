//! Hub filters: code that wraps every invocation of a hub's methods and
//! its connect and disconnect hooks — logging, timing, validation, rate
//! limits — in one place (ASP.NET Core's `IHubFilter`).
//!
//! A filter gets the call and the rest of the chain ([`NextInvocation`]);
//! it may look at the method name and the arguments, run the rest
//! (`next.run().await`) and look at the outcome, or answer itself without
//! running it (`Err(InvocationError::blocked("…"))`: the client gets the
//! message, the method never runs). A connect hook that fails refuses the
//! connection (Close with the error).
//!
//! # Order
//!
//! For each invocation: the method's authorization (`#[authorize]`) first —
//! a refused call reaches no filter — then the global filters
//! (`HubServerBuilder::global_filters`) in the order they were added, then
//! the hub's own filters (`HubServerBuilder::filter`) in the order they
//! were added, then the method. The first filter added is the outermost:
//! it runs first and sees the outcome last, as the first of several tower
//! layers does. Connect and disconnect hooks go through the same chain
//! around `on_connected` / `on_disconnected`. [`Filters`] is itself a
//! filter, so filter stacks compose like tower layers.
//!
//! ```
//! use std::time::Instant;
//! use hub_runtime::filter::{HubFilter, HubInvocation, NextInvocation};
//! use hub_runtime::hub::{InvocationError, MethodOutput};
//!
//! /// Logs every call with its duration and outcome.
//! struct Logging;
//!
//! impl HubFilter for Logging {
//!     async fn invoke(
//!         &self,
//!         call: &HubInvocation<'_>,
//!         next: NextInvocation<'_>,
//!     ) -> Result<MethodOutput, InvocationError> {
//!         let started = Instant::now();
//!         let outcome = next.run().await;
//!         eprintln!("{} by {:?}: {:?} in {:?}", call.method, call.connection.user_id(),
//!             outcome.is_ok(), started.elapsed());
//!         outcome
//!     }
//! }
//! ```

use std::future::Future;
use std::sync::Arc;

use crate::hub::{Arguments, ConnectionContext, InvocationError, MethodOutput};
use crate::{BoxFuture, HubError};

/// One invocation as a filter sees it.
#[derive(Debug, Clone, Copy)]
pub struct HubInvocation<'a> {
    /// The hub's Rust type name.
    pub hub: &'static str,
    /// The method's wire name (as declared, whatever the case the client
    /// used).
    pub method: &'static str,
    /// The caller's connection: identity, request, items, `abort()`.
    pub connection: &'a Arc<ConnectionContext>,
    /// The arguments, still encoded (`bind::<T>(index)`).
    pub arguments: &'a Arguments,
}

/// A hub filter. Every hook has a default that passes on to the next, so
/// a filter implements only what it wraps.
pub trait HubFilter: Send + Sync + 'static {
    /// Wraps one invocation (of a unary or a streaming method; for a
    /// stream, `next` completes once the stream has ended).
    fn invoke(
        &self,
        call: &HubInvocation<'_>,
        next: NextInvocation<'_>,
    ) -> impl Future<Output = Result<MethodOutput, InvocationError>> + Send {
        let _ = call;
        next.run()
    }

    /// Wraps `on_connected`; an error refuses the connection.
    fn on_connected(
        &self,
        connection: &Arc<ConnectionContext>,
        next: NextConnected<'_>,
    ) -> impl Future<Output = Result<(), HubError>> + Send {
        let _ = connection;
        next.run()
    }

    /// Wraps `on_disconnected`.
    fn on_disconnected(
        &self,
        connection: &Arc<ConnectionContext>,
        error: Option<&HubError>,
        next: NextDisconnected<'_>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (connection, error);
        next.run()
    }
}

/// The object-safe form of [`HubFilter`] the chain holds.
pub(crate) trait DynHubFilter: Send + Sync + 'static {
    fn invoke_boxed<'a>(
        &'a self,
        call: &'a HubInvocation<'a>,
        next: NextInvocation<'a>,
    ) -> BoxFuture<'a, Result<MethodOutput, InvocationError>>;

    fn on_connected_boxed<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        next: NextConnected<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>>;

    fn on_disconnected_boxed<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        error: Option<&'a HubError>,
        next: NextDisconnected<'a>,
    ) -> BoxFuture<'a, ()>;
}

impl<F: HubFilter> DynHubFilter for F {
    fn invoke_boxed<'a>(
        &'a self,
        call: &'a HubInvocation<'a>,
        next: NextInvocation<'a>,
    ) -> BoxFuture<'a, Result<MethodOutput, InvocationError>> {
        Box::pin(self.invoke(call, next))
    }

    fn on_connected_boxed<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        next: NextConnected<'a>,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        Box::pin(self.on_connected(connection, next))
    }

    fn on_disconnected_boxed<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        error: Option<&'a HubError>,
        next: NextDisconnected<'a>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(self.on_disconnected(connection, error, next))
    }
}

/// What runs after a filter's `invoke`: the next filters, then the method.
pub struct NextInvocation<'a> {
    filters: &'a [Arc<dyn DynHubFilter>],
    call: &'a HubInvocation<'a>,
    method: Box<dyn FnOnce() -> BoxFuture<'a, Result<MethodOutput, InvocationError>> + Send + 'a>,
}

impl<'a> NextInvocation<'a> {
    /// Runs the rest of the chain.
    pub fn run(self) -> BoxFuture<'a, Result<MethodOutput, InvocationError>> {
        match self.filters.split_first() {
            Some((first, rest)) => first.invoke_boxed(
                self.call,
                NextInvocation {
                    filters: rest,
                    call: self.call,
                    method: self.method,
                },
            ),
            None => (self.method)(),
        }
    }
}

/// What runs after a filter's `on_connected`.
pub struct NextConnected<'a> {
    filters: &'a [Arc<dyn DynHubFilter>],
    connection: &'a Arc<ConnectionContext>,
    hook: Box<dyn FnOnce() -> BoxFuture<'a, Result<(), HubError>> + Send + 'a>,
}

impl<'a> NextConnected<'a> {
    /// Runs the rest of the chain.
    pub fn run(self) -> BoxFuture<'a, Result<(), HubError>> {
        match self.filters.split_first() {
            Some((first, rest)) => first.on_connected_boxed(
                self.connection,
                NextConnected {
                    filters: rest,
                    connection: self.connection,
                    hook: self.hook,
                },
            ),
            None => (self.hook)(),
        }
    }
}

/// What runs after a filter's `on_disconnected`.
pub struct NextDisconnected<'a> {
    filters: &'a [Arc<dyn DynHubFilter>],
    connection: &'a Arc<ConnectionContext>,
    error: Option<&'a HubError>,
    hook: Box<dyn FnOnce() -> BoxFuture<'a, ()> + Send + 'a>,
}

impl<'a> NextDisconnected<'a> {
    /// Runs the rest of the chain.
    pub fn run(self) -> BoxFuture<'a, ()> {
        match self.filters.split_first() {
            Some((first, rest)) => first.on_disconnected_boxed(
                self.connection,
                self.error,
                NextDisconnected {
                    filters: rest,
                    connection: self.connection,
                    error: self.error,
                    hook: self.hook,
                },
            ),
            None => (self.hook)(),
        }
    }
}

/// An ordered stack of filters: the first added runs first. Cheap to
/// clone (shared); itself a [`HubFilter`], so stacks nest.
///
/// ```
/// use hub_runtime::filter::{Filters, HubFilter};
///
/// struct Audit;
/// impl HubFilter for Audit {}
/// struct RateLimit;
/// impl HubFilter for RateLimit {}
///
/// // Shared by every hub of the app: `HubServerBuilder::global_filters`.
/// let global = Filters::new().with(Audit).with(RateLimit);
/// assert_eq!(global.len(), 2);
/// ```
#[derive(Clone, Default)]
pub struct Filters(Vec<Arc<dyn DynHubFilter>>);

impl std::fmt::Debug for Filters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filters")
            .field("len", &self.0.len())
            .finish()
    }
}

impl Filters {
    /// No filter.
    pub fn new() -> Self {
        Filters::default()
    }

    /// Adds `filter` inside the ones already added.
    pub fn with(mut self, filter: impl HubFilter) -> Self {
        self.push(filter);
        self
    }

    /// Adds `filter` inside the ones already added.
    pub fn push(&mut self, filter: impl HubFilter) {
        self.0.push(Arc::new(filter));
    }

    /// Adds every filter of `other`, in order, inside these.
    pub fn extend(&mut self, other: &Filters) {
        self.0.extend(other.0.iter().cloned());
    }

    /// How many filters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Runs `call` through the stack, then `method`.
    pub(crate) fn run_invocation<'a>(
        &'a self,
        call: &'a HubInvocation<'a>,
        method: impl FnOnce() -> BoxFuture<'a, Result<MethodOutput, InvocationError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<MethodOutput, InvocationError>> {
        NextInvocation {
            filters: &self.0,
            call,
            method: Box::new(method),
        }
        .run()
    }

    /// Runs a connect through the stack, then `hook`.
    pub(crate) fn run_connected<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        hook: impl FnOnce() -> BoxFuture<'a, Result<(), HubError>> + Send + 'a,
    ) -> BoxFuture<'a, Result<(), HubError>> {
        NextConnected {
            filters: &self.0,
            connection,
            hook: Box::new(hook),
        }
        .run()
    }

    /// Runs a disconnect through the stack, then `hook`.
    pub(crate) fn run_disconnected<'a>(
        &'a self,
        connection: &'a Arc<ConnectionContext>,
        error: Option<&'a HubError>,
        hook: impl FnOnce() -> BoxFuture<'a, ()> + Send + 'a,
    ) -> BoxFuture<'a, ()> {
        NextDisconnected {
            filters: &self.0,
            connection,
            error,
            hook: Box::new(hook),
        }
        .run()
    }
}

impl HubFilter for Filters {
    async fn invoke(
        &self,
        call: &HubInvocation<'_>,
        next: NextInvocation<'_>,
    ) -> Result<MethodOutput, InvocationError> {
        self.run_invocation(call, move || next.run()).await
    }

    async fn on_connected(
        &self,
        connection: &Arc<ConnectionContext>,
        next: NextConnected<'_>,
    ) -> Result<(), HubError> {
        self.run_connected(connection, move || next.run()).await
    }

    async fn on_disconnected(
        &self,
        connection: &Arc<ConnectionContext>,
        error: Option<&HubError>,
        next: NextDisconnected<'_>,
    ) {
        self.run_disconnected(connection, error, move || next.run())
            .await;
    }
}
