//! The JSON hub protocol: spec examples, the exact wire forms of the JS
//! client and the .NET server, round trips, and malformed input.

// Tests may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use hub_runtime::protocol::json::{self, JsonDecoder};
use hub_runtime::protocol::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, EncodeError, HubMessage,
    Invocation, Payload, ProtocolError, Sequence, StreamInvocation, StreamItem,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const RS: u8 = 0x1e;

fn p(value: Value) -> Payload {
    Payload::from_value(value)
}

fn strings(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Decodes every whole record of `input` with no size limit.
fn decode_all(input: &[u8]) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut buffer = BytesMut::from(input);
    let mut decoder = JsonDecoder::new(None);
    let mut messages = Vec::new();
    while let Some(message) = decoder.decode(&mut buffer)? {
        messages.push(message);
    }
    Ok(messages)
}

/// Decodes exactly one message from a record given without its separator.
fn decode_record(record: &str) -> Result<Option<HubMessage>, ProtocolError> {
    let mut buffer = BytesMut::from(record.as_bytes());
    buffer.extend_from_slice(&[RS]);
    let mut decoder = JsonDecoder::new(Some(32 * 1024));
    let result = decoder.decode(&mut buffer);
    if result.is_ok() {
        assert!(buffer.is_empty(), "record not fully consumed: {record}");
    }
    result
}

fn decode_one(record: &str) -> HubMessage {
    match decode_record(record) {
        Ok(Some(message)) => message,
        other => panic!("{record} decoded to {other:?}"),
    }
}

fn encode(message: &HubMessage) -> String {
    let mut out = BytesMut::new();
    json::encode(message, &mut out).expect("encodes");
    assert_eq!(out.last(), Some(&RS));
    String::from_utf8(out[..out.len() - 1].to_vec()).expect("utf-8")
}

fn invocation(id: Option<&str>, target: &str, arguments: Vec<Payload>) -> HubMessage {
    HubMessage::Invocation(Invocation {
        invocation_id: id.map(str::to_owned),
        target: target.into(),
        arguments,
        ..Invocation::default()
    })
}

fn completion(id: &str, result: CompletionResult) -> HubMessage {
    HubMessage::Completion(Completion {
        headers: vec![],
        invocation_id: id.into(),
        result,
    })
}

fn stream_item(id: &str, item: Value) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        headers: vec![],
        invocation_id: id.into(),
        item: p(item),
    })
}

fn cancel(id: &str) -> HubMessage {
    HubMessage::CancelInvocation(CancelInvocation {
        headers: vec![],
        invocation_id: id.into(),
    })
}

fn close(error: Option<&str>, allow_reconnect: bool) -> HubMessage {
    HubMessage::Close(Close {
        error: error.map(str::to_owned),
        allow_reconnect,
    })
}

// ---------------------------------------------------------------------------
// HubProtocol.md, "JSON Encoding": every example.

#[test]
fn spec_examples_decode() {
    let cases: Vec<(&str, HubMessage)> = vec![
        (
            r#"{
                "type": 1,
                "invocationId": "123",
                "target": "Send",
                "arguments": [
                    42,
                    "Test Message"
                ]
            }"#,
            invocation(
                Some("123"),
                "Send",
                vec![p(json!(42)), p(json!("Test Message"))],
            ),
        ),
        (
            r#"{
                "type": 1,
                "target": "Send",
                "arguments": [
                    42,
                    "Test Message"
                ]
            }"#,
            invocation(None, "Send", vec![p(json!(42)), p(json!("Test Message"))]),
        ),
        (
            r#"{
                "type": 1,
                "invocationId": "123",
                "target": "Send",
                "arguments": [
                    42
                ],
                "streamIds": [
                    "1"
                ]
            }"#,
            HubMessage::Invocation(Invocation {
                invocation_id: Some("123".into()),
                target: "Send".into(),
                arguments: vec![p(json!(42))],
                stream_ids: strings(&["1"]),
                ..Invocation::default()
            }),
        ),
        (
            r#"{
                "type": 4,
                "invocationId": "123",
                "target": "Send",
                "arguments": [
                    42,
                    "Test Message"
                ]
            }"#,
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id: "123".into(),
                target: "Send".into(),
                arguments: vec![p(json!(42)), p(json!("Test Message"))],
                ..StreamInvocation::default()
            }),
        ),
        (
            r#"{
                "type": 2,
                "invocationId": "123",
                "item": 42
            }"#,
            stream_item("123", json!(42)),
        ),
        (
            r#"{
                "type": 3,
                "invocationId": "123"
            }"#,
            completion("123", CompletionResult::Void),
        ),
        (
            r#"{
                "type": 3,
                "invocationId": "123",
                "result": 42
            }"#,
            completion("123", CompletionResult::Value(p(json!(42)))),
        ),
        (
            r#"{
                "type": 3,
                "invocationId": "123",
                "error": "It didn't work!"
            }"#,
            completion("123", CompletionResult::Error("It didn't work!".into())),
        ),
        (
            r#"{
                "type": 5,
                "invocationId": "123"
            }"#,
            cancel("123"),
        ),
        (r#"{ "type": 6 }"#, HubMessage::Ping),
        (r#"{ "type": 7 }"#, close(None, false)),
        (
            r#"{
                "type": 7,
                "error": "Connection closed because of an error!"
            }"#,
            close(Some("Connection closed because of an error!"), false),
        ),
        (
            r#"{
                "type": 7,
                "error": "Connection closed because of an error!",
                "allowReconnect": true
            }"#,
            close(Some("Connection closed because of an error!"), true),
        ),
        (
            r#"{ "type": 8, "sequenceId": 1394 }"#,
            HubMessage::Ack(Ack { sequence_id: 1394 }),
        ),
        (
            r#"{ "type": 9, "sequenceId": 1234 }"#,
            HubMessage::Sequence(Sequence { sequence_id: 1234 }),
        ),
        (
            r#"{
                "type": 1,
                "headers": {
                    "Foo": "Bar"
                },
                "invocationId": "123",
                "target": "Send",
                "arguments": [
                    42,
                    "Test Message"
                ]
            }"#,
            HubMessage::Invocation(Invocation {
                headers: vec![("Foo".into(), "Bar".into())],
                invocation_id: Some("123".into()),
                target: "Send".into(),
                arguments: vec![p(json!(42)), p(json!("Test Message"))],
                stream_ids: vec![],
            }),
        ),
    ];
    for (record, expected) in cases {
        assert_eq!(decode_one(record), expected, "{record}");
    }
}

#[test]
fn spec_example_with_result_and_error_is_a_protocol_error() {
    let record = r#"{
        "type": 3,
        "invocationId": "123",
        "result": 42,
        "error": "It didn't work!"
    }"#;
    assert_eq!(
        decode_record(record),
        Err(ProtocolError::InvalidMessage(
            "The 'error' and 'result' properties are mutually exclusive."
        ))
    );
}

// ---------------------------------------------------------------------------
// Fact sheet §4: exact wire forms.

#[test]
fn js_client_wire_forms_decode() {
    let cases: Vec<(&str, HubMessage)> = vec![
        (
            r#"{"target":"Send","arguments":[1,"a"],"invocationId":"0","type":1}"#,
            invocation(Some("0"), "Send", vec![p(json!(1)), p(json!("a"))]),
        ),
        (
            r#"{"target":"Send","arguments":[1],"type":1}"#,
            invocation(None, "Send", vec![p(json!(1))]),
        ),
        (
            r#"{"target":"Sum","arguments":[],"invocationId":"1","streamIds":["0"],"type":1}"#,
            HubMessage::Invocation(Invocation {
                invocation_id: Some("1".into()),
                target: "Sum".into(),
                stream_ids: strings(&["0"]),
                ..Invocation::default()
            }),
        ),
        (
            r#"{"target":"Counter","arguments":[5,10],"invocationId":"2","type":4}"#,
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id: "2".into(),
                target: "Counter".into(),
                arguments: vec![p(json!(5)), p(json!(10))],
                ..StreamInvocation::default()
            }),
        ),
        (r#"{"invocationId":"2","type":5}"#, cancel("2")),
        (
            r#"{"invocationId":"0","item":7,"type":2}"#,
            stream_item("0", json!(7)),
        ),
        (
            r#"{"invocationId":"0","type":3}"#,
            completion("0", CompletionResult::Void),
        ),
        (
            r#"{"error":"boom","invocationId":"0","type":3}"#,
            completion("0", CompletionResult::Error("boom".into())),
        ),
        (
            r#"{"invocationId":"5","result":"answer","type":3}"#,
            completion("5", CompletionResult::Value(p(json!("answer")))),
        ),
        (r#"{"type":6}"#, HubMessage::Ping),
        (r#"{"type":7}"#, close(None, false)),
        (
            r#"{"type":8,"sequenceId":12}"#,
            HubMessage::Ack(Ack { sequence_id: 12 }),
        ),
        (
            r#"{"type":9,"sequenceId":3}"#,
            HubMessage::Sequence(Sequence { sequence_id: 3 }),
        ),
        // .NET buffers arguments that come before the target; so do we.
        (
            r#"{"arguments":["x"],"type":1,"target":"Late"}"#,
            invocation(None, "Late", vec![p(json!("x"))]),
        ),
    ];
    for (record, expected) in cases {
        assert_eq!(decode_one(record), expected, "{record}");
    }
}

/// The .NET server's forms: each decodes to the message, and encoding the
/// message gives exactly the same bytes.
fn dotnet_forms() -> Vec<(&'static str, HubMessage)> {
    vec![
        (
            r#"{"type":1,"target":"Receive","arguments":["hi"]}"#,
            invocation(None, "Receive", vec![p(json!("hi"))]),
        ),
        (
            r#"{"type":1,"invocationId":"1","target":"Question","arguments":["q"]}"#,
            invocation(Some("1"), "Question", vec![p(json!("q"))]),
        ),
        (
            r#"{"type":3,"invocationId":"0","result":42}"#,
            completion("0", CompletionResult::Value(p(json!(42)))),
        ),
        (
            r#"{"type":3,"invocationId":"0","result":null}"#,
            completion("0", CompletionResult::Value(Payload::null())),
        ),
        (
            r#"{"type":3,"invocationId":"0","error":"Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."}"#,
            completion(
                "0",
                CompletionResult::Error(
                    "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist."
                        .into(),
                ),
            ),
        ),
        (
            r#"{"type":2,"invocationId":"2","item":0}"#,
            stream_item("2", json!(0)),
        ),
        (
            r#"{"type":2,"invocationId":"2","item":null}"#,
            stream_item("2", Value::Null),
        ),
        (
            r#"{"type":3,"invocationId":"2"}"#,
            completion("2", CompletionResult::Void),
        ),
        (r#"{"type":6}"#, HubMessage::Ping),
        (r#"{"type":7}"#, close(None, false)),
        (r#"{"type":7,"allowReconnect":true}"#, close(None, true)),
        (
            r#"{"type":7,"error":"Connection closed with an error.","allowReconnect":true}"#,
            close(Some("Connection closed with an error."), true),
        ),
        (
            r#"{"type":7,"error":"Connection closed with an error."}"#,
            close(Some("Connection closed with an error."), false),
        ),
        (
            r#"{"type":8,"sequenceId":12}"#,
            HubMessage::Ack(Ack { sequence_id: 12 }),
        ),
        (
            r#"{"type":9,"sequenceId":18446744073709551615}"#,
            HubMessage::Sequence(Sequence {
                sequence_id: u64::MAX,
            }),
        ),
        (
            r#"{"type":4,"invocationId":"7","target":"Counter","arguments":[1,2],"streamIds":["a","b"]}"#,
            HubMessage::StreamInvocation(StreamInvocation {
                invocation_id: "7".into(),
                target: "Counter".into(),
                arguments: vec![p(json!(1)), p(json!(2))],
                stream_ids: strings(&["a", "b"]),
                ..StreamInvocation::default()
            }),
        ),
        (r#"{"type":5,"invocationId":"7"}"#, cancel("7")),
        (
            r#"{"type":1,"headers":{"Foo":"Bar","traceparent":"00-1"},"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}"#,
            HubMessage::Invocation(Invocation {
                headers: vec![
                    ("Foo".into(), "Bar".into()),
                    ("traceparent".into(), "00-1".into()),
                ],
                invocation_id: Some("123".into()),
                target: "Send".into(),
                arguments: vec![p(json!(42)), p(json!("Test Message"))],
                stream_ids: vec![],
            }),
        ),
        (
            r#"{"type":3,"headers":{"a":"b"},"invocationId":"9","result":{"x":[1,2]}}"#,
            HubMessage::Completion(Completion {
                headers: vec![("a".into(), "b".into())],
                invocation_id: "9".into(),
                result: CompletionResult::Value(p(json!({"x": [1, 2]}))),
            }),
        ),
    ]
}

#[test]
fn dotnet_server_wire_forms_decode() {
    for (record, expected) in dotnet_forms() {
        assert_eq!(decode_one(record), expected, "{record}");
    }
}

#[test]
fn encoding_gives_the_dotnet_server_bytes() {
    for (record, message) in dotnet_forms() {
        assert_eq!(encode(&message), record);
    }
}

#[test]
fn decoded_dotnet_forms_reencode_byte_for_byte() {
    for (record, _) in dotnet_forms() {
        assert_eq!(encode(&decode_one(record)), record);
    }
}

#[test]
fn null_result_and_missing_result_differ() {
    let with_null = decode_one(r#"{"type":3,"invocationId":"1","result":null}"#);
    let without = decode_one(r#"{"type":3,"invocationId":"1"}"#);
    let HubMessage::Completion(Completion {
        result: CompletionResult::Value(payload),
        ..
    }) = &with_null
    else {
        panic!("expected a value result: {with_null:?}");
    };
    assert_eq!(payload.as_json_bytes().map(|b| &b[..]), Some(&b"null"[..]));
    assert_eq!(without, completion("1", CompletionResult::Void));
}

#[test]
fn error_null_with_result_is_a_result() {
    assert_eq!(
        decode_one(r#"{"type":3,"invocationId":"1","error":null,"result":5}"#),
        completion("1", CompletionResult::Value(p(json!(5))))
    );
}

#[test]
fn fire_and_forget_ids() {
    for record in [
        r#"{"type":1,"target":"T","arguments":[]}"#,
        r#"{"type":1,"invocationId":null,"target":"T","arguments":[]}"#,
        r#"{"type":1,"invocationId":"","target":"T","arguments":[]}"#,
    ] {
        assert_eq!(
            decode_one(record),
            invocation(None, "T", vec![]),
            "{record}"
        );
    }
    // Encoding never writes an empty or null id.
    assert_eq!(
        encode(&invocation(Some(""), "T", vec![])),
        r#"{"type":1,"target":"T","arguments":[]}"#
    );
}

#[test]
fn unknown_keys_are_ignored() {
    assert_eq!(
        decode_one(
            r#"{"x":{"deep":[1,{"y":null}]},"type":2,"invocationId":"1","item":true,"nonsense":"z","Type":99}"#
        ),
        stream_item("1", json!(true))
    );
    // Keys of other message types are ignored too.
    assert_eq!(
        decode_one(r#"{"type":6,"target":5,"headers":{"a":"b"}}"#),
        HubMessage::Ping
    );
}

#[test]
fn payloads_are_slices_of_the_input() {
    let mut buffer =
        BytesMut::from(&br#"{"type":1,"target":"T","arguments":[{"a":1}, [2,3] ,"s\"x"]}"#[..]);
    buffer.extend_from_slice(&[RS]);
    let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
    let mut decoder = JsonDecoder::new(None);
    let Some(HubMessage::Invocation(invocation)) = decoder.decode(&mut buffer).unwrap() else {
        panic!("expected an invocation");
    };
    let raw: Vec<&[u8]> = invocation
        .arguments
        .iter()
        .map(|a| &a.as_json_bytes().expect("json payload")[..])
        .collect();
    assert_eq!(raw, [&br#"{"a":1}"#[..], b"[2,3]", br#""s\"x""#]);
    for argument in &invocation.arguments {
        let ptr = argument.as_json_bytes().unwrap().as_ptr() as usize;
        assert!(range.contains(&ptr), "payload was copied");
    }
    assert_eq!(
        invocation.arguments[2].deserialize::<String>().unwrap(),
        "s\"x"
    );
}

#[test]
fn several_records_in_one_buffer_and_leftovers() {
    let mut buffer =
        BytesMut::from(&b"{\"type\":6}\x1e{\"type\":8,\"sequenceId\":1}\x1e{\"type\":7"[..]);
    let mut decoder = JsonDecoder::new(Some(100));
    assert_eq!(decoder.decode(&mut buffer).unwrap(), Some(HubMessage::Ping));
    assert_eq!(
        decoder.decode(&mut buffer).unwrap(),
        Some(HubMessage::Ack(Ack { sequence_id: 1 }))
    );
    assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
    assert_eq!(&buffer[..], b"{\"type\":7");
    buffer.extend_from_slice(b"}\x1e");
    assert_eq!(
        decoder.decode(&mut buffer).unwrap(),
        Some(close(None, false))
    );
    assert!(buffer.is_empty());
    assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
}

#[test]
fn record_split_in_one_byte_reads() {
    let wire = br#"{"type":1,"invocationId":"42","target":"Add","arguments":[40,2]}"#;
    let mut buffer = BytesMut::new();
    let mut decoder = JsonDecoder::new(Some(64 * 1024));
    for &byte in wire {
        buffer.extend_from_slice(&[byte]);
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
    }
    buffer.extend_from_slice(&[RS]);
    assert_eq!(
        decoder.decode(&mut buffer).unwrap(),
        Some(invocation(
            Some("42"),
            "Add",
            vec![p(json!(40)), p(json!(2))]
        ))
    );
}

/// A 4 MB record arriving 64 bytes at a time: a decoder rescanning from the
/// start on every read would do ~130 G byte comparisons and never finish.
#[test]
fn large_record_in_small_reads_is_scanned_once() {
    let filler = "x".repeat(4 * 1024 * 1024);
    let wire = format!(r#"{{"type":2,"invocationId":"1","item":"{filler}"}}"#);
    let mut buffer = BytesMut::with_capacity(wire.len() + 1);
    let mut decoder = JsonDecoder::new(None);
    for chunk in wire.as_bytes().chunks(64) {
        buffer.extend_from_slice(chunk);
        assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
    }
    buffer.extend_from_slice(&[RS]);
    let Some(HubMessage::StreamItem(item)) = decoder.decode(&mut buffer).unwrap() else {
        panic!("expected a stream item");
    };
    assert_eq!(item.item.as_json_bytes().unwrap().len(), filler.len() + 2);
}

// ---------------------------------------------------------------------------
// Size limit.

#[test]
fn megabyte_without_separator_over_limit_is_refused_without_growth() {
    let input = vec![b'a'; 1024 * 1024];
    let mut buffer = BytesMut::from(&input[..]);
    let capacity = buffer.capacity();
    let mut decoder = JsonDecoder::new(Some(32 * 1024));
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(ProtocolError::MessageTooLarge { limit: 32 * 1024 })
    );
    assert_eq!(buffer.len(), input.len());
    assert_eq!(buffer.capacity(), capacity);
    assert_eq!(
        ProtocolError::MessageTooLarge { limit: 32768 }.to_string(),
        "The maximum message size of 32768B was exceeded. The message size can be configured in AddHubOptions."
    );
}

#[test]
fn complete_record_over_limit_is_refused() {
    let wire = format!(
        "{{\"type\":2,\"invocationId\":\"1\",\"item\":\"{}\"}}\x1e",
        "y".repeat(200)
    );
    let mut buffer = BytesMut::from(wire.as_bytes());
    let mut decoder = JsonDecoder::new(Some(100));
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(ProtocolError::MessageTooLarge { limit: 100 })
    );
}

#[test]
fn limit_counts_the_separator() {
    let record = br#"{"type":6}"#; // 10 bytes, 11 with the separator
    let mut wire = record.to_vec();
    wire.push(RS);
    let mut exact = BytesMut::from(&wire[..]);
    assert_eq!(
        JsonDecoder::new(Some(11)).decode(&mut exact).unwrap(),
        Some(HubMessage::Ping)
    );
    let mut over = BytesMut::from(&wire[..]);
    assert_eq!(
        JsonDecoder::new(Some(10)).decode(&mut over),
        Err(ProtocolError::MessageTooLarge { limit: 10 })
    );
    // Up to the limit without a separator, the decoder simply waits.
    let mut waiting = BytesMut::from(&record[..]);
    assert_eq!(JsonDecoder::new(Some(10)).decode(&mut waiting), Ok(None));
}

#[test]
fn limit_applies_per_record_not_per_buffer() {
    let mut buffer = BytesMut::new();
    for _ in 0..100 {
        buffer.extend_from_slice(b"{\"type\":6}\x1e");
    }
    let mut decoder = JsonDecoder::new(Some(16));
    for _ in 0..100 {
        assert_eq!(decoder.decode(&mut buffer).unwrap(), Some(HubMessage::Ping));
    }
    assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Malformed input.

enum Expect {
    Error(ProtocolError),
    InvalidJson,
}

fn wrong(field: &'static str, expected: &'static str) -> Expect {
    Expect::Error(ProtocolError::WrongFieldType { field, expected })
}

fn missing(field: &'static str) -> Expect {
    Expect::Error(ProtocolError::MissingField(field))
}

#[test]
fn malformed_records_give_typed_errors() {
    let deep_arguments = format!(
        r#"{{"type":1,"target":"T","arguments":[{}{}]}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_objects = format!(
        r#"{{"type":6,"x":{}1{}}}"#,
        r#"{"a":"#.repeat(5_000),
        "}".repeat(5_000)
    );
    let cases: Vec<(&str, String, Expect)> = vec![
        ("empty record", "".into(), Expect::InvalidJson),
        ("whitespace record", "  \n ".into(), Expect::InvalidJson),
        (
            "truncated JSON",
            r#"{"type":1,"target":"x""#.into(),
            Expect::InvalidJson,
        ),
        ("unquoted key", r#"{type:6}"#.into(), Expect::InvalidJson),
        (
            "trailing garbage",
            r#"{"type":6}x"#.into(),
            Expect::InvalidJson,
        ),
        (
            "two objects",
            r#"{"type":6}{"type":6}"#.into(),
            Expect::InvalidJson,
        ),
        ("array, not object", r#"[6]"#.into(), Expect::InvalidJson),
        (
            "string, not object",
            r#""type""#.into(),
            Expect::InvalidJson,
        ),
        (
            "duplicate key",
            r#"{"type":6,"type":6}"#.into(),
            Expect::InvalidJson,
        ),
        (
            "missing type",
            r#"{"target":"T","arguments":[]}"#.into(),
            missing("type"),
        ),
        (
            "type as string",
            r#"{"type":"1"}"#.into(),
            wrong("type", "Number"),
        ),
        (
            "type fractional",
            r#"{"type":1.5}"#.into(),
            wrong("type", "Number"),
        ),
        (
            "type null",
            r#"{"type":null}"#.into(),
            wrong("type", "Number"),
        ),
        (
            "type beyond i32",
            r#"{"type":4294967297}"#.into(),
            wrong("type", "Number"),
        ),
        (
            "missing target",
            r#"{"type":1,"arguments":[]}"#.into(),
            missing("target"),
        ),
        (
            "empty target",
            r#"{"type":1,"target":"","arguments":[]}"#.into(),
            missing("target"),
        ),
        (
            "null target",
            r#"{"type":1,"target":null,"arguments":[]}"#.into(),
            missing("target"),
        ),
        (
            "numeric target",
            r#"{"type":1,"target":5,"arguments":[]}"#.into(),
            wrong("target", "String"),
        ),
        (
            "missing arguments",
            r#"{"type":1,"target":"T"}"#.into(),
            missing("arguments"),
        ),
        (
            "object arguments",
            r#"{"type":1,"target":"T","arguments":{}}"#.into(),
            wrong("arguments", "Array"),
        ),
        (
            "string arguments",
            r#"{"type":1,"target":"T","arguments":"a"}"#.into(),
            wrong("arguments", "Array"),
        ),
        (
            "null arguments",
            r#"{"type":1,"target":"T","arguments":null}"#.into(),
            wrong("arguments", "Array"),
        ),
        (
            "numeric invocationId",
            r#"{"type":1,"invocationId":1,"target":"T","arguments":[]}"#.into(),
            wrong("invocationId", "String"),
        ),
        (
            "stream invocation without id",
            r#"{"type":4,"target":"T","arguments":[]}"#.into(),
            missing("invocationId"),
        ),
        (
            "stream invocation with empty id",
            r#"{"type":4,"invocationId":"","target":"T","arguments":[]}"#.into(),
            missing("invocationId"),
        ),
        (
            "stream invocation without arguments",
            r#"{"type":4,"invocationId":"1","target":"T"}"#.into(),
            missing("arguments"),
        ),
        (
            "stream item without item",
            r#"{"type":2,"invocationId":"1"}"#.into(),
            missing("item"),
        ),
        (
            "stream item without id",
            r#"{"type":2,"item":1}"#.into(),
            missing("invocationId"),
        ),
        (
            "completion without id",
            r#"{"type":3,"result":1}"#.into(),
            missing("invocationId"),
        ),
        (
            "completion with result and error",
            r#"{"type":3,"invocationId":"1","error":"e","result":null}"#.into(),
            Expect::Error(ProtocolError::InvalidMessage(
                "The 'error' and 'result' properties are mutually exclusive.",
            )),
        ),
        (
            "completion with numeric error",
            r#"{"type":3,"invocationId":"1","error":5}"#.into(),
            wrong("error", "String"),
        ),
        (
            "completion with empty error",
            r#"{"type":3,"invocationId":"1","error":""}"#.into(),
            Expect::Error(ProtocolError::InvalidMessage(
                "The 'error' property of a Completion must be a non-empty string.",
            )),
        ),
        (
            "cancel without id",
            r#"{"type":5}"#.into(),
            missing("invocationId"),
        ),
        (
            "headers not an object",
            r#"{"type":5,"invocationId":"1","headers":["a"]}"#.into(),
            wrong("headers", "Object with String values"),
        ),
        (
            "header value not a string",
            r#"{"type":5,"invocationId":"1","headers":{"a":1}}"#.into(),
            wrong("headers", "Object with String values"),
        ),
        (
            "header value null",
            r#"{"type":5,"invocationId":"1","headers":{"a":null}}"#.into(),
            wrong("headers", "Object with String values"),
        ),
        (
            "streamIds not an array",
            r#"{"type":1,"target":"T","arguments":[],"streamIds":"1"}"#.into(),
            wrong("streamIds", "Array of String"),
        ),
        (
            "streamIds of numbers",
            r#"{"type":1,"target":"T","arguments":[],"streamIds":[1]}"#.into(),
            wrong("streamIds", "Array of String"),
        ),
        (
            "allowReconnect not a boolean",
            r#"{"type":7,"allowReconnect":"yes"}"#.into(),
            wrong("allowReconnect", "Boolean"),
        ),
        (
            "close error not a string",
            r#"{"type":7,"error":{}}"#.into(),
            wrong("error", "String"),
        ),
        (
            "ack without sequenceId",
            r#"{"type":8}"#.into(),
            missing("sequenceId"),
        ),
        (
            "sequence without sequenceId",
            r#"{"type":9}"#.into(),
            missing("sequenceId"),
        ),
        (
            "negative sequenceId",
            r#"{"type":8,"sequenceId":-1}"#.into(),
            wrong("sequenceId", "non-negative Integer"),
        ),
        (
            "fractional sequenceId",
            r#"{"type":9,"sequenceId":1.5}"#.into(),
            wrong("sequenceId", "non-negative Integer"),
        ),
        (
            "string sequenceId",
            r#"{"type":9,"sequenceId":"1"}"#.into(),
            wrong("sequenceId", "non-negative Integer"),
        ),
        (
            "null sequenceId",
            r#"{"type":9,"sequenceId":null}"#.into(),
            wrong("sequenceId", "non-negative Integer"),
        ),
        (
            "huge sequenceId",
            r#"{"type":8,"sequenceId":123456789012345678901234567890}"#.into(),
            wrong("sequenceId", "non-negative Integer"),
        ),
        (
            "sequenceId out of f64 range",
            r#"{"type":8,"sequenceId":1e999}"#.into(),
            Expect::InvalidJson,
        ),
        (
            "arguments nested 10,000 deep",
            deep_arguments,
            Expect::InvalidJson,
        ),
        (
            "unknown key nested 5,000 deep",
            deep_objects,
            Expect::InvalidJson,
        ),
    ];
    for (name, record, expected) in cases {
        let result = decode_record(&record);
        match expected {
            Expect::Error(error) => assert_eq!(result, Err(error), "{name}"),
            Expect::InvalidJson => assert!(
                matches!(result, Err(ProtocolError::InvalidJson(_))),
                "{name}: {result:?}"
            ),
        }
    }
}

#[test]
fn invalid_utf8_is_refused() {
    for record in [
        &b"{\"type\":1,\"target\":\"\xff\",\"arguments\":[]}"[..],
        b"{\"type\":1,\"target\":\"T\",\"arguments\":[\"\xc3\x28\"]}",
        b"{\"type\":6,\"\xed\xa0\x80\":1}",
        b"\xef\xbb",
    ] {
        let mut buffer = BytesMut::from(record);
        buffer.extend_from_slice(&[RS]);
        assert_eq!(
            JsonDecoder::new(None).decode(&mut buffer),
            Err(ProtocolError::InvalidUtf8)
        );
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    // The envelope and the arguments array are two levels.
    let depth = json::MAX_DEPTH - 2;
    let record = format!(
        r#"{{"type":1,"target":"T","arguments":[{}{}]}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let HubMessage::Invocation(invocation) = decode_one(&record) else {
        panic!("expected an invocation");
    };
    assert_eq!(invocation.arguments.len(), 1);
    let one_more = format!(
        r#"{{"type":1,"target":"T","arguments":[{}{}]}}"#,
        "[".repeat(depth + 1),
        "]".repeat(depth + 1)
    );
    assert!(matches!(
        decode_record(&one_more),
        Err(ProtocolError::InvalidJson(_))
    ));
    // Brackets inside strings do not count.
    let in_string = format!(
        r#"{{"type":1,"target":"{}","arguments":[]}}"#,
        "[{".repeat(10_000)
    );
    assert_eq!(decode_one(&in_string), invocation_of(&"[{".repeat(10_000)));
}

fn invocation_of(target: &str) -> HubMessage {
    invocation(None, target, vec![])
}

#[test]
fn huge_numbers_in_payloads_are_kept_verbatim() {
    let record =
        r#"{"type":1,"target":"T","arguments":[1e99999,123456789012345678901234567890,-0.0]}"#;
    let HubMessage::Invocation(invocation) = decode_one(record) else {
        panic!("expected an invocation");
    };
    let raw: Vec<&[u8]> = invocation
        .arguments
        .iter()
        .map(|a| &a.as_json_bytes().unwrap()[..])
        .collect();
    assert_eq!(
        raw,
        [&b"1e99999"[..], b"123456789012345678901234567890", b"-0.0"]
    );
    // Binding is where such a number fails, as a payload error.
    assert!(invocation.arguments[0].deserialize::<f64>().is_err());
    assert_eq!(
        invocation.arguments[1].deserialize::<f64>().unwrap(),
        1.2345678901234568e29
    );
}

#[test]
fn unknown_types_are_skipped() {
    let input = concat!(
        r#"{"type":10,"whatever":[1,2]}"#,
        "\x1e",
        r#"{"type":0}"#,
        "\x1e",
        r#"{"type":-1}"#,
        "\x1e",
        r#"{"type":99,"target":5,"headers":7}"#,
        "\x1e",
        r#"{"type":2147483647}"#,
        "\x1e",
        r#"{"type":6}"#,
        "\x1e",
        r#"{"type":300}"#,
        "\x1e",
    );
    assert_eq!(
        decode_all(input.as_bytes()).unwrap(),
        vec![HubMessage::Ping]
    );
    // A skipped record at the end leaves an empty buffer and Ok(None).
    let mut buffer = BytesMut::from(&b"{\"type\":11}\x1e"[..]);
    assert_eq!(JsonDecoder::new(None).decode(&mut buffer), Ok(None));
    assert!(buffer.is_empty());
}

#[test]
fn error_consumes_the_bad_record_only() {
    let mut buffer = BytesMut::from(&b"{\"type\":8}\x1e{\"type\":6}\x1e"[..]);
    let mut decoder = JsonDecoder::new(None);
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(ProtocolError::MissingField("sequenceId"))
    );
    assert_eq!(&buffer[..], b"{\"type\":6}\x1e");
}

// ---------------------------------------------------------------------------
// Encoding details.

#[test]
fn encode_rules() {
    assert_eq!(encode(&HubMessage::Ping), r#"{"type":6}"#);
    assert_eq!(encode(&close(None, false)), r#"{"type":7}"#);
    assert_eq!(encode(&close(Some(""), false)), r#"{"type":7,"error":""}"#);
    assert_eq!(
        encode(&HubMessage::Ack(Ack { sequence_id: 0 })),
        r#"{"type":8,"sequenceId":0}"#
    );
    assert_eq!(
        encode(&completion("1", CompletionResult::Void)),
        r#"{"type":3,"invocationId":"1"}"#
    );
    assert_eq!(
        encode(&HubMessage::Invocation(Invocation {
            target: "T".into(),
            stream_ids: strings(&["1", "2"]),
            ..Invocation::default()
        })),
        r#"{"type":1,"target":"T","arguments":[],"streamIds":["1","2"]}"#
    );
    // Strings are escaped by serde_json.
    assert_eq!(
        encode(&close(Some("a\"b\\c\n\u{1}\u{1e}é\u{2028}"), false)),
        "{\"type\":7,\"error\":\"a\\\"b\\\\c\\n\\u0001\\u001eé\u{2028}\"}"
    );
    // Rust values are serialized at encode time.
    #[derive(serde::Serialize)]
    struct Point {
        x: i32,
        label: &'static str,
    }
    assert_eq!(
        encode(&invocation(
            None,
            "Move",
            vec![
                Payload::from_value(Point { x: 3, label: "p" }),
                Payload::null()
            ]
        )),
        r#"{"type":1,"target":"Move","arguments":[{"x":3,"label":"p"},null]}"#
    );
}

#[test]
fn invalid_messages_refuse_to_encode_and_append_nothing() {
    let cases: Vec<HubMessage> = vec![
        completion("1", CompletionResult::Error(String::new())),
        completion("", CompletionResult::Void),
        stream_item("", Value::Null),
        cancel(""),
        invocation(Some("1"), "", vec![]),
        HubMessage::StreamInvocation(StreamInvocation {
            invocation_id: "".into(),
            target: "T".into(),
            ..StreamInvocation::default()
        }),
    ];
    for message in cases {
        let mut out = BytesMut::from(&b"prefix"[..]);
        let result = json::encode(&message, &mut out);
        assert!(
            matches!(result, Err(EncodeError::InvalidMessage(_))),
            "{message:?}: {result:?}"
        );
        assert_eq!(&out[..], b"prefix");
    }
}

#[test]
fn failing_payload_appends_nothing() {
    // serde_json refuses maps with non-string keys.
    let mut map = std::collections::BTreeMap::new();
    map.insert((1, 2), 3);
    let message = invocation(Some("1"), "T", vec![p(json!(1)), Payload::from_value(map)]);
    let mut out = BytesMut::from(&b"prefix"[..]);
    assert!(matches!(
        json::encode(&message, &mut out),
        Err(EncodeError::Value(_))
    ));
    assert_eq!(&out[..], b"prefix");
}

#[test]
fn encode_appends_to_existing_output() {
    let mut out = BytesMut::new();
    json::encode(&HubMessage::Ping, &mut out).unwrap();
    json::encode(&close(None, true), &mut out).unwrap();
    assert_eq!(
        &out[..],
        b"{\"type\":6}\x1e{\"type\":7,\"allowReconnect\":true}\x1e"
    );
}

#[test]
fn fuzz_entry_point_handles_samples() {
    for sample in [
        &b""[..],
        b"\x1e",
        b"{\"type\":6}\x1e{\"type\":7}\x1e",
        b"{\"target\":\"Send\",\"arguments\":[1,\"a\"],\"invocationId\":\"0\",\"type\":1}\x1e",
        b"\xff\xfe\x1e",
        b"{\"type\":3,\"invocationId\":\"1\",\"error\":\"e\",\"result\":1}\x1e",
        b"{\"type\":1,\"headers\":{\"a\":\"b\",\"a\":\"c\"},\"target\":\"t\",\"arguments\":[]}\x1e",
    ] {
        json::fuzz_decode(sample);
    }
    json::fuzz_decode(&vec![b'['; 100_000]);
}

// ---------------------------------------------------------------------------
// Property tests: encode → decode is the identity.

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn arb_non_empty() -> impl Strategy<Value = String> {
    (any::<char>(), any::<String>()).prop_map(|(c, s)| format!("{c}{s}"))
}

fn arb_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((any::<String>(), any::<String>()), 0..3)
}

fn arb_payloads() -> impl Strategy<Value = Vec<Payload>> {
    prop::collection::vec(arb_json().prop_map(Payload::from_value), 0..4)
}

fn arb_message() -> impl Strategy<Value = HubMessage> {
    prop_oneof![
        (
            arb_headers(),
            prop::option::of(arb_non_empty()),
            arb_non_empty(),
            arb_payloads(),
            prop::collection::vec(any::<String>(), 0..3),
        )
            .prop_map(|(headers, invocation_id, target, arguments, stream_ids)| {
                HubMessage::Invocation(Invocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            }),
        (
            arb_headers(),
            arb_non_empty(),
            arb_non_empty(),
            arb_payloads(),
            prop::collection::vec(any::<String>(), 0..3),
        )
            .prop_map(|(headers, invocation_id, target, arguments, stream_ids)| {
                HubMessage::StreamInvocation(StreamInvocation {
                    headers,
                    invocation_id,
                    target,
                    arguments,
                    stream_ids,
                })
            }),
        (arb_headers(), arb_non_empty(), arb_json()).prop_map(|(headers, invocation_id, item)| {
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item: Payload::from_value(item),
            })
        }),
        (
            arb_headers(),
            arb_non_empty(),
            prop_oneof![
                Just(CompletionResult::Void),
                arb_json().prop_map(|v| CompletionResult::Value(Payload::from_value(v))),
                arb_non_empty().prop_map(CompletionResult::Error),
            ],
        )
            .prop_map(|(headers, invocation_id, result)| {
                HubMessage::Completion(Completion {
                    headers,
                    invocation_id,
                    result,
                })
            }),
        (arb_headers(), arb_non_empty()).prop_map(|(headers, invocation_id)| {
            HubMessage::CancelInvocation(CancelInvocation {
                headers,
                invocation_id,
            })
        }),
        Just(HubMessage::Ping),
        (prop::option::of(any::<String>()), any::<bool>()).prop_map(|(error, allow_reconnect)| {
            HubMessage::Close(Close {
                error,
                allow_reconnect,
            })
        }),
        any::<u64>().prop_map(|sequence_id| HubMessage::Ack(Ack { sequence_id })),
        any::<u64>().prop_map(|sequence_id| HubMessage::Sequence(Sequence { sequence_id })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_is_identity(message in arb_message()) {
        let mut wire = BytesMut::new();
        json::encode(&message, &mut wire).unwrap();
        prop_assert_eq!(wire.iter().filter(|&&b| b == RS).count(), 1);
        let mut decoder = JsonDecoder::new(None);
        let decoded = decoder.decode(&mut wire).unwrap();
        prop_assert_eq!(decoded, Some(message));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn concatenated_messages_survive_any_split(
        messages in prop::collection::vec(arb_message(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut wire = BytesMut::new();
        for message in &messages {
            json::encode(message, &mut wire).unwrap();
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        points.dedup();

        let mut decoder = JsonDecoder::new(Some(wire.len()));
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for window in points.windows(2) {
            buffer.extend_from_slice(&wire[window[0]..window[1]]);
            while let Some(message) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
        }
        prop_assert_eq!(decoded, messages);
        prop_assert!(buffer.is_empty());
    }

    /// The one-pass reader against the serde path it replaces: every
    /// encoded message, with whitespace sprinkled between its tokens and
    /// unknown keys around it, is read by the one-pass reader (when its
    /// strings have no escapes) and gives exactly serde's message.
    #[test]
    fn one_pass_reader_agrees_with_serde(
        message in arb_message(),
        spaces in prop::collection::vec(prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n"]), 8),
        unknown in prop::option::of(arb_json()),
    ) {
        let mut wire = BytesMut::new();
        json::encode(&message, &mut wire).unwrap();
        let text = std::str::from_utf8(&wire[..wire.len() - 1]).unwrap();
        // Whitespace after structural characters outside strings.
        let mut spaced = String::new();
        let (mut in_string, mut escaped, mut n) = (false, false, 0usize);
        for c in text.chars() {
            spaced.push(c);
            if in_string {
                if escaped { escaped = false } else if c == '\\' { escaped = true } else if c == '"' { in_string = false }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' | ':' | ',' => { spaced.push_str(spaces[n % spaces.len()]); n += 1; }
                _ => {}
            }
        }
        if let Some(unknown) = unknown {
            spaced = format!("{{\"zUnknown\" : {unknown} ,{}", &spaced[1..]);
        }
        let record = bytes::Bytes::from(spaced);
        let accepted = json::check_fast_path_agrees(&record);
        prop_assert!(
            accepted || text.contains('\\'),
            "the one-pass reader left an ordinary record to serde: {}",
            String::from_utf8_lossy(&record)
        );
        let reference = message;
        prop_assert_eq!(json::decode_record(&record).unwrap(), Some(reference));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        json::fuzz_decode(&data);
    }

    #[test]
    fn mutated_valid_records_never_panic(
        message in arb_message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut wire = BytesMut::new();
        json::encode(&message, &mut wire).unwrap();
        let mut bytes = wire.to_vec();
        for (index, byte) in flips {
            let at = index.index(bytes.len());
            bytes[at] = byte;
        }
        json::fuzz_decode(&bytes);
    }
}
