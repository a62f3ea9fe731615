//! [`HubContext`]: a hub's clients and groups, from anywhere.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::HubError;
use crate::clients::{ConnectionId, GroupManager, HubClients, HubLifetimeManager, Target};
use crate::hub::Hub;

/// A hub's clients and groups, reachable from outside hub methods — above
/// all from a background task, as ASP.NET Core's `IHubContext<THub, T>`.
///
/// Cheap to clone, `Send + Sync`.
///
/// ```
/// use hub_runtime::server::HubServer;
/// use hub_runtime::{Timestamp, hub, hub_client};
///
/// #[hub_client]
/// pub trait IClock {
///     async fn show_time(&self, now: Timestamp);
/// }
///
/// pub struct ClockHub;
///
/// #[hub(client = IClock)]
/// impl ClockHub {}
///
/// # async fn run() {
/// let hub = HubServer::new(ClockHub);
/// let context = hub.context();
/// // A worker task: every second, the time to every client.
/// tokio::spawn(async move {
///     loop {
///         let _ = context.clients().all().show_time(Timestamp::now()).await;
///         tokio::time::sleep(std::time::Duration::from_secs(1)).await;
///     }
/// });
/// # }
/// ```
pub struct HubContext<H> {
    manager: Arc<dyn HubLifetimeManager>,
    hub: PhantomData<fn() -> H>,
}

impl<H> Clone for HubContext<H> {
    fn clone(&self) -> Self {
        HubContext {
            manager: self.manager.clone(),
            hub: PhantomData,
        }
    }
}

impl<H: Hub> HubContext<H> {
    /// A context delivering through `manager`.
    pub fn new(manager: Arc<dyn HubLifetimeManager>) -> Self {
        HubContext {
            manager,
            hub: PhantomData,
        }
    }

    /// The typed clients: `all()`, `group("g")`, `client(&id)`, …
    pub fn clients(&self) -> HubClients<H::Client> {
        HubClients::new(self.manager.clone())
    }

    /// Group membership.
    pub fn groups(&self) -> GroupManager {
        GroupManager::new(self.manager.clone())
    }

    /// Aborts connection `connection_id` wherever it is (on another node
    /// too, with a backplane): it gets a Close message with an error and
    /// its transport ends. Returns whether it was connected to this node.
    pub async fn abort_connection(
        &self,
        connection_id: impl Into<ConnectionId>,
    ) -> Result<bool, HubError> {
        let aborted = self
            .manager
            .abort(Target::Connection(connection_id.into()))
            .await?;
        Ok(aborted > 0)
    }

    /// Aborts every connection of `user`, on every node. Returns how many
    /// were connected to this node.
    pub async fn abort_user(&self, user: impl Into<String>) -> Result<usize, HubError> {
        self.manager.abort(Target::User(user.into())).await
    }

    /// The lifetime manager this context delivers through.
    pub fn lifetime_manager(&self) -> &Arc<dyn HubLifetimeManager> {
        &self.manager
    }
}
