//! The MessagePack hub protocol: the exact bytes real clients and the .NET
//! server exchange, the VarInt framing, round trips, and malformed input.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use hub_runtime::protocol::messagepack::{MessagePackDecoder, encode, fuzz_decode};
use hub_runtime::protocol::{
    Ack, CancelInvocation, Close, Completion, CompletionResult, EncodeError, HubMessage,
    HubProtocol, Invocation, Payload, ProtocolError, Sequence, StreamInvocation, StreamItem,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- helpers

/// Prefixes `body` with its VarInt length.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = varint(body.len());
    out.extend_from_slice(body);
    out
}

fn varint(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Decodes every message in `wire`, which must be consumed entirely.
fn decode_all(wire: &[u8]) -> Result<Vec<HubMessage>, ProtocolError> {
    let mut decoder = MessagePackDecoder::new(None);
    let mut buffer = BytesMut::from(wire);
    let mut messages = Vec::new();
    while let Some(message) = decoder.decode(&mut buffer)? {
        messages.push(message);
    }
    assert!(buffer.is_empty(), "left over: {:02x?}", &buffer[..]);
    Ok(messages)
}

/// Decodes exactly one message from `wire`.
fn decode_one(wire: &[u8]) -> Result<HubMessage, ProtocolError> {
    let messages = decode_all(wire)?;
    assert_eq!(messages.len(), 1, "{messages:?}");
    Ok(messages.into_iter().next().unwrap())
}

/// Decodes one message body (no prefix).
fn decode_body(body: &[u8]) -> Result<HubMessage, ProtocolError> {
    decode_one(&frame(body))
}

fn decode_body_err(body: &[u8]) -> ProtocolError {
    let mut decoder = MessagePackDecoder::new(None);
    let mut buffer = BytesMut::from(&frame(body)[..]);
    decoder.decode(&mut buffer).expect_err("decoded")
}

fn encoded(message: &HubMessage) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(message, &mut out).unwrap();
    out.to_vec()
}

fn int(value: i64) -> Payload {
    Payload::from_value(value)
}

fn raw(bytes: &'static [u8]) -> Payload {
    Payload::from_msgpack_bytes(Bytes::from_static(bytes))
}

fn json_of(payload: &Payload) -> serde_json::Value {
    payload.deserialize::<serde_json::Value>().unwrap()
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
        headers: Vec::new(),
        invocation_id: id.into(),
        result,
    })
}

fn stream_item(id: &str, item: Payload) -> HubMessage {
    HubMessage::StreamItem(StreamItem {
        headers: Vec::new(),
        invocation_id: id.into(),
        item,
    })
}

fn close(error: Option<&str>, allow_reconnect: bool) -> HubMessage {
    HubMessage::Close(Close {
        error: error.map(str::to_owned),
        allow_reconnect,
    })
}

// ------------------------------------------------- bytes from real clients

#[test]
fn js_client_messages_from_the_fact_sheet() {
    // invoke("m", 42) with id "0": 5 elements, no streamIds
    assert_eq!(
        decode_one(&[0x09, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa1, 0x6d, 0x91, 0x2a]).unwrap(),
        invocation(Some("0"), "m", vec![int(42)])
    );
    // send("m", 42): fire-and-forget, nil id
    assert_eq!(
        decode_one(&[0x08, 0x95, 0x01, 0x80, 0xc0, 0xa1, 0x6d, 0x91, 0x2a]).unwrap(),
        invocation(None, "m", vec![int(42)])
    );
    // completion of an upload stream: resultKind 2, 4 elements
    assert_eq!(
        decode_one(&[0x06, 0x94, 0x03, 0x80, 0xa1, 0x30, 0x02]).unwrap(),
        completion("0", CompletionResult::Void)
    );
    // stop(): [7, nil]
    assert_eq!(
        decode_one(&[0x03, 0x92, 0x07, 0xc0]).unwrap(),
        close(None, false)
    );
    assert_eq!(decode_one(&[0x02, 0x91, 0x06]).unwrap(), HubMessage::Ping);
    assert_eq!(
        decode_one(&[0x03, 0x92, 0x08, 0x24]).unwrap(),
        HubMessage::Ack(Ack { sequence_id: 36 })
    );
}

#[test]
fn arguments_are_zero_copy_slices_of_the_message() {
    let wire = [0x09, 0x95, 0x01, 0x80, 0xa1, 0x30, 0xa1, 0x6d, 0x91, 0x2a];
    let HubMessage::Invocation(message) = decode_one(&wire).unwrap() else {
        panic!("not an invocation");
    };
    assert_eq!(
        message.arguments[0].as_msgpack_bytes().unwrap(),
        &[0x2a][..]
    );
    assert_eq!(message.arguments[0].deserialize::<i32>().unwrap(), 42);
}

// ------------------------------------------- every example of the spec

/// `HubProtocol.md`, "MessagePack (MsgPack) encoding": each example body and
/// the message the spec says it decodes to.
fn spec_examples() -> Vec<(&'static str, Vec<u8>, HubMessage)> {
    let xyz_invocation = |headers: Vec<(String, String)>| {
        HubMessage::Invocation(Invocation {
            headers,
            invocation_id: Some("xyz".into()),
            target: "method".into(),
            arguments: vec![int(42)],
            stream_ids: Vec::new(),
        })
    };
    vec![
        (
            "Invocation",
            vec![
                0x96, 0x01, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0xa6, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64,
                0x91, 0x2a, 0x90,
            ],
            xyz_invocation(Vec::new()),
        ),
        (
            "non-blocking Invocation",
            vec![
                0x96, 0x01, 0x80, 0xc0, 0xa6, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x91, 0x2a, 0x90,
            ],
            HubMessage::Invocation(Invocation {
                target: "method".into(),
                arguments: vec![int(42)],
                ..Invocation::default()
            }),
        ),
        (
            "StreamInvocation",
            vec![
                0x96, 0x04, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0xa6, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64,
                0x91, 0x2a, 0x90,
            ],
            HubMessage::StreamInvocation(StreamInvocation {
                headers: Vec::new(),
                invocation_id: "xyz".into(),
                target: "method".into(),
                arguments: vec![int(42)],
                stream_ids: Vec::new(),
            }),
        ),
        (
            "StreamItem",
            vec![0x94, 0x02, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0x2a],
            stream_item("xyz", int(42)),
        ),
        (
            "Completion, error",
            vec![
                0x95, 0x03, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0x01, 0xa5, 0x45, 0x72, 0x72, 0x6f, 0x72,
            ],
            completion("xyz", CompletionResult::Error("Error".into())),
        ),
        (
            "Completion, void",
            vec![0x94, 0x03, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0x02],
            completion("xyz", CompletionResult::Void),
        ),
        (
            "Completion, non-void",
            vec![0x95, 0x03, 0x80, 0xa3, 0x78, 0x79, 0x7a, 0x03, 0x2a],
            completion("xyz", CompletionResult::Value(int(42))),
        ),
        (
            "CancelInvocation",
            vec![0x93, 0x05, 0x80, 0xa3, 0x78, 0x79, 0x7a],
            HubMessage::CancelInvocation(CancelInvocation {
                headers: Vec::new(),
                invocation_id: "xyz".into(),
            }),
        ),
        ("Ping", vec![0x91, 0x06], HubMessage::Ping),
        (
            "Close",
            vec![0x92, 0x07, 0xa3, 0x78, 0x79, 0x7a],
            close(Some("xyz"), false),
        ),
        (
            "Close, allowReconnect",
            vec![0x93, 0x07, 0xa3, 0x78, 0x79, 0x7a, 0xc3],
            close(Some("xyz"), true),
        ),
        (
            "Ack",
            vec![0x92, 0x08, 0xcc, 0x24],
            HubMessage::Ack(Ack { sequence_id: 36 }),
        ),
        (
            "Sequence",
            vec![0x92, 0x09, 0xcc, 0x13],
            HubMessage::Sequence(Sequence { sequence_id: 19 }),
        ),
        (
            "headers",
            vec![
                0x96, 0x01, 0x82, 0xa1, 0x78, 0xa1, 0x79, 0xa1, 0x7a, 0xa1, 0x7a, 0xa3, 0x78, 0x79,
                0x7a, 0xa6, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x91, 0x2a, 0x90,
            ],
            xyz_invocation(vec![("x".into(), "y".into()), ("z".into(), "z".into())]),
        ),
    ]
}

#[test]
fn every_spec_example_decodes_as_specified() {
    for (name, body, expected) in spec_examples() {
        assert_eq!(decode_body(&body).unwrap(), expected, "{name}");
    }
}

#[test]
fn encoding_gives_the_dotnet_bytes() {
    // The spec examples are what the .NET server writes, except that it
    // writes Close with 3 elements and sequence ids in their smallest form.
    for (name, body, message) in spec_examples() {
        let expected = match name {
            "Close" => vec![0x93, 0x07, 0xa3, 0x78, 0x79, 0x7a, 0xc2],
            "Ack" => vec![0x92, 0x08, 0x24],
            "Sequence" => vec![0x92, 0x09, 0x13],
            _ => body,
        };
        assert_eq!(encoded(&message), frame(&expected), "{name}");
    }
}

#[test]
fn encoding_follows_the_dotnet_writer() {
    // Clients.All.SendAsync("Receive", "hi"): nil id, empty streamIds
    assert_eq!(
        encoded(&invocation(
            None,
            "Receive",
            vec![Payload::from_value("hi")]
        )),
        frame(&[
            0x96, 0x01, 0x80, 0xc0, 0xa7, b'R', b'e', b'c', b'e', b'i', b'v', b'e', 0x91, 0xa2,
            b'h', b'i', 0x90
        ])
    );
    // an empty id is written as nil too
    assert_eq!(
        encoded(&invocation(Some(""), "m", vec![])),
        frame(&[0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0x90])
    );
    // upload stream ids
    let with_streams = HubMessage::Invocation(Invocation {
        invocation_id: Some("1".into()),
        target: "Sum".into(),
        stream_ids: vec!["0".into()],
        ..Invocation::default()
    });
    assert_eq!(
        encoded(&with_streams),
        frame(&[
            0x96, 0x01, 0x80, 0xa1, b'1', 0xa3, b'S', b'u', b'm', 0x90, 0x91, 0xa1, b'0'
        ])
    );
    // a void hub method: resultKind 3 with nil
    assert_eq!(
        encoded(&completion("0", CompletionResult::Value(Payload::null()))),
        frame(&[0x95, 0x03, 0x80, 0xa1, b'0', 0x03, 0xc0])
    );
    // Close is always 3 elements; an empty error is nil
    assert_eq!(
        encoded(&close(None, false)),
        frame(&[0x93, 0x07, 0xc0, 0xc2])
    );
    assert_eq!(
        encoded(&close(Some(""), true)),
        frame(&[0x93, 0x07, 0xc0, 0xc3])
    );
    // Ping is exactly 91 06
    assert_eq!(encoded(&HubMessage::Ping), [0x02, 0x91, 0x06]);
    // sequence ids in every width
    for (id, tail) in [
        (0_u64, vec![0x00]),
        (127, vec![0x7f]),
        (128, vec![0xcc, 0x80]),
        (65_535, vec![0xcd, 0xff, 0xff]),
        (65_536, vec![0xce, 0x00, 0x01, 0x00, 0x00]),
        (
            u64::MAX,
            vec![0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        ),
    ] {
        let mut body = vec![0x92, 0x09];
        body.extend_from_slice(&tail);
        let message = HubMessage::Sequence(Sequence { sequence_id: id });
        assert_eq!(encoded(&message), frame(&body), "{id}");
        assert_eq!(decode_body(&body).unwrap(), message);
    }
    // headers
    let cancel = HubMessage::CancelInvocation(CancelInvocation {
        headers: vec![("k".into(), "v".into())],
        invocation_id: "7".into(),
    });
    assert_eq!(
        encoded(&cancel),
        frame(&[0x93, 0x05, 0x81, 0xa1, b'k', 0xa1, b'v', 0xa1, b'7'])
    );
}

#[test]
fn encoding_appends_and_works_through_hub_protocol() {
    let mut out = BytesMut::from(&b"xx"[..]);
    HubProtocol::MessagePack
        .encode(&HubMessage::Ping, &mut out)
        .unwrap();
    encode(&HubMessage::Ack(Ack { sequence_id: 1 }), &mut out).unwrap();
    assert_eq!(
        &out[..],
        [b'x', b'x', 0x02, 0x91, 0x06, 0x03, 0x92, 0x08, 0x01]
    );

    let mut decoder = HubProtocol::MessagePack.decoder(None);
    let mut buffer = out.split_off(2);
    assert_eq!(decoder.decode(&mut buffer).unwrap(), Some(HubMessage::Ping));
    assert_eq!(
        decoder.decode(&mut buffer).unwrap(),
        Some(HubMessage::Ack(Ack { sequence_id: 1 }))
    );
    assert_eq!(decoder.decode(&mut buffer).unwrap(), None);
}

#[test]
fn unrepresentable_messages_are_refused_and_nothing_is_written() {
    let cases = [
        (
            completion("0", CompletionResult::Error(String::new())),
            EncodeError::InvalidMessage("the error of a Completion must not be empty"),
        ),
        (
            stream_item("", int(1)),
            EncodeError::InvalidMessage("the invocation id must not be empty"),
        ),
        (
            invocation(None, "", vec![]),
            EncodeError::InvalidMessage("the target must not be empty"),
        ),
        (
            HubMessage::CancelInvocation(CancelInvocation {
                headers: vec![(String::new(), "v".into())],
                invocation_id: "1".into(),
            }),
            EncodeError::InvalidMessage("header names and values must not be empty"),
        ),
    ];
    for (message, error) in cases {
        let mut out = BytesMut::from(&b"keep"[..]);
        assert_eq!(encode(&message, &mut out), Err(error));
        assert_eq!(&out[..], b"keep");
    }

    // A payload that fails to serialize.
    let bad = invocation(
        None,
        "m",
        vec![
            int(1),
            Payload::from_json_bytes(Bytes::from_static(b"{nope")),
        ],
    );
    let mut out = BytesMut::from(&b"keep"[..]);
    assert!(matches!(encode(&bad, &mut out), Err(EncodeError::Value(_))));
    assert_eq!(&out[..], b"keep");
}

#[test]
fn payloads_of_every_origin_are_written_as_msgpack() {
    #[derive(serde::Serialize)]
    struct Point {
        #[serde(rename = "X")]
        x: i32,
    }
    let message = invocation(
        None,
        "m",
        vec![
            Payload::from_value(Point { x: 1 }),
            Payload::from_json_bytes(Bytes::from_static(b"[true,null]")),
            raw(&[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
        ],
    );
    let bytes = encoded(&message);
    assert_eq!(
        bytes,
        frame(&[
            0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x93, 0x81, 0xa1, b'X', 0x01, 0x92, 0xc3, 0xc0,
            0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x90
        ])
    );
    let HubMessage::Invocation(decoded) = decode_one(&bytes).unwrap() else {
        panic!("not an invocation");
    };
    assert_eq!(json_of(&decoded.arguments[0]), serde_json::json!({"X": 1}));
    assert_eq!(
        json_of(&decoded.arguments[1]),
        serde_json::json!([true, null])
    );
    assert_eq!(json_of(&decoded.arguments[2]), serde_json::json!(1.5));
}

// ---------------------------------------------------------------- VarInt

/// A StreamItem whose body is exactly `len` bytes (len >= 8): a bin item
/// padded to fit.
fn stream_item_with_body_len(len: usize) -> (HubMessage, Vec<u8>) {
    let mut body = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
    let data_len = len - body.len();
    let mut item = Vec::new();
    if data_len - 2 <= 0xff {
        item.push(0xc4);
        item.push((data_len - 2) as u8);
    } else if data_len - 3 <= 0xffff {
        item.push(0xc5);
        item.extend_from_slice(&((data_len - 3) as u16).to_be_bytes());
    } else {
        item.push(0xc6);
        item.extend_from_slice(&((data_len - 5) as u32).to_be_bytes());
    }
    item.resize(data_len, 0x55);
    body.extend_from_slice(&item);
    assert_eq!(body.len(), len);
    let payload = Payload::from_msgpack_bytes(Bytes::from(item));
    (stream_item("0", payload), body)
}

#[test]
fn varint_prefix_of_0x1480_is_80_29() {
    let (message, body) = stream_item_with_body_len(0x1480);
    let bytes = encoded(&message);
    assert_eq!(&bytes[..2], [0x80, 0x29]);
    assert_eq!(&bytes[2..], &body[..]);
    assert_eq!(decode_one(&bytes).unwrap(), message);
}

#[test]
fn varint_boundaries_encode_and_decode() {
    for (len, prefix) in [
        (8, vec![0x08]),
        (127, vec![0x7f]),
        (128, vec![0x80, 0x01]),
        (16_383, vec![0xff, 0x7f]),
        (16_384, vec![0x80, 0x80, 0x01]),
        (2_097_151, vec![0xff, 0xff, 0x7f]),
        (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
    ] {
        let (message, body) = stream_item_with_body_len(len);
        let mut expected = prefix.clone();
        expected.extend_from_slice(&body);
        let bytes = encoded(&message);
        assert_eq!(&bytes[..prefix.len()], &prefix[..], "{len}");
        assert_eq!(bytes, expected, "{len}");
        assert_eq!(decode_one(&bytes).unwrap(), message, "{len}");
    }
}

#[test]
fn varint_prefix_limits() {
    let decode = |bytes: &[u8], limit: Option<usize>| {
        let mut buffer = BytesMut::from(bytes);
        MessagePackDecoder::new(limit).decode(&mut buffer)
    };
    // The largest prefix, 2^31 - 1, is valid: the body is awaited.
    assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, 0x07], None), Ok(None));
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff, 0x07], Some(1 << 30)),
        Err(ProtocolError::MessageTooLarge { limit: 1 << 30 })
    );
    // 2^31 and more: over 2 GB
    assert_eq!(
        decode(&[0x80, 0x80, 0x80, 0x80, 0x08], None),
        Err(ProtocolError::InvalidLengthPrefix)
    );
    assert_eq!(
        decode(&[0xff, 0xff, 0xff, 0xff, 0x0f], None),
        Err(ProtocolError::InvalidLengthPrefix)
    );
    // a sixth byte
    assert_eq!(
        decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], None),
        Err(ProtocolError::InvalidLengthPrefix)
    );
    // an incomplete prefix waits for more
    for len in 0..5 {
        let prefix = vec![0x80; len];
        assert_eq!(decode(&prefix, None), Ok(None), "{len}");
    }
    // a zero-length body is not a message
    assert!(matches!(
        decode(&[0x00], None),
        Err(ProtocolError::InvalidMessagePack(_))
    ));
    // non-minimal prefixes are accepted, as the reference readers do
    assert_eq!(
        decode(&[0x82, 0x00, 0x91, 0x06], None),
        Ok(Some(HubMessage::Ping))
    );
}

#[test]
fn size_limit_counts_the_body() {
    let ping = frame(&[0x91, 0x06]);
    let mut buffer = BytesMut::from(&ping[..]);
    assert_eq!(
        MessagePackDecoder::new(Some(2)).decode(&mut buffer),
        Ok(Some(HubMessage::Ping))
    );
    let mut buffer = BytesMut::from(&ping[..]);
    assert_eq!(
        MessagePackDecoder::new(Some(1)).decode(&mut buffer),
        Err(ProtocolError::MessageTooLarge { limit: 1 })
    );
}

#[test]
fn a_100_mb_prefix_allocates_nothing() {
    let mut wire = varint(100 * 1024 * 1024);
    wire.extend_from_slice(&[0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0x90, 0x00, 0x00]);

    let mut buffer = BytesMut::with_capacity(64);
    buffer.extend_from_slice(&wire);
    let capacity = buffer.capacity();
    let mut decoder = MessagePackDecoder::new(None);
    assert_eq!(decoder.decode(&mut buffer), Ok(None));
    assert_eq!(decoder.decode(&mut buffer), Ok(None));
    assert_eq!(buffer.capacity(), capacity);
    assert_eq!(&buffer[..], &wire[..]);

    let mut buffer = BytesMut::from(&wire[..]);
    assert_eq!(
        MessagePackDecoder::new(Some(32_768)).decode(&mut buffer),
        Err(ProtocolError::MessageTooLarge { limit: 32_768 })
    );
}

// -------------------------------------------------------- stream handling

#[test]
fn messages_split_at_every_byte_and_merged() {
    let messages = vec![
        invocation(Some("0"), "Send", vec![int(1), Payload::from_value("a")]),
        HubMessage::Ping,
        completion("0", CompletionResult::Value(int(300))),
        close(Some("bye"), true),
    ];
    let mut wire = Vec::new();
    for message in &messages {
        wire.extend_from_slice(&encoded(message));
    }
    for cut in 0..=wire.len() {
        let mut decoder = MessagePackDecoder::new(Some(1024));
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for chunk in [&wire[..cut], &wire[cut..]] {
            buffer.extend_from_slice(chunk);
            while let Some(message) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
        }
        assert_eq!(decoded, messages, "cut at {cut}");
        assert!(buffer.is_empty());
    }
}

#[test]
fn unknown_message_types_are_skipped() {
    let mut wire = Vec::new();
    wire.extend_from_slice(&frame(&[0x92, 0x0a, 0x80])); // type 10
    wire.extend_from_slice(&frame(&[0x91, 0x00])); // type 0
    wire.extend_from_slice(&frame(&[0x91, 0xff])); // type -1
    wire.extend_from_slice(&frame(&[0x91, 0xcd, 0x01, 0x00])); // type 256
    wire.extend_from_slice(&frame(&[0x93, 0x63, 0xa1, b'x', 0xc1])); // type 99, odd body
    wire.extend_from_slice(&frame(&[0x91, 0x06]));
    wire.extend_from_slice(&frame(&[0x92, 0x0b, 0x01])); // type 11, nothing after
    assert_eq!(decode_all(&wire).unwrap(), vec![HubMessage::Ping]);
}

#[test]
fn optional_tails_and_extra_elements() {
    // JS: Invocation without streamIds, Close without allowReconnect
    assert_eq!(
        decode_body(&[0x95, 0x04, 0x80, 0xa1, b'2', 0xa1, b'm', 0x90]).unwrap(),
        HubMessage::StreamInvocation(StreamInvocation {
            headers: Vec::new(),
            invocation_id: "2".into(),
            target: "m".into(),
            arguments: Vec::new(),
            stream_ids: Vec::new(),
        })
    );
    // stream ids present
    assert_eq!(
        decode_body(&[
            0x96, 0x01, 0x80, 0xa1, b'1', 0xa1, b'm', 0x90, 0x92, 0xa1, b'a', 0xa1, b'b'
        ])
        .unwrap(),
        HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "m".into(),
            stream_ids: vec!["a".into(), "b".into()],
            ..Invocation::default()
        })
    );
    // elements past the layout are ignored, as the .NET server does
    assert_eq!(
        decode_body(&[0x93, 0x06, 0x01, 0x02]).unwrap(),
        HubMessage::Ping
    );
    assert_eq!(
        decode_body(&[
            0x95, 0x02, 0x80, 0xa1, b'0', 0x2a, 0xa5, b'e', b'x', b't', b'r', b'a'
        ])
        .unwrap(),
        stream_item("0", int(42))
    );
    assert_eq!(
        decode_body(&[0x94, 0x07, 0xc0, 0xc3, 0xa1, b'x']).unwrap(),
        close(None, true)
    );
    assert_eq!(
        decode_body(&[0x97, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0x90, 0x01]).unwrap(),
        invocation(None, "m", vec![])
    );
    // an array32 header claiming far more elements than present: the
    // fields that are present are read and the claim is never trusted
    assert_eq!(
        decode_body(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x06]).unwrap(),
        HubMessage::Ping
    );
    // "" is fire-and-forget, like nil
    assert_eq!(
        decode_body(&[0x95, 0x01, 0x80, 0xa0, 0xa1, b'm', 0x90]).unwrap(),
        invocation(None, "m", vec![])
    );
    // an empty error in Close is still an error (.NET)
    assert_eq!(
        decode_body(&[0x92, 0x07, 0xa0]).unwrap(),
        close(Some(""), false)
    );
    // sequence ids in other widths, and headers in a map16
    assert_eq!(
        decode_body(&[0x92, 0x08, 0xd3, 0, 0, 0, 0, 0, 0, 0x01, 0x00]).unwrap(),
        HubMessage::Ack(Ack { sequence_id: 256 })
    );
    assert_eq!(
        decode_body(&[
            0x93, 0x05, 0xde, 0x00, 0x01, 0xa1, b'k', 0xa1, b'v', 0xa1, b'1'
        ])
        .unwrap(),
        HubMessage::CancelInvocation(CancelInvocation {
            headers: vec![("k".into(), "v".into())],
            invocation_id: "1".into(),
        })
    );
}

// ------------------------------------------------------- malformed input

#[test]
fn incomplete_input_waits() {
    for wire in [
        &[][..],
        &[0x80],                         // truncated prefix
        &[0x05, 0x94, 0x02],             // truncated body
        &[0x09, 0x95, 0x01, 0x80, 0xa1], // truncated body
    ] {
        let mut buffer = BytesMut::from(wire);
        assert_eq!(
            MessagePackDecoder::new(None).decode(&mut buffer),
            Ok(None),
            "{wire:02x?}"
        );
        assert_eq!(&buffer[..], wire, "the buffer is left alone");
    }
}

#[test]
fn malformed_bodies_give_typed_errors() {
    use ProtocolError::*;
    let wrong = |field, expected| WrongFieldType { field, expected };
    let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
        ("empty array", vec![0x90], MissingField("type")),
        (
            "type not an int",
            vec![0x91, 0xa1, b'1'],
            wrong("type", "Int32"),
        ),
        (
            "type a float",
            vec![0x91, 0xca, 0x3f, 0x80, 0, 0],
            wrong("type", "Int32"),
        ),
        (
            "type truncated",
            vec![0x91, 0xcd, 0x01],
            InvalidMessagePack("unexpected end of message in 'type'".into()),
        ),
        ("no headers", vec![0x91, 0x01], MissingField("headers")),
        (
            "no invocation id",
            vec![0x92, 0x01, 0x80],
            MissingField("invocationId"),
        ),
        (
            "no target",
            vec![0x93, 0x01, 0x80, 0xc0],
            MissingField("target"),
        ),
        (
            "no arguments",
            vec![0x94, 0x01, 0x80, 0xc0, 0xa1, b'm'],
            MissingField("arguments"),
        ),
        (
            "no item",
            vec![0x93, 0x02, 0x80, 0xa1, b'0'],
            MissingField("item"),
        ),
        (
            "no result kind",
            vec![0x93, 0x03, 0x80, 0xa1, b'0'],
            MissingField("resultKind"),
        ),
        (
            "no result",
            vec![0x94, 0x03, 0x80, 0xa1, b'0', 0x03],
            MissingField("result"),
        ),
        (
            "no error",
            vec![0x94, 0x03, 0x80, 0xa1, b'0', 0x01],
            MissingField("error"),
        ),
        ("no close error", vec![0x91, 0x07], MissingField("error")),
        (
            "no sequence id",
            vec![0x91, 0x08],
            MissingField("sequenceId"),
        ),
        (
            "no cancel id",
            vec![0x92, 0x05, 0x80],
            MissingField("invocationId"),
        ),
        (
            "target not a string",
            vec![0x95, 0x01, 0x80, 0xc0, 0x05, 0x90],
            wrong("target", "String"),
        ),
        (
            "target nil",
            vec![0x95, 0x01, 0x80, 0xc0, 0xc0, 0x90],
            wrong("target", "String"),
        ),
        (
            "target empty",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa0, 0x90],
            InvalidMessage("Null or empty target for Invocation message."),
        ),
        (
            "target not UTF-8",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa2, 0xc3, 0x28, 0x90],
            InvalidMessagePack("invalid UTF-8 in 'target'".into()),
        ),
        (
            "arguments not an array",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x05],
            wrong("arguments", "Array"),
        ),
        (
            "arguments a map",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x80],
            wrong("arguments", "Array"),
        ),
        (
            "headers not a map",
            vec![0x95, 0x01, 0x90, 0xc0, 0xa1, b'm', 0x90],
            wrong("headers", "Map of String to String"),
        ),
        (
            "header value not a string",
            vec![0x95, 0x01, 0x81, 0xa1, b'k', 0x01, 0xc0, 0xa1, b'm', 0x90],
            wrong("headers", "Map of String to String"),
        ),
        (
            "header key not a string",
            vec![0x95, 0x01, 0x81, 0x01, 0xa1, b'v', 0xc0, 0xa1, b'm', 0x90],
            wrong("headers", "Map of String to String"),
        ),
        (
            "header value empty",
            vec![0x95, 0x01, 0x81, 0xa1, b'k', 0xa0, 0xc0, 0xa1, b'm', 0x90],
            InvalidMessage("Null or empty key or value in header."),
        ),
        (
            "map32 of headers claiming 4 billion pairs",
            vec![0x92, 0x05, 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'k'],
            InvalidMessagePack("unexpected end of message in 'headers'".into()),
        ),
        (
            "invocation id not a string",
            vec![0x95, 0x01, 0x80, 0x01, 0xa1, b'm', 0x90],
            wrong("invocationId", "String or nil"),
        ),
        (
            "stream invocation without id",
            vec![0x95, 0x04, 0x80, 0xc0, 0xa1, b'm', 0x90],
            InvalidMessage("Null or empty invocation ID for StreamInvocation message."),
        ),
        (
            "stream item with empty id",
            vec![0x94, 0x02, 0x80, 0xa0, 0x01],
            InvalidMessage("Null or empty invocation ID for StreamItem message."),
        ),
        (
            "completion without id",
            vec![0x94, 0x03, 0x80, 0xc0, 0x02],
            InvalidMessage("Null or empty invocation ID for Completion message."),
        ),
        (
            "cancel without id",
            vec![0x93, 0x05, 0x80, 0xc0],
            InvalidMessage("Null or empty invocation ID for CancelInvocation message."),
        ),
        (
            "stream ids not an array",
            vec![0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0xa1, b'0'],
            wrong("streamIds", "Array of String"),
        ),
        (
            "stream id not a string",
            vec![0x96, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x90, 0x91, 0x00],
            wrong("streamIds", "Array of String"),
        ),
        (
            "result kind 4",
            vec![0x95, 0x03, 0x80, 0xa1, b'0', 0x04, 0x2a],
            InvalidMessage("Invalid invocation result kind."),
        ),
        (
            "result kind 0",
            vec![0x94, 0x03, 0x80, 0xa1, b'0', 0x00],
            InvalidMessage("Invalid invocation result kind."),
        ),
        (
            "result kind a string",
            vec![0x94, 0x03, 0x80, 0xa1, b'0', 0xa1, b'3'],
            wrong("resultKind", "Int32"),
        ),
        (
            "error not a string",
            vec![0x95, 0x03, 0x80, 0xa1, b'0', 0x01, 0x2a],
            wrong("error", "String"),
        ),
        (
            "close error not a string",
            vec![0x92, 0x07, 0x01],
            wrong("error", "String or nil"),
        ),
        (
            "allowReconnect not a bool",
            vec![0x93, 0x07, 0xc0, 0x01],
            wrong("allowReconnect", "Boolean"),
        ),
        (
            "negative sequence id",
            vec![0x92, 0x08, 0xff],
            wrong("sequenceId", "UInt64"),
        ),
        (
            "negative int64 sequence id",
            vec![0x92, 0x09, 0xd3, 0xff, 0, 0, 0, 0, 0, 0, 0],
            wrong("sequenceId", "UInt64"),
        ),
        (
            "sequence id a string",
            vec![0x92, 0x09, 0xa1, b'1'],
            wrong("sequenceId", "UInt64"),
        ),
        (
            "item truncated",
            vec![0x94, 0x02, 0x80, 0xa1, b'0', 0xcd, 0x01],
            InvalidMessagePack("unexpected end of message in 'item'".into()),
        ),
        (
            "argument truncated string",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x91, 0xa5, b'a'],
            InvalidMessagePack("unexpected end of message in 'arguments'".into()),
        ),
        (
            "argument with the reserved marker",
            vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x91, 0x91, 0xc1],
            InvalidMessagePack("the reserved marker 0xc1 appears in 'arguments'".into()),
        ),
        (
            "arguments array32 claiming 4 billion elements",
            vec![
                0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x2a,
            ],
            InvalidMessagePack("unexpected end of message in 'arguments'".into()),
        ),
        (
            "argument array32 claiming 4 billion elements",
            vec![
                0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x2a,
            ],
            InvalidMessagePack("unexpected end of message in 'arguments'".into()),
        ),
        (
            "item str32 claiming 4 GB",
            vec![
                0x94, 0x02, 0x80, 0xa1, b'0', 0xdb, 0xff, 0xff, 0xff, 0xff, b'a',
            ],
            InvalidMessagePack("unexpected end of message in 'item'".into()),
        ),
        (
            "item ext32 claiming 4 GB",
            vec![
                0x94, 0x02, 0x80, 0xa1, b'0', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            InvalidMessagePack("unexpected end of message in 'item'".into()),
        ),
        (
            "item map32 claiming 4 billion pairs",
            vec![0x94, 0x02, 0x80, 0xa1, b'0', 0xdf, 0xff, 0xff, 0xff, 0xff],
            InvalidMessagePack("unexpected end of message in 'item'".into()),
        ),
    ];
    for (name, body, expected) in cases {
        assert_eq!(decode_body_err(&body), expected, "{name}");
    }
}

#[test]
fn bodies_that_are_not_arrays() {
    for body in [&[0x2a][..], &[0x80], &[0xa1, b'x'], &[0xc0], &[0xc1]] {
        assert!(
            matches!(decode_body_err(body), ProtocolError::InvalidMessagePack(_)),
            "{body:02x?}"
        );
    }
    // a truncated array header
    assert_eq!(
        decode_body_err(&[0xdc, 0x00]),
        ProtocolError::InvalidMessagePack("empty message".into())
    );
}

#[test]
fn an_error_leaves_later_messages_in_the_buffer() {
    let mut wire = frame(&[0x90]);
    wire.extend_from_slice(&frame(&[0x91, 0x06]));
    let mut buffer = BytesMut::from(&wire[..]);
    let mut decoder = MessagePackDecoder::new(None);
    assert_eq!(
        decoder.decode(&mut buffer),
        Err(ProtocolError::MissingField("type"))
    );
    assert_eq!(&buffer[..], [0x02, 0x91, 0x06]);
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    const DEPTH: usize = 10_000;
    let mut body = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'm', 0x91];
    body.extend(std::iter::repeat_n(0x91, DEPTH));
    body.push(0x01);
    assert_eq!(
        decode_body_err(&body),
        ProtocolError::InvalidMessagePack("'arguments' is nested more than 128 levels deep".into())
    );

    // the same with maps, unterminated
    let mut body = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
    for _ in 0..DEPTH {
        body.extend_from_slice(&[0x81, 0xa0]);
    }
    assert_eq!(
        decode_body_err(&body),
        ProtocolError::InvalidMessagePack("'item' is nested more than 128 levels deep".into())
    );
    // a claimed array of 4 billion elements under deep nesting
    let mut body = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
    body.extend(std::iter::repeat_n(0x91, 100));
    body.extend_from_slice(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(
        decode_body_err(&body),
        ProtocolError::InvalidMessagePack("unexpected end of message in 'item'".into())
    );
}

#[test]
fn nesting_up_to_the_limit_deserializes() {
    for depth in [100, 128] {
        let mut body = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
        body.extend(std::iter::repeat_n(0x91, depth));
        body.push(0x07);
        let HubMessage::StreamItem(item) = decode_body(&body).unwrap() else {
            panic!("not a stream item");
        };
        let mut value = item.item.deserialize::<serde_json::Value>().unwrap();
        for _ in 0..depth {
            value = value.as_array().unwrap()[0].clone();
        }
        assert_eq!(value, serde_json::json!(7));
        // re-encoding copies the bytes without looking inside
        assert_eq!(encoded(&HubMessage::StreamItem(item)), frame(&body));
    }
    let mut body = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
    body.extend(std::iter::repeat_n(0x91, 129));
    body.push(0x07);
    assert!(matches!(
        decode_body_err(&body),
        ProtocolError::InvalidMessagePack(_)
    ));
}

#[test]
fn fuzz_entry_point_survives_hostile_input() {
    let mut hostile = vec![
        vec![],
        vec![0xff; 64],
        vec![0x80, 0x80, 0x80, 0x80, 0x08],
        frame(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
        encoded(&invocation(Some("0"), "m", vec![int(1)])),
    ];
    let mut deep = vec![0x94, 0x02, 0x80, 0xa1, b'0'];
    deep.extend(std::iter::repeat_n(0x91, 20_000));
    deep.push(0x01);
    hostile.push(frame(&deep));
    for input in hostile {
        fuzz_decode(&input);
    }
}

// ------------------------------------------------------------- proptest

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((".{0,8}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    json_value().prop_map(Payload::from_value)
}

fn name() -> impl Strategy<Value = String> {
    ".{1,16}"
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((name(), name()), 0..3)
}

fn hub_message() -> impl Strategy<Value = HubMessage> {
    let completion_result = prop_oneof![
        name().prop_map(CompletionResult::Error),
        Just(CompletionResult::Void),
        payload().prop_map(CompletionResult::Value),
    ];
    prop_oneof![
        (
            headers(),
            prop::option::of(name()),
            name(),
            prop::collection::vec(payload(), 0..4),
            prop::collection::vec(name(), 0..3)
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
            headers(),
            name(),
            name(),
            prop::collection::vec(payload(), 0..4),
            prop::collection::vec(name(), 0..3)
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
        (headers(), name(), payload()).prop_map(|(headers, invocation_id, item)| {
            HubMessage::StreamItem(StreamItem {
                headers,
                invocation_id,
                item,
            })
        }),
        (headers(), name(), completion_result).prop_map(|(headers, invocation_id, result)| {
            HubMessage::Completion(Completion {
                headers,
                invocation_id,
                result,
            })
        }),
        (headers(), name()).prop_map(|(headers, invocation_id)| {
            HubMessage::CancelInvocation(CancelInvocation {
                headers,
                invocation_id,
            })
        }),
        Just(HubMessage::Ping),
        (prop::option::of(name()), any::<bool>()).prop_map(|(error, allow_reconnect)| {
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
    fn encode_then_decode_is_identity(
        messages in prop::collection::vec(hub_message(), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let mut wire = BytesMut::new();
        for message in &messages {
            encode(message, &mut wire).unwrap();
        }
        let wire = wire.freeze();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cuts.push(0);
        cuts.push(wire.len());
        cuts.sort_unstable();

        let mut decoder = MessagePackDecoder::new(None);
        let mut buffer = BytesMut::new();
        let mut decoded = Vec::new();
        for pair in cuts.windows(2) {
            buffer.extend_from_slice(&wire[pair[0]..pair[1]]);
            while let Some(message) = decoder.decode(&mut buffer).unwrap() {
                decoded.push(message);
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(&decoded, &messages);

        // Re-encoding the decoded messages (payloads now raw MessagePack
        // slices) gives the same bytes.
        let mut again = BytesMut::new();
        for message in &decoded {
            encode(message, &mut again).unwrap();
        }
        prop_assert_eq!(&again[..], &wire[..]);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..256)) {
        fuzz_decode(&data);
        let mut buffer = BytesMut::from(&data[..]);
        let mut decoder = MessagePackDecoder::new(Some(4096));
        while let Ok(Some(_)) = decoder.decode(&mut buffer) {}
    }

    #[test]
    fn decoding_mutated_messages_never_panics(
        message in hub_message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut wire = BytesMut::new();
        encode(&message, &mut wire).unwrap();
        let mut data = wire.to_vec();
        for (index, byte) in flips {
            let i = index.index(data.len());
            data[i] = byte;
        }
        fuzz_decode(&data);
    }
}
