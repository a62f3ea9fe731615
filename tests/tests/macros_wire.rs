//! The wire messages the generated proxies produce, the dispatch of
//! `#[hub]` and the client handlers of `#[hub_client]`.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use hub_runtime::hub::{Arguments, HubCall, InvocationError, MethodDescriptor, MethodOutput};
use hub_runtime::protocol::{HubMessage, HubProtocol, Invocation, Payload};
use hub_runtime::targets::{ConnectionId, HubLifetimeManager, Target};
use hub_runtime::{
    BoxFuture, CallContext, ClientHandlers, Hub, HubContext, HubError, HubErrorKind, hub,
    hub_client,
};
use serde::{Deserialize, Serialize};

/// A value with a struct shape, to see field names on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Degrees.
    pub celsius: f64,
    /// Where.
    pub place: String,
}

/// The contract under test.
#[hub_client]
pub trait IThermo {
    /// Fire-and-forget, one argument.
    async fn show_reading(&self, reading: Reading);
    /// Fire-and-forget, no argument.
    async fn ping(&self);
    /// Two arguments and a custom wire name.
    #[hub_method(name = "notify")]
    async fn send_notice(&self, level: u8, text: String);
    /// A client result.
    async fn question(&self, text: String) -> bool;
    /// A client result of unit type counts as no result.
    async fn unit_result(&self, n: i32) -> ();
}

/// What the recorder saw.
#[derive(Debug, Clone, PartialEq)]
enum Recorded {
    Send(Target, Invocation),
    Invoke(ConnectionId, Invocation),
    AddToGroup(ConnectionId, String),
}

/// A lifetime manager that records every call and answers client-result
/// invocations with `answer`.
struct Recorder {
    log: Mutex<Vec<Recorded>>,
    answer: Mutex<Result<Payload, HubError>>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Recorder {
            log: Mutex::new(Vec::new()),
            answer: Mutex::new(Ok(Payload::null())),
        })
    }

    fn answer_with(&self, answer: Result<Payload, HubError>) {
        *self.answer.lock().expect("lock") = answer;
    }

    fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().expect("lock"))
    }

    fn push(&self, recorded: Recorded) {
        self.log.lock().expect("lock").push(recorded);
    }
}

impl HubLifetimeManager for Recorder {
    fn send(&self, target: Target, invocation: Invocation) -> BoxFuture<'_, Result<(), HubError>> {
        self.push(Recorded::Send(target, invocation));
        Box::pin(async { Ok(()) })
    }

    fn invoke(
        &self,
        connection: ConnectionId,
        invocation: Invocation,
    ) -> BoxFuture<'_, Result<Payload, HubError>> {
        self.push(Recorded::Invoke(connection, invocation));
        let answer = self.answer.lock().expect("lock").clone();
        Box::pin(async move { answer })
    }

    fn add_to_group(
        &self,
        connection: ConnectionId,
        group: String,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        self.push(Recorded::AddToGroup(connection, group));
        Box::pin(async { Ok(()) })
    }

    fn remove_from_group(
        &self,
        _connection: ConnectionId,
        _group: String,
    ) -> BoxFuture<'_, Result<(), HubError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The hub under test.
struct ThermoHub {
    offset: f64,
}

#[hub(client = IThermo)]
impl ThermoHub {
    /// No argument, plain value.
    async fn get_offset(&self) -> f64 {
        self.offset
    }

    /// Arguments and a `Result`.
    async fn divide(&self, a: i32, b: i32) -> Result<i32, HubError> {
        if b == 0 {
            return Err(HubError::new("division by zero"));
        }
        Ok(a / b)
    }

    /// The context in the middle, by reference; returns `()`.
    #[hub_method(name = "broadcastReading")]
    async fn broadcast(&self, celsius: f64, ctx: &CallContext<Self>, place: String) {
        let reading = Reading {
            celsius: celsius + self.offset,
            place,
        };
        let clients = ctx.clients();
        let _ = clients.others().show_reading(reading).await;
        let _ = clients.caller().ping().await;
    }

    /// The context by value, first; a client result from the caller.
    async fn ask_caller(&self, ctx: CallContext<Self>, text: String) -> Result<bool, HubError> {
        ctx.groups().add(ctx.connection_id(), "askers").await?;
        ctx.clients().caller().question(text).await
    }

    /// `self: Arc<Self>` works too.
    async fn shared(self: Arc<Self>) -> Result<(), HubError> {
        Ok(())
    }

    /// Not a hub method.
    #[hub_method(skip)]
    fn helper(&self) -> f64 {
        self.offset
    }

    async fn on_connected(&self, ctx: CallContext<Self>) -> Result<(), HubError> {
        ctx.clients().caller().ping().await
    }

    async fn on_disconnected(&self, ctx: &CallContext<Self>, error: Option<HubError>) {
        if let Some(error) = error {
            let _ = ctx
                .clients()
                .all()
                .send_notice(9, error.message().to_owned())
                .await;
        }
    }
}

fn encode(invocation: &Invocation) -> String {
    let mut buf = BytesMut::new();
    HubProtocol::Json
        .encode(&HubMessage::Invocation(invocation.clone()), &mut buf)
        .expect("the JSON codec encodes invocations");
    String::from_utf8(buf.to_vec()).expect("JSON is UTF-8")
}

fn json_args(invocation: &Invocation) -> serde_json::Value {
    serde_json::Value::Array(
        invocation
            .arguments
            .iter()
            .map(|payload| payload.to_json_value().expect("JSON value"))
            .collect(),
    )
}

fn sent(recorded: &Recorded) -> (&Target, &Invocation) {
    match recorded {
        Recorded::Send(target, invocation) => (target, invocation),
        other => panic!("expected a send, got {other:?}"),
    }
}

fn context(recorder: &Arc<Recorder>) -> HubContext<ThermoHub> {
    HubContext::new(recorder.clone())
}

fn reading() -> Reading {
    Reading {
        celsius: 21.5,
        place: "lab".into(),
    }
}

#[tokio::test]
async fn broadcast_proxies_send_invocations_to_their_targets() {
    let recorder = Recorder::new();
    let ctx = context(&recorder);
    let clients = ctx.clients();
    clients.all().show_reading(reading()).await.expect("send");
    clients.group("g").ping().await.expect("send");
    clients
        .all_except(["c1", "c2"])
        .send_notice(3, "hello".into())
        .await
        .expect("send");
    clients.user("u").ping().await.expect("send");

    let log = recorder.take();
    assert_eq!(log.len(), 4);
    let (target, invocation) = sent(&log[0]);
    assert_eq!(target, &Target::All);
    assert_eq!(invocation.target, "ShowReading");
    assert_eq!(invocation.invocation_id, None);
    assert_eq!(
        json_args(invocation),
        serde_json::json!([{"celsius": 21.5, "place": "lab"}])
    );

    let (target, invocation) = sent(&log[1]);
    assert_eq!(target, &Target::Group("g".into()));
    assert_eq!(invocation.target, "Ping");
    assert!(invocation.arguments.is_empty());

    let (target, invocation) = sent(&log[2]);
    assert_eq!(target, &Target::AllExcept(vec!["c1".into(), "c2".into()]));
    assert_eq!(invocation.target, "notify");
    assert_eq!(json_args(invocation), serde_json::json!([3, "hello"]));

    let (target, _) = sent(&log[3]);
    assert_eq!(target, &Target::User("u".into()));
}

#[tokio::test]
async fn single_proxy_sends_and_awaits_client_results() {
    let recorder = Recorder::new();
    let ctx = context(&recorder);
    let id = ConnectionId::from("conn-1");

    ctx.clients().client(&id).ping().await.expect("send");
    recorder.answer_with(Ok(Payload::from_json_bytes(Bytes::from_static(b"true"))));
    let answer = ctx
        .clients()
        .client(&id)
        .question("ok?".into())
        .await
        .expect("answer");
    assert!(answer);
    ctx.clients()
        .client(&id)
        .unit_result(4)
        .await
        .expect("unit is fire-and-forget");

    let log = recorder.take();
    let (target, invocation) = sent(&log[0]);
    assert_eq!(target, &Target::Connection(id.clone()));
    assert_eq!(invocation.target, "Ping");
    match &log[1] {
        Recorded::Invoke(connection, invocation) => {
            assert_eq!(connection, &id);
            assert_eq!(invocation.target, "Question");
            assert_eq!(json_args(invocation), serde_json::json!(["ok?"]));
        }
        other => panic!("expected an invoke, got {other:?}"),
    }
    let (_, invocation) = sent(&log[2]);
    assert_eq!(invocation.target, "UnitResult");
}

#[tokio::test]
async fn client_result_errors_and_bad_answers_surface() {
    let recorder = Recorder::new();
    let ctx = context(&recorder);
    recorder.answer_with(Err(HubError::with_kind(HubErrorKind::Remote, "no")));
    let error = ctx
        .clients()
        .client("c")
        .question("q".into())
        .await
        .expect_err("remote error");
    assert_eq!(error.kind(), HubErrorKind::Remote);

    recorder.answer_with(Ok(Payload::from_json_bytes(Bytes::from_static(b"\"yes\""))));
    let error = ctx
        .clients()
        .client("c")
        .question("q".into())
        .await
        .expect_err("a string is no bool");
    assert_eq!(error.kind(), HubErrorKind::Serialization);
}

#[tokio::test]
async fn proxies_encode_to_the_exact_json_wire_messages() {
    let recorder = Recorder::new();
    let ctx = context(&recorder);
    ctx.clients()
        .all()
        .show_reading(reading())
        .await
        .expect("send");
    ctx.clients()
        .group("g")
        .send_notice(1, "hi".into())
        .await
        .expect("send");
    ctx.clients().client("c").ping().await.expect("send");
    let log = recorder.take();
    let wire: Vec<String> = log.iter().map(|r| encode(sent(r).1)).collect();
    assert_eq!(
        wire,
        [
            "{\"type\":1,\"target\":\"ShowReading\",\"arguments\":[{\"celsius\":21.5,\"place\":\"lab\"}]}\u{1e}",
            "{\"type\":1,\"target\":\"notify\",\"arguments\":[1,\"hi\"]}\u{1e}",
            "{\"type\":1,\"target\":\"Ping\",\"arguments\":[]}\u{1e}",
        ]
    );
}

fn call(recorder: &Arc<Recorder>, caller: &str, args: &[&'static str]) -> HubCall<ThermoHub> {
    let context = CallContext::new(ConnectionId::from(caller), None, recorder.clone());
    let arguments = args
        .iter()
        .map(|json| Payload::from_json_bytes(Bytes::from_static(json.as_bytes())))
        .collect();
    HubCall::new(context, Arguments::new(arguments))
}

fn method(name: &str) -> usize {
    ThermoHub::METHODS
        .iter()
        .position(|method| method.name.eq_ignore_ascii_case(name))
        .unwrap_or_else(|| panic!("no method {name}"))
}

fn value(output: Result<MethodOutput, InvocationError>) -> serde_json::Value {
    match output.expect("method succeeded") {
        MethodOutput::Value(payload) => payload.to_json_value().expect("JSON"),
        other => panic!("unexpected output {other:?}"),
    }
}

fn hub() -> Arc<ThermoHub> {
    Arc::new(ThermoHub { offset: 0.5 })
}

#[test]
fn method_table_lists_wire_methods_only() {
    assert_eq!(
        ThermoHub::METHODS,
        &[
            MethodDescriptor::unary("GetOffset", 0),
            MethodDescriptor::unary("Divide", 2),
            MethodDescriptor::unary("broadcastReading", 2),
            MethodDescriptor::unary("AskCaller", 1),
            MethodDescriptor::unary("Shared", 0),
        ]
    );
    assert_eq!(hub().helper(), 0.5);
}

#[tokio::test]
async fn dispatch_binds_arguments_and_returns_values() {
    let recorder = Recorder::new();
    let out = hub()
        .invoke(method("GetOffset"), call(&recorder, "c", &[]))
        .await;
    assert_eq!(value(out), serde_json::json!(0.5));

    let out = hub()
        .invoke(method("Divide"), call(&recorder, "c", &["7", "2"]))
        .await;
    assert_eq!(value(out), serde_json::json!(3));

    let out = hub()
        .invoke(method("Shared"), call(&recorder, "c", &[]))
        .await;
    assert_eq!(value(out), serde_json::Value::Null);
}

#[tokio::test]
async fn dispatch_reports_binding_errors_and_passes_hub_errors_through() {
    let recorder = Recorder::new();
    let out = hub()
        .invoke(method("Divide"), call(&recorder, "c", &["7", "\"x\""]))
        .await;
    match out {
        Err(InvocationError::ArgumentBinding { index, .. }) => assert_eq!(index, 1),
        other => panic!("expected a binding error, got {other:?}"),
    }

    let out = hub()
        .invoke(method("Divide"), call(&recorder, "c", &["7", "0"]))
        .await;
    match out {
        Err(InvocationError::Hub(error)) => {
            assert_eq!(error.message(), "division by zero");
            assert_eq!(error.kind(), HubErrorKind::Hub);
        }
        other => panic!("expected the hub's error, got {other:?}"),
    }

    let out = hub()
        .invoke(ThermoHub::METHODS.len(), call(&recorder, "c", &[]))
        .await;
    assert!(matches!(out, Err(InvocationError::UnknownMethod)));
}

#[tokio::test]
async fn context_parameter_reaches_caller_and_others() {
    let recorder = Recorder::new();
    let out = hub()
        .invoke(
            method("broadcastReading"),
            call(&recorder, "me", &["20", "\"hall\""]),
        )
        .await;
    assert_eq!(value(out), serde_json::Value::Null);
    let log = recorder.take();
    let (target, invocation) = sent(&log[0]);
    assert_eq!(target, &Target::AllExcept(vec!["me".into()]));
    assert_eq!(invocation.target, "ShowReading");
    assert_eq!(
        json_args(invocation),
        serde_json::json!([{"celsius": 20.5, "place": "hall"}])
    );
    let (target, invocation) = sent(&log[1]);
    assert_eq!(target, &Target::Connection("me".into()));
    assert_eq!(invocation.target, "Ping");

    recorder.answer_with(Ok(Payload::from_value(false)));
    let out = hub()
        .invoke(method("AskCaller"), call(&recorder, "me", &["\"sure?\""]))
        .await;
    assert_eq!(value(out), serde_json::json!(false));
    let log = recorder.take();
    assert_eq!(log[0], Recorded::AddToGroup("me".into(), "askers".into()));
    match &log[1] {
        Recorded::Invoke(connection, invocation) => {
            assert_eq!(connection.as_str(), "me");
            assert_eq!(invocation.target, "Question");
        }
        other => panic!("expected an invoke, got {other:?}"),
    }
}

#[tokio::test]
async fn lifecycle_hooks_are_wired() {
    let recorder = Recorder::new();
    let ctx = CallContext::new(ConnectionId::from("me"), None, recorder.clone());
    hub().on_connected(ctx.clone()).await.expect("connected");
    hub()
        .on_disconnected(ctx, Some(HubError::new("gone")))
        .await;
    let log = recorder.take();
    let (target, invocation) = sent(&log[0]);
    assert_eq!(target, &Target::Connection("me".into()));
    assert_eq!(invocation.target, "Ping");
    let (target, invocation) = sent(&log[1]);
    assert_eq!(target, &Target::All);
    assert_eq!(invocation.target, "notify");
    assert_eq!(json_args(invocation), serde_json::json!([9, "gone"]));
}

/// A client implementation for `into_handlers`.
struct Thermo {
    seen: Mutex<Vec<String>>,
}

impl IThermo for Thermo {
    async fn show_reading(&self, reading: Reading) {
        self.seen
            .lock()
            .expect("lock")
            .push(format!("{} {}", reading.place, reading.celsius));
    }

    async fn ping(&self) {
        self.seen.lock().expect("lock").push("ping".into());
    }

    async fn send_notice(&self, level: u8, text: String) {
        self.seen
            .lock()
            .expect("lock")
            .push(format!("{level}: {text}"));
    }

    async fn question(&self, text: String) -> bool {
        text.ends_with('?')
    }

    async fn unit_result(&self, _n: i32) {}
}

async fn run(
    handlers: &ClientHandlers,
    target: &str,
    args: &[&'static str],
) -> Result<Option<Payload>, InvocationError> {
    let (parameters, method) = handlers.find(target).next().expect("a handler");
    assert_eq!(parameters, args.len());
    let arguments = args
        .iter()
        .map(|json| Payload::from_json_bytes(Bytes::from_static(json.as_bytes())))
        .collect();
    method(Arguments::new(arguments)).await
}

#[tokio::test]
async fn into_handlers_dispatches_case_insensitively() {
    let thermo = Arc::new(Thermo {
        seen: Mutex::new(Vec::new()),
    });
    // The handlers own their instance; share the log through an Arc.
    struct Shared(Arc<Thermo>);
    impl IThermo for Shared {
        async fn show_reading(&self, reading: Reading) {
            self.0.show_reading(reading).await
        }
        async fn ping(&self) {
            self.0.ping().await
        }
        async fn send_notice(&self, level: u8, text: String) {
            self.0.send_notice(level, text).await
        }
        async fn question(&self, text: String) -> bool {
            self.0.question(text).await
        }
        async fn unit_result(&self, n: i32) {
            self.0.unit_result(n).await
        }
    }
    let handlers = Shared(thermo.clone()).into_handlers();
    assert_eq!(
        handlers.names().collect::<Vec<_>>(),
        ["ShowReading", "Ping", "notify", "Question", "UnitResult"]
    );

    let out = run(
        &handlers,
        "showreading",
        &[r#"{"celsius":1.5,"place":"x"}"#],
    )
    .await;
    assert!(matches!(out, Ok(None)));
    assert!(matches!(run(&handlers, "PING", &[]).await, Ok(None)));
    assert!(matches!(
        run(&handlers, "Notify", &["2", "\"n\""]).await,
        Ok(None)
    ));
    let out = run(&handlers, "question", &["\"really?\""])
        .await
        .expect("answer")
        .expect("a result");
    assert_eq!(out.to_json_value().expect("JSON"), serde_json::json!(true));
    assert!(matches!(
        run(&handlers, "UnitResult", &["1"]).await,
        Ok(None)
    ));
    assert_eq!(
        *thermo.seen.lock().expect("lock"),
        ["x 1.5", "ping", "2: n"]
    );

    let out = run(&handlers, "question", &["12"]).await;
    assert!(matches!(
        out,
        Err(InvocationError::ArgumentBinding { index: 0, .. })
    ));
}
