//! The workloads: every (server, workload) pair runs against a fresh
//! server process. The repetitions of a job run interleaved, one server
//! after the other (ours-json, ours-msgpack, raw, socketioxide, ours-json,
//! …), so that the records a ratio is taken from (same job, same
//! repetition) ran minutes apart at most; the jobs run in a random order.
//!
//! Split by concern: [`plan`] (what to run), [`process`] (the server
//! process of a job), [`stats`] (counting and measuring), [`load`] (the
//! clients and senders), [`workloads`] (one module per workload). This
//! module runs a job against a variant and the whole plan.

mod load;
mod plan;
mod process;
mod stats;
mod workloads;

pub use plan::{Job, Plan, Timing, VARIANTS, Variant};
pub(crate) use workloads::SKIP_NEGOTIATION;

use std::io;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::procstat;
use process::*;
use workloads::*;

pub(crate) fn params(job: &Job) -> (String, Value) {
    match job {
        Job::Echo {
            connections,
            in_flight,
            size,
        } => (
            "echo".into(),
            json!({"connections": connections, "in_flight": in_flight, "size": size}),
        ),
        Job::Broadcast {
            receivers, size, ..
        } => (
            "broadcast".into(),
            json!({"receivers": receivers, "size": size}),
        ),
        Job::Single { receivers, count } => (
            "single-broadcast".into(),
            json!({"receivers": receivers, "count": count}),
        ),
        Job::Idle { checkpoints } => ("idle".into(), json!({"checkpoints": checkpoints})),
        Job::Clock { clients, ticks } => {
            ("clock".into(), json!({"clients": clients, "ticks": ticks}))
        }
        Job::ConnectStorm {
            connections,
            concurrency,
        } => (
            "connect-storm".into(),
            json!({"connections": connections, "concurrency": concurrency}),
        ),
        Job::SlowConsumer {
            receivers,
            stalled,
            size,
        } => (
            "slow-consumer".into(),
            json!({"receivers": receivers, "stalled": stalled, "size": size}),
        ),
    }
}

/// Runs one job against one variant (its server pinned to `server_cpu`
/// when given); returns its result records.
pub async fn run_job(
    variant: Variant,
    job: &Job,
    timing: &Timing,
    server_cpu: Option<usize>,
) -> Vec<Value> {
    let (workload, parameters) = params(job);
    let started = Instant::now();
    let launch = Launch {
        cpu: server_cpu,
        tick: matches!(job, Job::Clock { .. }).then_some(timing.tick),
    };
    let outcome = match job {
        Job::SlowConsumer {
            receivers,
            stalled,
            size,
        } => slow_consumer(variant, *receivers, *stalled, *size, timing, launch).await,
        Job::ConnectStorm {
            connections,
            concurrency,
        } => connect_storm(variant, *connections, *concurrency, launch).await,
        _ => match ServerProcess::start(variant.kind, launch).await {
            Ok(server) => {
                let result = match job {
                    Job::Echo {
                        connections,
                        in_flight,
                        size,
                    } => echo(variant, &server, *connections, *in_flight, *size, timing).await,
                    Job::Broadcast {
                        receivers,
                        size,
                        stepped,
                    } => broadcast(variant, &server, *receivers, *size, *stepped, timing).await,
                    Job::Single { receivers, count } => {
                        single(variant, &server, *receivers, *count).await
                    }
                    Job::Idle { checkpoints } => idle(variant, &server, checkpoints, timing).await,
                    Job::Clock { clients, ticks } => {
                        clock(variant, &server, *clients, *ticks, timing.tick).await
                    }
                    Job::SlowConsumer { .. } | Job::ConnectStorm { .. } => {
                        Err("handled above".into())
                    }
                };
                server.stop().await;
                result
            }
            Err(error) => Err(format!("server did not start: {error}")),
        },
    };
    let base = json!({
        "workload": workload,
        "server": variant.name,
        "params": parameters,
        "elapsed_s": started.elapsed().as_secs_f64(),
    });
    match outcome {
        Ok(records) => records
            .into_iter()
            .map(|mut record| {
                merge(&mut record, &base);
                record
            })
            .collect(),
        Err(error) => {
            let mut record = json!({"ok": false, "error": error});
            merge(&mut record, &base);
            vec![record]
        }
    }
}

pub(crate) fn merge(record: &mut Value, base: &Value) {
    if let (Some(record), Some(base)) = (record.as_object_mut(), base.as_object()) {
        for (key, value) in base {
            record.entry(key.clone()).or_insert(value.clone());
        }
    }
}

/// A small xorshift generator for the random job order.
pub(crate) struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the whole plan, appending one JSON line per record to `out`.
pub async fn run_plan(plan: &Plan, out: &std::path::Path, mode: &str) -> io::Result<bool> {
    // The jobs in a random order (a slow drift of the machine's load then
    // touches no workload systematically); within a job its repetitions,
    // each running every server once, in the order of VARIANTS.
    let mut jobs: Vec<&Job> = plan
        .jobs
        .iter()
        .filter(|job| {
            let (workload, parameters) = params(job);
            let text = format!("{workload} {parameters}");
            plan.filter
                .as_ref()
                .is_none_or(|filter| text.contains(filter.as_str()))
        })
        .collect();
    let seed = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos()),
    )
    .unwrap_or(1)
        | 1;
    let mut shuffle = Shuffle(seed);
    for index in (1..jobs.len()).rev() {
        let other = (shuffle.next() % (index as u64 + 1)) as usize;
        jobs.swap(index, other);
    }
    let mut pairs = Vec::new();
    for job in jobs {
        let repetitions = if job.once() { 1 } else { plan.repetitions };
        for repetition in 0..repetitions {
            for variant in VARIANTS {
                let chosen =
                    plan.only.is_empty() || plan.only.iter().any(|name| name == variant.name);
                if chosen && job.runs_on(&variant) {
                    pairs.push((repetition, job.clone(), variant));
                }
            }
        }
    }
    let mut file = tokio::fs::File::create(out).await?;
    let header = json!({
        "record": "run",
        "mode": mode,
        "started_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs()),
        "machine": procstat::machine_description(),
        "repetitions": plan.repetitions,
        "order": "interleaved",
        "pinned": plan.cores.map(|cores| json!({"loadgen_cpu": cores.loadgen, "server_cpu": cores.server})),
        "seed": seed,
    });
    file.write_all(format!("{header}\n").as_bytes()).await?;
    let total = pairs.len();
    let mut all_ok = true;
    let busy_before = procstat::machine_busy_seconds();
    let self_before = procstat::cpu_seconds("self");
    let started = Instant::now();
    for (index, (repetition, job, variant)) in pairs.into_iter().enumerate() {
        let (workload, parameters) = params(&job);
        eprintln!(
            "[{}/{}] {} {} {}",
            index + 1,
            total,
            variant.name,
            workload,
            parameters
        );
        let records = run_job(
            variant,
            &job,
            &plan.timing,
            plan.cores.map(|cores| cores.server),
        )
        .await;
        for mut record in records {
            record["repetition"] = json!(repetition);
            if record["ok"] != json!(true) {
                all_ok = false;
                eprintln!("  FAILED: {record}");
            }
            file.write_all(format!("{record}\n").as_bytes()).await?;
        }
        // Let the sockets of the last job go before the next server starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let footer = json!({
        "record": "end",
        "elapsed_s": started.elapsed().as_secs_f64(),
        "machine_busy_s": procstat::machine_busy_seconds() - busy_before,
        "loadgen_cpu_s": procstat::cpu_seconds("self") - self_before,
        "loadavg": procstat::machine_description()["loadavg"],
    });
    file.write_all(format!("{footer}\n").as_bytes()).await?;
    file.flush().await?;
    Ok(all_ok)
}
