//! Long Polling (and SSE) POST bodies as the server takes them: each body
//! is refused above [`post_body_limit`], otherwise appended to the
//! connection's read buffer and fed to the handshake parser, then to the
//! protocol's incremental decoder, with the maximum receive message size,
//! as the session does with every frame.
//!
//! The fuzzer picks the messages, bytes after them, the record limit and
//! where the stream is cut into bodies. Asserted: never a panic; a body is
//! refused only above the body limit, and the limit leaves room for
//! several whole records; between bodies the read buffer holds at most one
//! record's worth of bytes (no growth with the number of bodies); every
//! record within the record limit decodes to the message that was sent, in
//! order, whatever the body boundaries; a record above the limit is an
//! error, never buffered on.

use bytes::BytesMut;

use crate::protocol::HubMessage;
use crate::protocol::HubProtocol;
use crate::protocol::handshake::HandshakeRequest;
use crate::server::transport::long_polling::post_body_limit;

/// What became of a stream of POST bodies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PostsOutcome {
    /// Bodies accepted.
    pub accepted: usize,
    /// A body was refused (413): the client ends the connection.
    pub refused: bool,
    /// Messages decoded.
    pub decoded: usize,
    /// The connection was closed for bad input.
    pub failed: bool,
}

/// Sends `messages` (encoded with `protocol`, after a handshake for it),
/// then `tail`, as POST bodies of `body_lengths` (then one body with the
/// rest) to a server whose maximum receive message size is
/// `max_receive`, asserting the module's invariants.
pub fn long_polling_posts(
    protocol: HubProtocol,
    max_receive: Option<usize>,
    messages: &[HubMessage],
    tail: &[u8],
    body_lengths: &[u32],
) -> PostsOutcome {
    let body_limit = post_body_limit(max_receive);
    if let Some(max) = max_receive {
        assert!(
            body_limit >= max.saturating_mul(4),
            "a POST body may carry several whole records"
        );
    }

    let mut stream = BytesMut::new();
    HandshakeRequest {
        protocol: protocol.name().to_owned(),
        version: 1,
    }
    .encode(&mut stream);
    let handshake_len = stream.len();
    // Each record's length as the decoder's limit counts it.
    let mut record_sizes = Vec::with_capacity(messages.len());
    for message in messages {
        let before = stream.len();
        if protocol.encode(message, &mut stream).is_err() {
            // Not encodable (a value the protocol cannot carry): not sent.
            stream.truncate(before);
            record_sizes.push(None);
            continue;
        }
        let record = &stream[before..];
        let counted = match protocol {
            // The separator included.
            HubProtocol::Json => record.len(),
            // The body after the length prefix.
            HubProtocol::MessagePack => {
                let prefix = record.iter().take_while(|&&byte| byte & 0x80 != 0).count() + 1;
                record.len() - prefix
            }
        };
        record_sizes.push(Some(counted));
    }
    let sent: Vec<(&HubMessage, usize)> = messages
        .iter()
        .zip(&record_sizes)
        .filter_map(|(message, size)| size.map(|size| (message, size)))
        .collect();
    stream.extend_from_slice(tail);
    let stream = stream.freeze();

    let mut outcome = PostsOutcome::default();
    let mut buffer = BytesMut::new();
    let mut decoder = protocol.decoder(max_receive);
    let mut handshaken = false;
    let mut offset = 0;
    // Not cycled: the lengths may all be 0 (empty POSTs are allowed).
    let mut lengths = body_lengths.iter();
    while offset < stream.len() {
        let length = match lengths.next() {
            Some(&length) => (length as usize).min(stream.len() - offset),
            None => stream.len() - offset,
        };
        let body = &stream[offset..offset + length];
        offset += length;
        if body.len() > body_limit {
            outcome.refused = true;
            return outcome;
        }
        outcome.accepted += 1;
        buffer.extend_from_slice(body);
        if !handshaken {
            match HandshakeRequest::decode(&mut buffer, max_receive) {
                Ok(Some(request)) => {
                    assert_eq!(
                        request.protocol,
                        protocol.name(),
                        "the handshake names the protocol sent"
                    );
                    handshaken = true;
                }
                Ok(None) => continue,
                Err(_) => {
                    assert!(
                        max_receive.is_some_and(|max| handshake_len > max),
                        "a well-formed handshake within the limit is accepted"
                    );
                    outcome.failed = true;
                    return outcome;
                }
            }
        }
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => {
                    let Some(&(expected, size)) = sent.get(outcome.decoded) else {
                        // Decoded from the fuzzer's tail bytes.
                        outcome.decoded += 1;
                        continue;
                    };
                    assert!(
                        max_receive.is_none_or(|max| size <= max),
                        "a record above the limit is never decoded"
                    );
                    assert_eq!(
                        message.type_id(),
                        expected.type_id(),
                        "records decode to the messages sent, in order"
                    );
                    if let (HubMessage::Invocation(got), HubMessage::Invocation(sent)) =
                        (&message, expected)
                    {
                        assert_eq!(got.target, sent.target, "an invocation keeps its target");
                        assert_eq!(
                            got.invocation_id, sent.invocation_id,
                            "an invocation keeps its id"
                        );
                        assert_eq!(
                            got.arguments.len(),
                            sent.arguments.len(),
                            "an invocation keeps its arguments"
                        );
                    }
                    outcome.decoded += 1;
                }
                Ok(None) => break,
                Err(_) => {
                    if let Some(&(_, size)) = sent.get(outcome.decoded) {
                        assert!(
                            max_receive.is_some_and(|max| size > max),
                            "a record within the limit ({size} bytes, limit {max_receive:?}) decodes, whatever the body boundaries"
                        );
                    }
                    outcome.failed = true;
                    return outcome;
                }
            }
        }
        if let Some(max) = max_receive {
            // A MessagePack length prefix (at most 5 bytes) is not counted.
            assert!(
                buffer.len() <= max + 5,
                "between bodies the server holds at most one record ({} bytes buffered, limit {max})",
                buffer.len()
            );
        }
    }
    if handshaken && !outcome.failed && outcome.decoded < sent.len() {
        panic!(
            "every record sent whole was decoded ({} of {})",
            outcome.decoded,
            sent.len()
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Invocation, Payload};

    fn invocation(target: &str, text_len: usize) -> HubMessage {
        HubMessage::Invocation(Invocation {
            target: target.to_owned(),
            invocation_id: Some("1".to_owned()),
            arguments: vec![Payload::from_value("x".repeat(text_len))],
            ..Invocation::default()
        })
    }

    #[test]
    fn records_spanning_bodies_decode_and_large_bodies_are_refused() {
        for protocol in [HubProtocol::Json, HubProtocol::MessagePack] {
            let messages = [invocation("A", 10), HubMessage::Ping, invocation("B", 3000)];
            let outcome =
                long_polling_posts(protocol, Some(32 * 1024), &messages, b"", &[1, 7, 100]);
            assert_eq!(outcome.decoded, 3, "{protocol:?}: every record decodes");
            assert!(!outcome.failed && !outcome.refused);

            let too_large = [invocation("A", 40 * 1024)];
            let outcome = long_polling_posts(protocol, Some(32 * 1024), &too_large, b"", &[4096]);
            assert!(
                outcome.failed,
                "{protocol:?}: a record above the limit fails"
            );

            // Empty POST bodies are allowed; lengths that are all 0 end
            // (the first fuzzing run of this driver hung on them).
            let outcome = long_polling_posts(protocol, Some(32 * 1024), &messages, b"", &[0, 0]);
            assert_eq!(
                outcome.decoded, 3,
                "{protocol:?}: the rest comes in one body"
            );
            assert_eq!(
                outcome.accepted, 3,
                "{protocol:?}: two empty bodies, then the rest"
            );

            let huge_body = [invocation("A", 200 * 1024)];
            let outcome = long_polling_posts(protocol, Some(32 * 1024), &huge_body, b"", &[]);
            assert!(
                outcome.refused,
                "{protocol:?}: a body above the body limit is refused"
            );
        }
    }
}
