//! The server process of one job: started fresh, measured (CPU, memory)
//! from outside, stopped.

use std::io;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::procstat;
use crate::servers::ServerKind;

/// How a job's server process is started.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Launch {
    /// The core to pin it to.
    pub(crate) cpu: Option<usize>,
    /// The clock's tick, for the clock workload.
    pub(crate) tick: Option<Duration>,
}

/// A server process started for one job.
pub(crate) struct ServerProcess {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: String,
    pub(crate) address: SocketAddr,
    /// `perf record` attached to the server when `HUBBENCH_PERF` names an
    /// output file prefix (profiling runs only).
    pub(crate) perf: Option<tokio::process::Child>,
}

impl ServerProcess {
    pub(crate) async fn start(kind: ServerKind, launch: Launch) -> io::Result<ServerProcess> {
        let exe = std::env::current_exe()?;
        let mut command = tokio::process::Command::new(exe);
        command.args(["serve", kind.name(), "--bind", "127.0.0.1:0"]);
        if let Some(cpu) = launch.cpu {
            command.arg("--cpu").arg(cpu.to_string());
        }
        if let Some(tick) = launch.tick {
            command
                .arg("--tick-ms")
                .arg(tick.as_millis().max(1).to_string());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .map(|pid| pid.to_string())
            .ok_or_else(|| io::Error::other("server exited at once"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .map_err(|_| io::Error::other("server did not start in 20 s"))??
            .ok_or_else(|| io::Error::other("server exited before listening"))?;
        let address = line
            .strip_prefix("listening on ")
            .and_then(|address| address.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected server output: {line}")))?;
        let perf = match std::env::var("HUBBENCH_PERF") {
            Ok(prefix) if !prefix.is_empty() => {
                let perf = tokio::process::Command::new("perf")
                    .args([
                        "record",
                        "-q",
                        "--call-graph",
                        "dwarf,16384",
                        "-F",
                        "499",
                        "-p",
                        &pid,
                    ])
                    .arg("-o")
                    .arg(format!("{prefix}-{}-{pid}.data", kind.name()))
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .ok();
                // perf needs a moment to attach.
                tokio::time::sleep(Duration::from_millis(500)).await;
                perf
            }
            _ => None,
        };
        Ok(ServerProcess {
            child,
            pid,
            address,
            perf,
        })
    }

    pub(crate) fn cpu(&self) -> f64 {
        procstat::cpu_seconds(&self.pid)
    }

    pub(crate) fn rss_kib(&self) -> u64 {
        procstat::rss_kib(&self.pid)
    }

    pub(crate) async fn stop(mut self) {
        if let Some(mut perf) = self.perf.take() {
            // SIGINT makes perf write its file and exit.
            if let Some(perf_pid) = perf.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-INT", &perf_pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(30), perf.wait()).await;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}
