#![no_main]
//! Structure-aware: a whole connection's inbound byte stream, as a server
//! reads it — a handshake request (well-formed for a protocol the fuzzer
//! picks, or arbitrary bytes), then messages — fed in chunks of sizes the
//! fuzzer picks to the incremental handshake parser and then to the
//! protocol's incremental decoder, every decoded message re-encoded and
//! decoded again. Never a panic; a decoded message always round-trips.
use bytes::BytesMut;
use hub_runtime::protocol::HubProtocol;
use hub_runtime::protocol::handshake::HandshakeRequest;
use libfuzzer_sys::arbitrary::{Result, Unstructured};

const LIMIT: Option<usize> = Some(32 * 1024);

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let protocol = if u.arbitrary::<bool>()? {
        HubProtocol::Json
    } else {
        HubProtocol::MessagePack
    };
    let mut stream = Vec::new();
    if u.ratio(7, 8)? {
        stream.extend_from_slice(
            format!(
                "{{\"protocol\":\"{}\",\"version\":{}}}\u{1e}",
                protocol.name(),
                u.int_in_range(0..=2)?
            )
            .as_bytes(),
        );
    }
    let chunk_sizes: Vec<u8> = u.arbitrary()?;
    stream.extend_from_slice(u.take_rest());

    let mut buffer = BytesMut::new();
    let mut decoder = protocol.decoder(LIMIT);
    let mut handshaken = false;
    let mut rest = &stream[..];
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let size = if chunk_sizes.is_empty() {
            rest.len()
        } else {
            usize::from(sizes.next().unwrap_or(1)).max(1).min(rest.len())
        };
        buffer.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        if !handshaken {
            match HandshakeRequest::decode(&mut buffer, LIMIT) {
                Ok(Some(_)) => handshaken = true,
                Ok(None) => continue,
                // The server answers with an error and closes.
                Err(_) => return Ok(()),
            }
        }
        loop {
            match decoder.decode(&mut buffer) {
                Ok(Some(message)) => round_trip(protocol, &message),
                Ok(None) => break,
                // The connection would be closed here.
                Err(_) => return Ok(()),
            }
        }
    }
    Ok(())
}

/// JSON: a decoded message encodes and decodes to itself. MessagePack
/// (whose payloads are copied verbatim, as the decoder's own fuzz target
/// treats them): encoding may refuse, a written message must read back.
fn round_trip(protocol: HubProtocol, message: &hub_runtime::protocol::HubMessage) {
    let mut wire = BytesMut::new();
    let encoded = protocol.encode(message, &mut wire);
    let mut again = protocol.decoder(None);
    match protocol {
        HubProtocol::Json => {
            encoded.expect("a decoded JSON message encodes");
            let decoded = again
                .decode(&mut wire)
                .expect("a re-encoded message decodes")
                .expect("a re-encoded message is whole");
            assert_eq!(&decoded, message, "round trip changed the message");
        }
        _ => {
            if encoded.is_ok() {
                let _ = again.decode(&mut wire);
            }
        }
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
