#![no_main]
//! Structure-aware (`arbitrary`): stateful reconnect's Sequence/Ack
//! interleavings — random steps (the hub sends, either side reads, Acks,
//! the client sends, cuts, resumes, hostile Sequences) on the server's own
//! `ReplayBuffer`, `InboundSequence` and `Sequencing` against a model of the
//! official clients, with a fuzzed replay-buffer bound.
//! `hub_runtime::__fuzz::stateful` asserts after every step: nothing
//! processed twice, nothing lost (a final reconnect delivers everything,
//! both ways), no Sequence the client would give up on, the replay buffer
//! within its byte bound and holding exactly the unacknowledged records.
use hub_runtime::__fuzz::stateful::{StatefulStep, stateful_interleaving};
use libfuzzer_sys::arbitrary::{Result, Unstructured};

fn step(u: &mut Unstructured<'_>) -> Result<StatefulStep> {
    Ok(match u.int_in_range(0..=9)? {
        0 | 1 => StatefulStep::ServerSends {
            len: u.int_in_range(0..=2048)?,
        },
        2 => StatefulStep::ClientReads(u.arbitrary()?),
        3 => StatefulStep::ClientAcks,
        4 => StatefulStep::ClientSends,
        5 => StatefulStep::ServerReads(u.arbitrary()?),
        6 => StatefulStep::ServerAckTick,
        7 => StatefulStep::Cut,
        8 => StatefulStep::Resume,
        _ => StatefulStep::HostileSequence(if u.arbitrary()? {
            u.int_in_range(0..=64)?
        } else {
            u.arbitrary()?
        }),
    })
}

fn run(mut u: Unstructured<'_>) -> Result<()> {
    let limit = usize::from(u.int_in_range(0..=8192_u16)?);
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < 4096 {
        steps.push(step(&mut u)?);
    }
    stateful_interleaving(limit, &steps);
    Ok(())
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = run(Unstructured::new(data));
});
