//! Generated code names everything absolutely: it compiles without the
//! prelude, and next to user items that shadow prelude names.
#![no_implicit_prelude]

#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Arc;
#[allow(dead_code)]
enum Result {
    Ok,
    Err,
}
#[allow(dead_code)]
enum Option {
    Some,
    None,
}
#[allow(dead_code)]
trait Future {}
#[allow(dead_code)]
trait Send {}
#[allow(dead_code)]
trait Sync {}
#[allow(dead_code)]
trait Clone {}
#[allow(dead_code)]
trait From {}

#[::hub_runtime::hub_client]
pub trait IChat {
    async fn message(&self, from: ::std::string::String, text: ::std::string::String);
    async fn ping(&self);
    async fn ask(&self, question: ::std::string::String) -> ::std::primitive::bool;
}

pub struct ChatHub;

#[::hub_runtime::hub(client = IChat)]
impl ChatHub {
    async fn send(
        &self,
        ctx: ::hub_runtime::CallContext<Self>,
        text: ::std::string::String,
    ) -> ::std::result::Result<(), ::hub_runtime::HubError> {
        ctx.clients()
            .all()
            .message(::std::string::String::new(), text)
            .await
    }

    async fn count(&self, items: ::std::vec::Vec<u32>) -> usize {
        items.len()
    }

    async fn on_connected(
        &self,
        ctx: &::hub_runtime::CallContext<Self>,
    ) -> ::std::result::Result<(), ::hub_runtime::HubError> {
        ctx.clients().caller().ping().await
    }

    async fn on_disconnected(&self, _error: ::std::option::Option<::hub_runtime::HubError>) {}
}

fn main() {
    let _ = <ChatHub as ::hub_runtime::Hub>::METHODS;
}
