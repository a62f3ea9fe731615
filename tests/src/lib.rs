//! Shared helpers for the integration and interop tests: starting the
//! project's server binaries on a free loopback port and running the
//! official clients against them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A server binary of this workspace, started on `127.0.0.1:0`, killed when
/// dropped.
pub struct ServerProcess {
    child: Child,
    base_url: String,
}

impl ServerProcess {
    /// Starts `binary` with `--bind 127.0.0.1:0` and `args`, and waits for
    /// the `listening on http://HOST:PORT` line it prints once it accepts
    /// connections.
    ///
    /// # Panics
    /// When the binary cannot start or prints no such line within 60 s.
    pub fn start(binary: &str, args: &[&str]) -> ServerProcess {
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let base_url = loop {
            match lines_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("{binary} did not print its address: {e}");
                }
            }
        };
        ServerProcess { child, base_url }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit, returning whether it
    /// exited successfully.
    pub fn terminate(mut self) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..100 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `tests/interop`, where the npm packages of the interop tests live.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Runs a node test file of `tests/interop` with `env`, printing its output,
/// and returns whether every node test passed.
///
/// # Panics
/// When node is missing or the npm packages are not installed: the README's
/// test command installs them (`npm ci`).
pub fn run_node_tests(file: &str, env: &[(&str, &str)]) -> bool {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/@microsoft/signalr").exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        dir.display()
    );
    let output = Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "--test-concurrency=1",
            file,
        ])
        .current_dir(&dir)
        .envs(env.iter().copied())
        .output()
        .expect("node must be installed for the interop tests");
    // Shown by the test harness when the test fails.
    #[allow(clippy::print_stdout)]
    {
        println!("{}", String::from_utf8_lossy(&output.stdout));
    }
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output.status.success()
}
