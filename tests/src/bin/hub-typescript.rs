//! Writes the TypeScript modules generated from the Rust contract traits.
//!
//! ```text
//! hub-typescript --help
//! hub-typescript            write every module into the workspace
//! hub-typescript --check    exit with 1 if a committed module is stale
//! hub-typescript --out DIR  write them under DIR instead (same relative paths)
//! ```
//!
//! The modules (paths relative to the workspace root) are those of
//! `hub_tests::typescript_modules`: the clock demo's contract and the
//! station contract of the tests.

use std::path::PathBuf;
use std::process::ExitCode;

/// The generator's flags.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "Writes the TypeScript modules generated from the Rust contract traits into the workspace."
)]
struct Args {
    /// Write nothing: exit with 1 if a committed module is not up to date.
    #[arg(long)]
    check: bool,
    /// Write the modules under DIR instead of the workspace (same relative paths).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let check = args.check;
    let out = args.out.unwrap_or_else(hub_tests::workspace_root);
    let modules = match hub_tests::typescript_modules() {
        Ok(modules) => modules,
        Err(error) => {
            eprintln!("hub-typescript: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stale = 0;
    for (path, text) in modules {
        let target = out.join(path);
        if check {
            if std::fs::read_to_string(&target).ok().as_deref() != Some(text.as_str()) {
                eprintln!("hub-typescript: {} is not up to date", target.display());
                stale += 1;
            }
            continue;
        }
        let written = target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&target, text));
        if let Err(error) = written {
            eprintln!("hub-typescript: cannot write {}: {error}", target.display());
            return ExitCode::FAILURE;
        }
        eprintln!("hub-typescript: wrote {}", target.display());
    }
    if stale > 0 {
        eprintln!("hub-typescript: run `cargo run -p hub-tests --bin hub-typescript` to update");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
