//! The workloads: every (server, workload) pair runs against a fresh
//! server process; the jobs of all repetitions run in a random order.
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

/// Runs one job against one variant; returns its result records.
pub async fn run_job(variant: Variant, job: &Job, timing: &Timing) -> Vec<Value> {
    let (workload, parameters) = params(job);
    let started = Instant::now();
    let outcome = match job {
        Job::SlowConsumer {
            receivers,
            stalled,
            size,
        } => slow_consumer(variant, *receivers, *stalled, *size, timing).await,
        _ => match ServerProcess::start(variant.kind).await {
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
                    Job::SlowConsumer { .. } => Err("handled above".into()),
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
    let mut pairs = Vec::new();
    for repetition in 0..plan.repetitions {
        for job in &plan.jobs {
            // The long jobs with their own repetitions inside (single: many
            // broadcasts; idle: a ramp of checkpoints; slow consumer: two
            // phases) run once, to stay within the time budget.
            let once = matches!(
                job,
                Job::Single { .. } | Job::Idle { .. } | Job::SlowConsumer { .. }
            );
            if once && repetition > 0 {
                continue;
            }
            let (workload, parameters) = params(job);
            let text = format!("{workload} {parameters}");
            if plan
                .filter
                .as_ref()
                .is_some_and(|filter| !text.contains(filter))
            {
                continue;
            }
            for variant in VARIANTS {
                if plan.only.is_empty() || plan.only.iter().any(|name| name == variant.name) {
                    pairs.push((repetition, job.clone(), variant));
                }
            }
        }
    }
    let seed = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_nanos()),
    )
    .unwrap_or(1)
        | 1;
    let mut shuffle = Shuffle(seed);
    for index in (1..pairs.len()).rev() {
        let other = (shuffle.next() % (index as u64 + 1)) as usize;
        pairs.swap(index, other);
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
        let records = run_job(variant, &job, &plan.timing).await;
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
