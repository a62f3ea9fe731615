//! The macros with `hub-runtime` renamed to `hub_renamed` in this
//! package's manifest, its only name here: that this crate compiles shows
//! the generated code finds the runtime under the name the user gave it;
//! the test below runs what was generated.

use hub_renamed::{CallContext, HubError, hub, hub_client};

/// A client contract, under the renamed runtime.
#[hub_client]
pub trait IGreeter {
    /// A call without an answer.
    async fn greet(&self, name: String);
    /// A client result.
    async fn confirm(&self) -> bool;
}

/// A hub, under the renamed runtime.
pub struct GreeterHub;

#[hub(client = IGreeter)]
impl GreeterHub {
    async fn hello(&self, name: String) -> Result<String, HubError> {
        Ok(format!("hello, {name}"))
    }

    async fn on_connected(&self, _ctx: CallContext<Self>) -> Result<(), HubError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hub_renamed::hub::{Arguments, HubCall, MethodOutput};
    use hub_renamed::{CallContext, Hub, HubError};

    use super::{GreeterHub, IGreeter};

    struct Greeter;

    impl IGreeter for Greeter {
        async fn greet(&self, _name: String) {}

        async fn confirm(&self) -> bool {
            true
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_generated_code_runs_under_the_renamed_crate() {
        assert_eq!(GreeterHub::METHODS[0].name, "Hello");
        assert_eq!(
            Greeter.into_handlers().names().collect::<Vec<_>>(),
            ["Greet", "Confirm"]
        );
        struct Nobody;
        impl hub_renamed::targets::HubLifetimeManager for Nobody {
            fn send(
                &self,
                _: hub_renamed::targets::Target,
                _: hub_renamed::protocol::Invocation,
            ) -> hub_renamed::BoxFuture<'_, Result<(), HubError>> {
                Box::pin(async { Ok(()) })
            }
            fn invoke(
                &self,
                _: hub_renamed::ConnectionId,
                _: hub_renamed::protocol::Invocation,
            ) -> hub_renamed::BoxFuture<'_, Result<hub_renamed::protocol::Payload, HubError>>
            {
                Box::pin(async { Ok(hub_renamed::protocol::Payload::from_value(true)) })
            }
            fn add_to_group(
                &self,
                _: hub_renamed::ConnectionId,
                _: String,
            ) -> hub_renamed::BoxFuture<'_, Result<(), HubError>> {
                Box::pin(async { Ok(()) })
            }
            fn remove_from_group(
                &self,
                _: hub_renamed::ConnectionId,
                _: String,
            ) -> hub_renamed::BoxFuture<'_, Result<(), HubError>> {
                Box::pin(async { Ok(()) })
            }
        }
        let context = CallContext::new("c".into(), None, Arc::new(Nobody));
        let arguments = Arguments::new(vec![hub_renamed::protocol::Payload::from_value("you")]);
        let output = Arc::new(GreeterHub)
            .invoke(0, HubCall::new(context, arguments))
            .await
            .expect("hello succeeds");
        let MethodOutput::Value(payload) = output else {
            panic!("a value")
        };
        assert_eq!(
            payload.deserialize::<String>().expect("a string"),
            "hello, you"
        );
    }
}
