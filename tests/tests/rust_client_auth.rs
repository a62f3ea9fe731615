//! The Rust client runs every row of the conformance section "Identity,
//! authorization, caller context, filters" against the `conformance-server`
//! binary over real sockets — WebSockets, Server-Sent Events and Long
//! Polling, JSON and MessagePack — through the typed proxies of the
//! conformance contracts (`hub_tests::conformance`; no method-name strings).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hub_runtime::HubError;
use hub_runtime::client::{HubConnection, HubConnectionState, TransportType};
use hub_runtime::protocol::HubProtocol;
use hub_tests::ServerProcess;
use hub_tests::conformance::{
    Callbacks, CallerClaims, ConformanceClient as _, ConformanceHubProxy, ConformanceSecureHubProxy,
};

const SERVER: &str = env!("CARGO_BIN_EXE_conformance-server");

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(30);

/// One run: the server's transports and protocol, and the transport the
/// client must end up on.
#[derive(Clone, Copy)]
struct Route {
    served: &'static str,
    protocol: HubProtocol,
    expected: TransportType,
}

struct Client {
    connection: HubConnection,
    hub: ConformanceHubProxy,
    inbox: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Client {
    async fn closed(&self, within: Duration) {
        let mut states = self.connection.state_changes();
        tokio::time::timeout(
            within,
            states.wait_for(|state| *state == HubConnectionState::Disconnected),
        )
        .await
        .expect("the server did not close the connection in time")
        .unwrap();
    }
}

async fn try_connect(
    route: Route,
    url: &str,
    token: Option<&str>,
    header: Option<(&str, &str)>,
) -> Result<Client, HubError> {
    let (callbacks, inbox, _release) = Callbacks::new("auth");
    let mut builder = HubConnection::builder(url)
        .protocol(route.protocol)
        .handlers(callbacks.into_handlers());
    if let Some(token) = token {
        let token = token.to_owned();
        builder = builder.access_token(move || Some(token.clone()));
    }
    if let Some((name, value)) = header {
        builder = builder.header(name, value);
    }
    let connection = builder.build()?;
    tokio::time::timeout(PATIENCE, connection.start())
        .await
        .expect("start() timed out")?;
    // A connection the filter refuses may be closed already.
    if !url.contains("reject=filter") {
        assert_eq!(
            connection.transport(),
            Some(route.expected),
            "wrong transport"
        );
    }
    let hub = connection.hub::<ConformanceHubProxy>();
    Ok(Client {
        connection,
        hub,
        inbox,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn assert_unauthorized(error: HubError, method: &str) {
    assert_eq!(
        error.message(),
        format!("Failed to invoke '{method}' because user is unauthorized")
    );
}

async fn every_row(route: Route) {
    let mut args = vec!["--keep-alive-ms", "1000"];
    if !route.served.is_empty() {
        args.extend(["--transports", route.served]);
    }
    let server = ServerProcess::start(SERVER, &args);
    let url = format!("{}/hubs/test", server.base_url());
    let secure = format!("{}/hubs/secure", server.base_url());
    let connect = |token: Option<&'static str>| {
        let url = url.clone();
        async move { try_connect(route, &url, token, None).await.unwrap() }
    };

    // Claims: user and roles (distinct, ordinal order) from the token.
    let admin = connect(Some("user-carol.role-editor.role-admin.role-editor")).await;
    let anonymous = connect(None).await;
    let editor = connect(Some("user-frank.role-editor")).await;
    assert_eq!(
        admin.hub.claims().await.unwrap(),
        CallerClaims {
            user: Some("carol".into()),
            roles: vec!["admin".into(), "editor".into()]
        }
    );
    assert_eq!(
        anonymous.hub.claims().await.unwrap(),
        CallerClaims {
            user: None,
            roles: vec![]
        }
    );

    // Token rules: malformed or expired tokens get 401.
    let past = format!("user-a.exp-{}", unix_now() - 1);
    for token in ["user-", "user-a.b", "user-a.role-", "user-a.exp-1x", &past] {
        let refused = try_connect(route, &url, Some(token), None).await;
        let error = refused
            .err()
            .unwrap_or_else(|| panic!("{token} was accepted"));
        assert!(error.message().contains("401"), "{token}: {error}");
    }

    // Declared authorization: refused calls fail, connections stay usable.
    assert_eq!(admin.hub.admin_only().await.unwrap(), "admin ok");
    assert_unauthorized(editor.hub.admin_only().await.unwrap_err(), "AdminOnly");
    assert_unauthorized(anonymous.hub.admin_only().await.unwrap_err(), "AdminOnly");
    assert_eq!(
        editor.hub.authenticated_only().await.unwrap(),
        "authenticated ok"
    );
    assert_unauthorized(
        anonymous.hub.authenticated_only().await.unwrap_err(),
        "AuthenticatedOnly",
    );
    assert_eq!(anonymous.hub.echo("still".into()).await.unwrap(), "still");

    // The opening request's headers.
    let probed = try_connect(route, &url, None, Some(("X-Conformance-Probe", "probe-7")))
        .await
        .unwrap();
    assert_eq!(
        probed
            .hub
            .request_header("x-conformance-probe".into())
            .await
            .unwrap()
            .as_deref(),
        Some("probe-7")
    );
    assert_eq!(
        probed.hub.request_header("x-absent".into()).await.unwrap(),
        None
    );

    // Per-connection items.
    admin
        .hub
        .set_item("color".into(), "blue".into())
        .await
        .unwrap();
    assert_eq!(
        admin.hub.get_item("color".into()).await.unwrap().as_deref(),
        Some("blue")
    );
    assert_eq!(editor.hub.get_item("color".into()).await.unwrap(), None);

    // The filter: blocks, and counts what it (and authorization) passed.
    let counted = connect(Some("user-hank")).await;
    assert_eq!(counted.hub.invocation_count().await.unwrap(), 0);
    counted.hub.echo("one".into()).await.unwrap();
    let blocked = counted
        .hub
        .echo("blocked-by-filter".into())
        .await
        .unwrap_err();
    assert!(blocked.message().contains("blocked by filter"), "{blocked}");
    assert_unauthorized(counted.hub.admin_only().await.unwrap_err(), "AdminOnly");
    assert_eq!(counted.hub.invocation_count().await.unwrap(), 2);
    let mut listener = connect(None).await;
    // An answered call: the server has registered the listener (it runs
    // a connection's calls only once it is connected), so the broadcast
    // below cannot miss it.
    listener.hub.echo("ready".into()).await.unwrap();
    let refused = counted.hub.broadcast("blocked-by-filter".into()).await;
    assert!(refused.unwrap_err().message().contains("blocked by filter"));
    counted.hub.broadcast("allowed".into()).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, listener.inbox.recv()).await;
    assert_eq!(first.unwrap().as_deref(), Some("allowed"));

    // The filter's connect hook refuses `reject=filter`.
    let rejected_url = format!("{url}?reject=filter");
    if let Ok(rejected) = try_connect(route, &rejected_url, None, None).await {
        rejected.closed(Duration::from_secs(2)).await;
        assert!(rejected.hub.echo("no".into()).await.is_err());
    }

    // AbortMe and Kick.
    let aborted = connect(None).await;
    let _ = aborted.hub.abort_me().await;
    aborted.closed(PATIENCE).await;
    let victim = connect(None).await;
    let victim_id = victim.hub.get_connection_id().await.unwrap();
    assert!(anonymous.hub.kick(victim_id).await.unwrap());
    victim.closed(PATIENCE).await;
    assert!(
        !anonymous
            .hub
            .kick("no-such-connection".into())
            .await
            .unwrap()
    );
    assert_eq!(anonymous.hub.echo("after".into()).await.unwrap(), "after");

    // `/hubs/secure`: 401 for anonymous, the user otherwise.
    let error = try_connect(route, &secure, None, None).await.err().unwrap();
    assert!(error.message().contains("401"), "{error}");
    let user = try_connect(route, &secure, Some("user-ivy"), None)
        .await
        .unwrap();
    let whoami = user.connection.hub::<ConformanceSecureHubProxy>().whoami();
    assert_eq!(whoami.await.unwrap().as_deref(), Some("ivy"));

    // Expiry: the server closes the connection within 5 s of it.
    let expiry = unix_now() + 2;
    let token = format!("user-jill.exp-{expiry}");
    let expiring = try_connect(route, &url, Some(&token), None).await.unwrap();
    assert_eq!(
        expiring.hub.whoami().await.unwrap().as_deref(),
        Some("jill")
    );
    expiring.closed(Duration::from_secs(8)).await;
    assert!(unix_now() + 1 >= expiry, "closed before the expiry");

    for client in [admin, anonymous, editor, probed, counted, listener, user] {
        client.connection.stop().await;
    }
    assert!(server.terminate(), "the server exits cleanly");
}

macro_rules! runs {
    ($($name:ident: $served:literal, $protocol:ident => $expected:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            every_row(Route {
                served: $served,
                protocol: HubProtocol::$protocol,
                expected: TransportType::$expected,
            })
            .await;
        }
    )*};
}

runs! {
    websockets_json: "", Json => WebSockets;
    websockets_messagepack: "", MessagePack => WebSockets;
    server_sent_events_json: "serversentevents,longpolling", Json => ServerSentEvents;
    long_polling_json: "longpolling", Json => LongPolling;
    long_polling_messagepack: "serversentevents,longpolling", MessagePack => LongPolling;
}
