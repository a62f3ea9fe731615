#![no_main]
//! Structure-aware (`arbitrary`): Long Polling / SSE POST bodies as the
//! server takes them — messages the fuzzer builds (invocations with
//! arguments of chosen sizes, stream items, completions, pings, acks, …),
//! encoded in either protocol after a handshake, followed by raw bytes, cut
//! into bodies of fuzzed lengths, with a fuzzed maximum receive message
//! size. `hub_runtime::__fuzz::long_polling` runs them through the server's
//! body limit, handshake parser and incremental decoder and asserts: a body
//! is refused only above the body limit; between bodies at most one
//! record's bytes are held; every record within the limit decodes to the
//! message sent, in order; a record above it is an error.
use hub_runtime::__fuzz::long_polling::long_polling_posts;
use hub_runtime::protocol::{
    Ack, CancelInvocation, Completion, CompletionResult, HubMessage, HubProtocol, Invocation,
    Payload, Sequence, StreamItem,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let short: String = u.arbitrary()?;
    // Sometimes long: records near and above the limits, cheaply.
    // Rarely: a long text costs milliseconds per run.
    if u.ratio(1, 32)? {
        // At most about 200 KB (above the 128 KiB body limit of the
        // default record limit), without building more first.
        let repeat = (usize::from(u.arbitrary::<u16>()?) * 4).min(200_000 / short.len().max(1));
        Ok(short.repeat(repeat.max(1)))
    } else {
        Ok(short)
    }
}

fn payload(u: &mut Unstructured<'_>) -> Result<Payload> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Payload::from_value(u.arbitrary::<i64>()?),
        1 => Payload::from_value(text(u)?),
        2 => Payload::from_value(u.arbitrary::<Vec<Option<bool>>>()?),
        _ => Payload::null(),
    })
}

fn invocation_id(u: &mut Unstructured<'_>) -> Result<Option<String>> {
    Ok(if u.arbitrary()? {
        Some(u.int_in_range(0..=9999_u32)?.to_string())
    } else {
        None
    })
}

fn message(u: &mut Unstructured<'_>) -> Result<HubMessage> {
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => {
            let mut arguments = Vec::new();
            for _ in 0..u.int_in_range(0..=3)? {
                arguments.push(payload(u)?);
            }
            HubMessage::Invocation(Invocation {
                invocation_id: invocation_id(u)?,
                target: text(u)?.chars().take(64).collect(),
                arguments,
                ..Invocation::default()
            })
        }
        2 => HubMessage::StreamItem(StreamItem {
            invocation_id: u.int_in_range(0..=9999_u32)?.to_string(),
            item: payload(u)?,
            headers: Vec::new(),
        }),
        3 => HubMessage::Completion(Completion {
            invocation_id: u.int_in_range(0..=9999_u32)?.to_string(),
            result: match u.int_in_range(0..=2)? {
                0 => CompletionResult::Error(text(u)?),
                1 => CompletionResult::Value(payload(u)?),
                _ => CompletionResult::Void,
            },
            headers: Vec::new(),
        }),
        4 => HubMessage::CancelInvocation(CancelInvocation {
            invocation_id: u.int_in_range(0..=9999_u32)?.to_string(),
            ..CancelInvocation::default()
        }),
        5 => HubMessage::Ack(Ack {
            sequence_id: u.arbitrary()?,
        }),
        6 => HubMessage::Sequence(Sequence {
            sequence_id: u.arbitrary()?,
        }),
        _ => HubMessage::Ping,
    })
}

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let protocol = if u.arbitrary::<bool>()? {
        HubProtocol::Json
    } else {
        HubProtocol::MessagePack
    };
    let max_receive = match u.int_in_range(0..=3)? {
        // The default (32 KiB).
        0 => Some(32 * 1024),
        1 => None,
        _ => Some(usize::from(u.arbitrary::<u16>()?)),
    };
    let mut messages = Vec::new();
    for _ in 0..u.int_in_range(0..=12)? {
        messages.push(message(&mut u)?);
    }
    let mut body_lengths = Vec::new();
    for _ in 0..u.int_in_range(0..=24)? {
        body_lengths.push(if u.ratio(1, 4)? {
            u.int_in_range(0..=400_000)?
        } else {
            u.int_in_range(0..=300)?
        });
    }
    let tail = u.take_rest();
    long_polling_posts(protocol, max_receive, &messages, tail, &body_lengths);
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
