//! `hubbench`: our hub side by side with a raw WebSocket baseline and
//! socketioxide, measured by one load generator.
//!
//! ```text
//! hubbench run [--quick] [--out FILE.jsonl] [--only ours-json,raw,...] [--filter 'echo {"connections":100']
//! hubbench render [--md bench/RESULTS.md] [--png bench/results/chart.png] FILE.jsonl...
//! hubbench serve hub|raw|sio [--bind 127.0.0.1:0]
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

fn usage() -> ExitCode {
    eprintln!(
        "usage: hubbench run [--quick] [--out FILE] [--only NAMES] [--filter TEXT]\n       \
         hubbench render [--md FILE] [--png FILE] FILE.jsonl...\n       \
         hubbench serve hub|raw|sio [--bind ADDR]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        return usage();
    };
    let rest = &args[1..];
    match command.as_str() {
        "serve" => serve(rest),
        "run" => run(rest),
        "render" => render(rest),
        _ => usage(),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn serve(args: &[String]) -> ExitCode {
    let Some(kind) = args
        .first()
        .and_then(|name| servers::ServerKind::from_name(name))
    else {
        return usage();
    };
    let mut bind = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut words = args[1..].iter();
    while let Some(flag) = words.next() {
        match (flag.as_str(), words.next().map(|value| value.parse())) {
            ("--bind", Some(Ok(address))) => bind = address,
            _ => return usage(),
        }
    }
    let result = runtime().and_then(|runtime| runtime.block_on(servers::serve(kind, bind)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubbench serve: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> ExitCode {
    let mut quick = false;
    let mut out = None;
    let mut only = Vec::new();
    let mut filter = None;
    let mut words = args.iter();
    while let Some(flag) = words.next() {
        match flag.as_str() {
            "--quick" => quick = true,
            "--out" => match words.next() {
                Some(path) => out = Some(PathBuf::from(path)),
                None => return usage(),
            },
            "--filter" => match words.next() {
                Some(text) => filter = Some(text.clone()),
                None => return usage(),
            },
            "--only" => match words.next() {
                Some(names) => only = names.split(',').map(str::to_owned).collect(),
                None => return usage(),
            },
            _ => return usage(),
        }
    }
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

fn render(args: &[String]) -> ExitCode {
    let mut markdown = PathBuf::from("bench/RESULTS.md");
    let mut png = PathBuf::from("bench/results/chart.png");
    let mut inputs = Vec::new();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--md" => match words.next() {
                Some(path) => markdown = PathBuf::from(path),
                None => return usage(),
            },
            "--png" => match words.next() {
                Some(path) => png = PathBuf::from(path),
                None => return usage(),
            },
            input => inputs.push(PathBuf::from(input)),
        }
    }
    if inputs.is_empty() {
        return usage();
    }
    match report::render(&inputs, &markdown, &png) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hubbench render: {error}");
            ExitCode::FAILURE
        }
    }
}
