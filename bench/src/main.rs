//! `hubbench`: our hub side by side with a raw WebSocket baseline and
//! socketioxide, measured by one load generator.
//!
//! ```text
//! hubbench run [--quick] [--out FILE.jsonl] [--only ours-json,raw,...] [--filter 'echo {"connections":100']
//! hubbench render [--md bench/RESULTS.md] [--png bench/results/chart.png] FILE.jsonl...
//! hubbench serve hub|raw|sio [--bind 127.0.0.1:0]
//! hubbench --help
//! ```
//!
//! `run` starts a fresh `hubbench serve` process per job, drives it from
//! this process (one tokio client for every server), and writes one JSON
//! line per result. `scripts/bench.sh` runs and renders.

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
    },
}

fn parse_kind(name: &str) -> Result<servers::ServerKind, String> {
    servers::ServerKind::from_name(name)
        .ok_or_else(|| format!("unknown server {name} (hub, raw or sio)"))
}

fn main() -> ExitCode {
    match <Command as clap::Parser>::parse() {
        Command::Serve { kind, bind } => serve(kind, bind),
        Command::Run {
            quick,
            out,
            only,
            filter,
        } => run(quick, out, only, filter),
        Command::Render { md, png, inputs } => render(&inputs, &md, &png),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(kind: servers::ServerKind, bind: SocketAddr) -> ExitCode {
    let result = runtime().and_then(|runtime| runtime.block_on(servers::serve(kind, bind)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubbench serve: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(quick: bool, out: Option<PathBuf>, only: Vec<String>, filter: Option<String>) -> ExitCode {
    let mode = if quick { "quick" } else { "full" };
    let mut plan = if quick {
        runner::Plan::quick()
    } else {
        runner::Plan::full()
    };
    plan.only = only;
    plan.filter = filter;
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
