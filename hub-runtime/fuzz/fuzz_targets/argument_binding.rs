#![no_main]
//! Structure-aware: hub method argument binding as the `#[hub]` macro's
//! generated code does it — each argument of a decoded Invocation (JSON or
//! MessagePack) deserialized into the parameter types of typical hub
//! methods. Never a panic: a wrong argument is a `PayloadError`.
use bytes::BytesMut;
use hub_runtime::Timestamp;
use hub_runtime::protocol::{HubMessage, HubProtocol};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use std::collections::HashMap;

fn bind_all(arguments: &[hub_runtime::protocol::Payload]) {
    for argument in arguments {
        let _ = argument.deserialize::<i64>();
        let _ = argument.deserialize::<u8>();
        let _ = argument.deserialize::<f64>();
        let _ = argument.deserialize::<String>();
        let _ = argument.deserialize::<Option<bool>>();
        let _ = argument.deserialize::<Vec<i32>>();
        let _ = argument.deserialize::<HashMap<String, Vec<Option<String>>>>();
        let _ = argument.deserialize::<(i64, String)>();
        let _ = argument.deserialize::<Timestamp>();
        let _ = argument.deserialize::<serde_json::Value>();
        let _ = argument.to_json_value();
    }
}

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let protocol = if u.arbitrary::<bool>()? {
        HubProtocol::Json
    } else {
        HubProtocol::MessagePack
    };
    let mut buffer = BytesMut::from(u.take_rest());
    let mut decoder = protocol.decoder(Some(32 * 1024));
    while let Ok(Some(message)) = decoder.decode(&mut buffer) {
        match message {
            HubMessage::Invocation(invocation) => bind_all(&invocation.arguments),
            HubMessage::StreamInvocation(invocation) => bind_all(&invocation.arguments),
            HubMessage::StreamItem(item) => bind_all(std::slice::from_ref(&item.item)),
            _ => {}
        }
    }
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
