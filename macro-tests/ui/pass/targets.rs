//! Every target takes ids and names in the forms code holds them: `&str`,
//! `&String`, `String`, `ConnectionId` and references to those; the
//! targets of several take arrays, slices, `Vec`s (owned or borrowed) and
//! any iterator of those.

use std::collections::BTreeSet;

use hub_runtime::{CallContext, ConnectionId, HubContext, HubError, hub, hub_client};

#[hub_client]
pub trait IChat {
    async fn receive(&self, message: String);
    async fn confirm(&self, question: String) -> bool;
}

pub struct ChatHub;

#[hub(client = IChat)]
impl ChatHub {
    async fn relay(&self, ctx: CallContext<Self>, group: String) -> Result<(), HubError> {
        let clients = ctx.clients();
        clients.others_in_group("g").receive("m".into()).await?;
        clients.others_in_group(&group).receive("m".into()).await?;
        clients.others_in_group(group.clone()).receive("m".into()).await?;
        // The caller's own id, as hub code gets it.
        clients
            .all_except([ctx.connection_id()])
            .receive("m".into())
            .await?;
        clients
            .group_except(&group, [ctx.connection_id()])
            .receive("m".into())
            .await?;
        clients.others().receive("m".into()).await?;
        let _yes: bool = clients.caller().confirm("?".into()).await?;
        let _yes: bool = clients
            .client(ctx.connection_id())
            .confirm("?".into())
            .await?;
        Ok(())
    }
}

async fn single_targets(ctx: &HubContext<ChatHub>) -> Result<(), HubError> {
    let clients = ctx.clients();
    let string: String = "x".to_owned();
    let id: ConnectionId = ConnectionId::from("c");
    let str_ref: &str = "x";

    // client: &str, &String, String, ConnectionId, &ConnectionId, &&str.
    let _: bool = clients.client("c").confirm("?".into()).await?;
    let _: bool = clients.client(&string).confirm("?".into()).await?;
    let _: bool = clients.client(string.clone()).confirm("?".into()).await?;
    let _: bool = clients.client(id.clone()).confirm("?".into()).await?;
    let _: bool = clients.client(&id).confirm("?".into()).await?;
    let _: bool = clients.client(&str_ref).confirm("?".into()).await?;

    // group and user: the same forms.
    clients.group("g").receive("m".into()).await?;
    clients.group(&string).receive("m".into()).await?;
    clients.group(string.clone()).receive("m".into()).await?;
    clients.group(&str_ref).receive("m".into()).await?;
    clients.user("u").receive("m".into()).await?;
    clients.user(&string).receive("m".into()).await?;
    clients.user(string.clone()).receive("m".into()).await?;
    clients.user(&str_ref).receive("m".into()).await?;

    // group_except: its group in every form.
    clients.group_except("g", ["c"]).receive("m".into()).await?;
    clients.group_except(&string, ["c"]).receive("m".into()).await?;
    clients.group_except(string, ["c"]).receive("m".into()).await?;
    Ok(())
}

async fn many_targets(ctx: &HubContext<ChatHub>) -> Result<(), HubError> {
    let clients = ctx.clients();
    let strs: [&str; 2] = ["a", "b"];
    let strings: Vec<String> = vec!["a".to_owned(), "b".to_owned()];
    let ids: Vec<ConnectionId> = strings.iter().map(ConnectionId::from).collect();
    let set: BTreeSet<String> = strings.iter().cloned().collect();

    macro_rules! every_form {
        ($target:ident $(, $group:expr)?) => {{
            // Arrays by value and by reference: items &str, &&str.
            clients.$target($($group,)? ["a", "b"]).receive("m".into()).await?;
            clients.$target($($group,)? &["a", "b"]).receive("m".into()).await?;
            clients.$target($($group,)? strs).receive("m".into()).await?;
            clients.$target($($group,)? &strs).receive("m".into()).await?;
            // Slices: &[&str], &[String], &[ConnectionId].
            clients.$target($($group,)? &strs[..]).receive("m".into()).await?;
            clients.$target($($group,)? &strings[..]).receive("m".into()).await?;
            clients.$target($($group,)? ids.as_slice()).receive("m".into()).await?;
            // Vec by value and by reference: items String, &String,
            // ConnectionId, &ConnectionId.
            clients.$target($($group,)? strings.clone()).receive("m".into()).await?;
            clients.$target($($group,)? &strings).receive("m".into()).await?;
            clients.$target($($group,)? ids.clone()).receive("m".into()).await?;
            clients.$target($($group,)? &ids).receive("m".into()).await?;
            clients.$target($($group,)? vec!["a", "b"]).receive("m".into()).await?;
            // Arrays of owned and borrowed Strings and ids.
            clients
                .$target($($group,)? [strings[0].clone(), strings[1].clone()])
                .receive("m".into())
                .await?;
            clients.$target($($group,)? [&strings[0], &strings[1]]).receive("m".into()).await?;
            clients.$target($($group,)? [&ids[0], &ids[1]]).receive("m".into()).await?;
            clients.$target($($group,)? [ids[0].clone()]).receive("m".into()).await?;
            // Iterators and other collections.
            clients.$target($($group,)? strings.iter()).receive("m".into()).await?;
            clients
                .$target($($group,)? strings.iter().map(String::as_str))
                .receive("m".into())
                .await?;
            clients
                .$target($($group,)? ids.iter().filter(|id| !id.as_str().is_empty()))
                .receive("m".into())
                .await?;
            clients
                .$target($($group,)? (0..2).map(|n| format!("c{n}")))
                .receive("m".into())
                .await?;
            clients.$target($($group,)? &set).receive("m".into()).await?;
            clients.$target($($group,)? std::iter::once("a")).receive("m".into()).await?;
        }};
    }

    every_form!(clients);
    every_form!(all_except);
    every_form!(groups);
    every_form!(users);
    every_form!(group_except, "g");
    Ok(())
}

fn main() {
    // Compiling is the test: nothing here needs a running hub.
    let _ = single_targets;
    let _ = many_targets;
}
