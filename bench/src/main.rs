//! `hubbench`: our hub side by side with a raw WebSocket baseline and
//! socketioxide, measured by one load generator.
//!
//! ```text
//! hubbench run [--quick] [--out FILE.jsonl] [--only ours-json,raw,...] [--filter 'echo {"connections":100']
//!              [--repetitions N] [--no-pin]
//! hubbench render [--md bench/RESULTS.md] [--png bench/results/chart.png] FILE.jsonl...
//! hubbench serve hub|raw|sio [--bind 127.0.0.1:0] [--tick-ms N] [--cpu N]
//! hubbench --help
//! ```
//!
//! `run` starts a fresh `hubbench serve` process per job, drives it from
//! this process (one tokio client for every server), and writes one JSON
//! line per result. On a machine with two or more cores the server and
//! the load generator are pinned to separate cores (see [`pinning`]), and
//! the repetitions of a job run interleaved (ours, raw, socketioxide,
//! ours, raw, …) so that each ratio is taken between neighbours in time.
//! `scripts/bench.sh` runs and renders.

mod pinning;
mod procstat;
mod report;
mod runner;
mod servers;
mod wsclient;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `hubbench`'s commands.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Our hub side by side with a raw WebSocket baseline and socketioxide, measured by one load generator."
)]
enum Command {
    /// Run the benchmark plan: a fresh `hubbench serve` per job, one JSON line per result.
    Run {
        /// The short plan (seconds, for smoke tests) instead of the full one.
        #[arg(long)]
        quick: bool,
        /// Where to write the results (default: bench/results/MODE-UNIXTIME.jsonl).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Only these servers (comma-separated: ours-json, ours-msgpack, raw, socketioxide).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        only: Vec<String>,
        /// Only the jobs whose `workload params` text contains TEXT.
        #[arg(long, value_name = "TEXT")]
        filter: Option<String>,
        /// Repetitions of every (job, server) (default: 3 in the full plan, 1 in the quick one).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        repetitions: Option<u16>,
        /// Do not pin the server and the load generator to separate cores.
        #[arg(long)]
        no_pin: bool,
        /// Clients of the clock job instead of the plan's (a smaller trial run).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        clock_clients: Option<u32>,
        /// Connections of the connect-storm job instead of the plan's (a smaller trial run).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        storm_connections: Option<u32>,
    },
    /// Render results into a Markdown table and a chart.
    Render {
        /// The Markdown file to write.
        #[arg(long, value_name = "FILE", default_value = "bench/RESULTS.md")]
        md: PathBuf,
        /// The chart to write.
        #[arg(long, value_name = "FILE", default_value = "bench/results/chart.png")]
        png: PathBuf,
        /// Result files written by `hubbench run`.
        #[arg(required = true, value_name = "FILE.jsonl")]
        inputs: Vec<PathBuf>,
    },
    /// Serve one benchmark server until killed (what `run` starts per job).
    Serve {
        /// Which server.
        #[arg(value_parser = parse_kind, value_name = "hub|raw|sio")]
        kind: servers::ServerKind,
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, env = "HUB_BIND", default_value = "127.0.0.1:0")]
        bind: SocketAddr,
        /// Run the clock: `show_time(now)` to every client every N ms (hub and raw).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        tick_ms: Option<u64>,
        /// Pin the server to this core.
        #[arg(long, value_name = "N")]
        cpu: Option<usize>,
    },
}

fn parse_kind(name: &str) -> Result<servers::ServerKind, String> {
    servers::ServerKind::from_name(name)
        .ok_or_else(|| format!("unknown server {name} (hub, raw or sio)"))
}

fn main() -> ExitCode {
    match <Command as clap::Parser>::parse() {
        Command::Serve {
            kind,
            bind,
            tick_ms,
            cpu,
        } => serve(
            kind,
            bind,
            tick_ms.map(std::time::Duration::from_millis),
            cpu,
        ),
        Command::Run {
            quick,
            out,
            only,
            filter,
            repetitions,
            no_pin,
            clock_clients,
            storm_connections,
        } => run(
            quick,
            out,
            only,
            filter,
            Overrides {
                repetitions,
                clock_clients,
                storm_connections,
            },
            no_pin,
        ),
        Command::Render { md, png, inputs } => render(&inputs, &md, &png),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(
    kind: servers::ServerKind,
    bind: SocketAddr,
    tick: Option<std::time::Duration>,
    cpu: Option<usize>,
) -> ExitCode {
    // Before the runtime starts: its threads inherit the mask.
    if let Some(cpu) = cpu {
        if !pinning::pin_current_thread(cpu) {
            eprintln!("hubbench serve: cannot pin to core {cpu}");
            return ExitCode::FAILURE;
        }
    }
    let result = runtime().and_then(|runtime| runtime.block_on(servers::serve(kind, bind, tick)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubbench serve: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What `run` changes in its plan.
struct Overrides {
    repetitions: Option<u16>,
    clock_clients: Option<u32>,
    storm_connections: Option<u32>,
}

fn run(
    quick: bool,
    out: Option<PathBuf>,
    only: Vec<String>,
    filter: Option<String>,
    overrides: Overrides,
    no_pin: bool,
) -> ExitCode {
    let mode = if quick { "quick" } else { "full" };
    let mut plan = if quick {
        runner::Plan::quick()
    } else {
        runner::Plan::full()
    };
    plan.only = only;
    plan.filter = filter;
    if let Some(repetitions) = overrides.repetitions {
        plan.repetitions = usize::from(repetitions);
    }
    for job in &mut plan.jobs {
        match job {
            runner::Job::Clock { clients, .. } => {
                if let Some(count) = overrides.clock_clients {
                    *clients = count as usize;
                }
            }
            runner::Job::ConnectStorm { connections, .. } => {
                if let Some(count) = overrides.storm_connections {
                    *connections = count as usize;
                }
            }
            _ => {}
        }
    }
    if !no_pin {
        // Before the runtime starts: its threads inherit the mask.
        plan.cores = pinning::choose().filter(|cores| pinning::pin_current_thread(cores.loadgen));
        if plan.cores.is_none() {
            eprintln!("hubbench run: fewer than two cores to pin to; running unpinned");
        }
    }
    let out = out.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        PathBuf::from(format!("bench/results/{mode}-{now}.jsonl"))
    });
    servers::raise_fd_limit();
    let result =
        runtime().and_then(|runtime| runtime.block_on(runner::run_plan(&plan, &out, mode)));
    match result {
        Ok(true) => {
            eprintln!("results: {}", out.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!("results: {} (some runs FAILED)", out.display());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("hubbench run: {error}");
            ExitCode::FAILURE
        }
    }
}

fn render(inputs: &[PathBuf], markdown: &std::path::Path, png: &std::path::Path) -> ExitCode {
    match report::render(inputs, markdown, png) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubbench render: {error}");
            ExitCode::FAILURE
        }
    }
}
