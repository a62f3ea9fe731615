//! The handshake: request and response parsing, encoding, and the server's
//! protocol selection with the .NET server's texts.

// Tests may unwrap: a panic is a test failure with its message.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use hub_runtime::protocol::handshake::{
    self, HandshakeError, HandshakeRejection, HandshakeRequest, HandshakeResponse,
};
use hub_runtime::protocol::{HubProtocol, TransferFormat};

const BOTH: &[TransferFormat] = &[TransferFormat::Text, TransferFormat::Binary];
const TEXT: &[TransferFormat] = &[TransferFormat::Text];

fn request(input: &[u8]) -> Result<Option<HandshakeRequest>, HandshakeError> {
    HandshakeRequest::decode(&mut BytesMut::from(input), Some(32 * 1024))
}

fn response(input: &[u8]) -> Result<Option<HandshakeResponse>, HandshakeError> {
    HandshakeResponse::decode(&mut BytesMut::from(input))
}

fn req(protocol: &str, version: i32) -> HandshakeRequest {
    HandshakeRequest {
        protocol: protocol.into(),
        version,
    }
}

#[test]
fn client_requests_decode() {
    assert_eq!(
        request(b"{\"protocol\":\"json\",\"version\":1}\x1e"),
        Ok(Some(req("json", 1)))
    );
    assert_eq!(
        request(b"{\"protocol\":\"messagepack\",\"version\":1}\x1e"),
        Ok(Some(req("messagepack", 1)))
    );
    // Any key order, whitespace, unknown keys.
    assert_eq!(
        request(b" { \"version\" : 2 , \"extra\":[{}], \"protocol\" : \"JSON\" } \x1e"),
        Ok(Some(req("JSON", 2)))
    );
}

#[test]
fn request_takes_one_record_and_leaves_the_rest() {
    let mut buffer =
        BytesMut::from(&b"{\"protocol\":\"json\",\"version\":1}\x1e{\"type\":6}\x1e{\"type\""[..]);
    let decoded = HandshakeRequest::decode(&mut buffer, None).unwrap();
    assert_eq!(decoded, Some(req("json", 1)));
    assert_eq!(&buffer[..], b"{\"type\":6}\x1e{\"type\"");
}

#[test]
fn incomplete_request_waits() {
    let mut buffer = BytesMut::from(&b"{\"protocol\":\"json\""[..]);
    assert_eq!(HandshakeRequest::decode(&mut buffer, Some(100)), Ok(None));
    assert_eq!(&buffer[..], b"{\"protocol\":\"json\"");
    buffer.extend_from_slice(b",\"version\":1}\x1e");
    assert_eq!(
        HandshakeRequest::decode(&mut buffer, Some(100)),
        Ok(Some(req("json", 1)))
    );
    assert!(buffer.is_empty());
}

#[test]
fn oversized_request_is_refused() {
    let big = vec![b' '; 40_000];
    let mut buffer = BytesMut::from(&big[..]);
    assert_eq!(
        HandshakeRequest::decode(&mut buffer, Some(32 * 1024)),
        Err(HandshakeError::TooLarge { limit: 32 * 1024 })
    );
    assert_eq!(buffer.len(), big.len());
    // A complete record beyond the limit too.
    let mut wire = b"{\"protocol\":\"json\",\"version\":1,\"pad\":\"".to_vec();
    wire.extend(std::iter::repeat_n(b'x', 100));
    wire.extend_from_slice(b"\"}\x1e");
    assert_eq!(
        HandshakeRequest::decode(&mut BytesMut::from(&wire[..]), Some(64)),
        Err(HandshakeError::TooLarge { limit: 64 })
    );
    // Without a limit it is fine.
    assert_eq!(
        HandshakeRequest::decode(&mut BytesMut::from(&wire[..]), None),
        Ok(Some(req("json", 1)))
    );
}

#[test]
fn malformed_requests() {
    let content = "{\"version\":1}";
    assert_eq!(
        request(b"{\"version\":1}\x1e"),
        Err(HandshakeError::MissingProtocol {
            content: content.into()
        })
    );
    assert_eq!(
        request(b"{\"version\":1}\x1e").unwrap_err().to_string(),
        "Missing required property 'protocol'. Message content: {\"version\":1}"
    );
    assert_eq!(
        request(b"{\"protocol\":\"json\"}\x1e")
            .unwrap_err()
            .to_string(),
        "Missing required property 'version'. Message content: {\"protocol\":\"json\"}"
    );
    // null counts as missing, as .NET's ReadAsString/ReadAsInt32 return null.
    assert!(matches!(
        request(b"{\"protocol\":null,\"version\":1}\x1e"),
        Err(HandshakeError::MissingProtocol { .. })
    ));
    assert!(matches!(
        request(b"{\"protocol\":\"json\",\"version\":null}\x1e"),
        Err(HandshakeError::MissingVersion { .. })
    ));
    let wrong_version = HandshakeError::WrongFieldType {
        field: "version",
        expected: "Number",
    };
    for input in [
        &b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e"[..],
        b"{\"protocol\":\"json\",\"version\":1.5}\x1e",
        b"{\"protocol\":\"json\",\"version\":4294967296}\x1e",
        b"{\"protocol\":\"json\",\"version\":true}\x1e",
    ] {
        assert_eq!(request(input), Err(wrong_version.clone()));
    }
    assert_eq!(
        wrong_version.to_string(),
        "Expected 'version' to be of type Number."
    );
    assert_eq!(
        request(b"{\"protocol\":1,\"version\":1}\x1e"),
        Err(HandshakeError::WrongFieldType {
            field: "protocol",
            expected: "String"
        })
    );
    for input in [
        &b"\x1e"[..],
        b"not json\x1e",
        b"[\"json\",1]\x1e",
        b"{\"protocol\":\"json\",\"version\":1\x1e",
        b"{\"protocol\":\"json\",\"version\":1}}\x1e",
    ] {
        assert!(
            matches!(request(input), Err(HandshakeError::InvalidJson(_))),
            "{input:?}"
        );
    }
    assert_eq!(
        request(b"{\"protocol\":\"\xff\",\"version\":1}\x1e"),
        Err(HandshakeError::InvalidUtf8)
    );
}

#[test]
fn request_encoding() {
    let mut out = BytesMut::new();
    HandshakeRequest::new(HubProtocol::Json, 1).encode(&mut out);
    assert_eq!(&out[..], b"{\"protocol\":\"json\",\"version\":1}\x1e");
    out.clear();
    HandshakeRequest::new(HubProtocol::MessagePack, 2).encode(&mut out);
    assert_eq!(
        &out[..],
        b"{\"protocol\":\"messagepack\",\"version\":2}\x1e"
    );
    out.clear();
    req("we\"ird", -3).encode(&mut out);
    assert_eq!(&out[..], b"{\"protocol\":\"we\\\"ird\",\"version\":-3}\x1e");
    assert_eq!(
        HandshakeRequest::decode(&mut out, None),
        Ok(Some(req("we\"ird", -3)))
    );
}

#[test]
fn response_encoding() {
    let mut out = BytesMut::new();
    HandshakeResponse::success().encode(&mut out);
    assert_eq!(&out[..], b"{}\x1e");
    out.clear();
    HandshakeResponse::failure("The protocol 'xml' is not supported.").encode(&mut out);
    assert_eq!(
        &out[..],
        b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
    );
    out.clear();
    // .NET writes an empty error as success.
    HandshakeResponse::failure("").encode(&mut out);
    assert_eq!(&out[..], b"{}\x1e");
}

#[test]
fn responses_decode_on_the_client() {
    assert_eq!(response(b"{}\x1e"), Ok(Some(HandshakeResponse::success())));
    assert_eq!(
        response(b"{\"error\":\"nope\"}\x1e"),
        Ok(Some(HandshakeResponse::failure("nope")))
    );
    assert_eq!(
        response(b"{\"minorVersion\":1,\"error\":null}\x1e"),
        Ok(Some(HandshakeResponse::success()))
    );
    let unexpected = response(b"{\"type\":6}\x1e");
    assert_eq!(unexpected, Err(HandshakeError::UnexpectedMessage));
    assert_eq!(
        HandshakeError::UnexpectedMessage.to_string(),
        "Expected a handshake response from the server."
    );
    assert_eq!(
        response(b"{\"type\":null}\x1e"),
        Err(HandshakeError::UnexpectedMessage)
    );
    assert_eq!(
        response(b"{\"error\":5}\x1e"),
        Err(HandshakeError::WrongFieldType {
            field: "error",
            expected: "String"
        })
    );
    assert!(matches!(
        response(b"{\x1e"),
        Err(HandshakeError::InvalidJson(_))
    ));
}

#[test]
fn response_then_messages_in_one_read() {
    let mut buffer = BytesMut::from(&b"{}\x1e{\"type\":6}\x1e"[..]);
    assert_eq!(
        HandshakeResponse::decode(&mut buffer),
        Ok(Some(HandshakeResponse::success()))
    );
    assert_eq!(&buffer[..], b"{\"type\":6}\x1e");
    let mut partial = BytesMut::from(&b"{"[..]);
    assert_eq!(HandshakeResponse::decode(&mut partial), Ok(None));
}

#[test]
fn protocol_selection() {
    assert_eq!(req("json", 1).select_protocol(TEXT), Ok(HubProtocol::Json));
    assert_eq!(req("JSON", 2).select_protocol(BOTH), Ok(HubProtocol::Json));
    assert_eq!(
        req("MessagePack", 1).select_protocol(BOTH),
        Ok(HubProtocol::MessagePack)
    );
    // .NET's IsVersionSupported is `version <= 2`.
    assert_eq!(req("json", 0).select_protocol(TEXT), Ok(HubProtocol::Json));
    assert_eq!(req("json", -1).select_protocol(TEXT), Ok(HubProtocol::Json));

    let unknown = req("xml", 1).select_protocol(BOTH).unwrap_err();
    assert_eq!(unknown.to_string(), "The protocol 'xml' is not supported.");
    let version = req("Json", 3).select_protocol(BOTH).unwrap_err();
    assert_eq!(
        version.to_string(),
        "The server does not support version 3 of the 'Json' protocol."
    );
    let format = req("messagepack", 1).select_protocol(TEXT).unwrap_err();
    assert_eq!(
        format,
        HandshakeRejection::UnsupportedTransferFormat {
            protocol: HubProtocol::MessagePack
        }
    );
    assert_eq!(
        format.to_string(),
        "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."
    );
    assert_eq!(
        req("json", 1)
            .select_protocol(&[TransferFormat::Binary])
            .unwrap_err()
            .to_string(),
        "Cannot use the 'json' protocol on the current transport. The transport does not support 'Text' transfer format."
    );
    assert!(req("json", 2).wants_stateful_reconnect());
    assert!(!req("json", 1).wants_stateful_reconnect());
}

#[test]
fn server_reply_texts() {
    assert_eq!(
        HandshakeRejection::Canceled.to_string(),
        "Handshake was canceled."
    );
    assert_eq!(
        HandshakeRejection::Unexpected { detail: None }.to_string(),
        "An unexpected error occurred during connection handshake."
    );
    let missing = request(b"{\"version\":1}\x1e").unwrap_err();
    assert_eq!(
        missing.rejection(false).to_string(),
        "An unexpected error occurred during connection handshake."
    );
    assert_eq!(
        missing.rejection(true).to_string(),
        "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'protocol'. Message content: {\"version\":1}"
    );
    assert_eq!(
        HandshakeError::TooLarge { limit: 10 }.rejection(true),
        HandshakeRejection::Canceled
    );
    let mut out = BytesMut::new();
    HandshakeRejection::UnsupportedProtocol {
        protocol: "xml".into(),
    }
    .response()
    .encode(&mut out);
    assert_eq!(
        &out[..],
        b"{\"error\":\"The protocol 'xml' is not supported.\"}\x1e"
    );
}

#[test]
fn fuzz_entry_point_handles_samples() {
    for sample in [
        &b""[..],
        b"\x1e",
        b"{}\x1e",
        b"{\"protocol\":\"json\",\"version\":1}\x1e",
        b"{\"error\":\"\"}\x1e",
        b"{\"error\":\"x\",\"type\":1}\x1e",
        b"\xff\x1e",
    ] {
        handshake::fuzz_decode(sample);
    }
}
