//! The clock demo end to end: the `clock-server` and `clock-client`
//! binaries as processes over real sockets, the page at `/`, and the page
//! in headless Chromium driven by playwright-core.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hub_runtime::Timestamp;
use hub_tests::{ServerProcess, clock_demo_binary, interop_dir, run_node_tests};

/// Where the page loads the SignalR browser client from.
const SCRIPT_PATH: &str = "/lib/signalr.min.js";

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(60);

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// A port that was free a moment ago, for a server that must come back on
/// the same address.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `clock-client`, killed when dropped.
struct ClockClient {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Its stderr (status messages), also passed on to ours.
    status: mpsc::Receiver<String>,
}

impl ClockClient {
    fn start(hub_url: &str) -> ClockClient {
        let mut child = Command::new(clock_demo_binary("clock-client"))
            .args(["--url", hub_url])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, status) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                // The test may have stopped listening; keep passing lines on.
                let _ = tx.send(line);
            }
        });
        ClockClient {
            child,
            lines,
            status,
        }
    }

    /// The first status line (stderr) that starts with `prefix`, without it.
    fn status_after(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .status
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no status line {prefix:?} from clock-client: {e}"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// The next time the client prints that is later than `after`.
    fn next_time_after(&self, after: Option<Timestamp>) -> Timestamp {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no time from clock-client: {e}"));
            let time: Timestamp = line
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("clock-client printed {line:?}, not a time: {e}"));
            if after.is_none_or(|after| time > after) {
                return time;
            }
        }
    }

    /// Sends `signal` (`INT`, `TERM`) and waits for the exit.
    fn signal_and_wait(mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("clock-client did not exit after SIG{signal}");
    }
}

impl Drop for ClockClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: the status line, the headers (lower-cased) and the
/// body.
fn http_get(base_url: &str, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let host = base_url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let body = response[split + 4..].to_vec();
    let mut head_lines = head.lines();
    let status = head_lines.next().unwrap().to_owned();
    let headers = head_lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn vendored_script() -> Vec<u8> {
    std::fs::read(repo_root().join("clock-demo/web/vendor/signalr.min.js")).unwrap()
}

#[test]
fn vendored_signalr_client_is_the_locked_npm_package() {
    let npm = interop_dir().join("node_modules/@microsoft/signalr");
    assert!(
        npm.exists(),
        "run `npm ci` in {} first (scripts/test.sh does)",
        interop_dir().display()
    );
    let locked = std::fs::read(npm.join("dist/browser/signalr.min.js")).unwrap();
    assert!(
        vendored_script() == locked,
        "clock-demo/web/vendor/signalr.min.js differs from the version pinned by \
         tests/interop/package-lock.json: copy {} over it",
        npm.join("dist/browser/signalr.min.js").display()
    );
    let license = std::fs::read_to_string(repo_root().join("clock-demo/web/vendor/LICENSE"))
        .expect("the vendored script's license sits next to it");
    let manifest = std::fs::read_to_string(npm.join("package.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let version = manifest["version"].as_str().unwrap();
    assert!(
        license.contains(&format!("@microsoft/signalr {version}")),
        "clock-demo/web/vendor/LICENSE names another version than {version}"
    );
    assert_eq!(manifest["license"], "MIT");
    assert!(license.contains("The MIT License"));
}

#[test]
fn page_is_served_with_the_vendored_script() {
    let server = ServerProcess::start(clock_demo_binary("clock-server").to_str().unwrap(), &[]);

    let (status, headers, body) = http_get(server.base_url(), "/");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(body).unwrap();
    assert!(page.contains(&format!(r#"<script src="{}">"#, SCRIPT_PATH)));
    assert!(page.contains(r#"id="time""#));
    assert!(page.contains(r#"<script type="module" src="/app/main.js">"#));
    assert!(
        !page.contains("https://"),
        "the page must not load anything from the internet"
    );

    // The page's script, compiled from TypeScript, and the module generated
    // from the Rust contract that it imports: the bundled files.
    for (path, bundled, needle) in [
        ("/app/main.js", clock_demo::APP_SCRIPT, r#""/hubs/clock""#),
        (
            "/app/generated/clock.js",
            clock_demo::CONTRACT_SCRIPT,
            r#"connection.invoke("GetTime")"#,
        ),
    ] {
        let (status, headers, body) = http_get(server.base_url(), path);
        assert!(status.contains(" 200 "), "{path}: {status}");
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with("text/javascript")
        );
        let body = String::from_utf8(body).unwrap();
        assert_eq!(body, bundled, "{path}");
        assert!(body.contains(needle), "{path} lacks {needle}");
    }

    let (status, headers, body) = http_get(server.base_url(), SCRIPT_PATH);
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        body == vendored_script(),
        "the served script is the vendored one"
    );

    let (status, _, _) = http_get(server.base_url(), "/no-such-page");
    assert!(status.contains(" 404 "), "{status}");

    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
}

#[test]
fn console_client_prints_the_servers_ticks() {
    let server = ServerProcess::start(clock_demo_binary("clock-server").to_str().unwrap(), &[]);
    let client = ClockClient::start(&format!("{}/hubs/clock", server.base_url()));

    // The typed call of `IClockHub::get_time` answered with the server's time.
    let asked: Timestamp = client
        .status_after("clock-client: the server's time is ")
        .parse()
        .unwrap();
    let skew = (Timestamp::now().unix_millis() - asked.unix_millis()).abs();
    assert!(skew < 60_000, "get_time answered {asked}");

    let first = client.next_time_after(None);
    let second = client.next_time_after(Some(first));
    let third = client.next_time_after(Some(second));
    // The worker ticks every second; on a busy machine a tick may be late,
    // never early by much.
    assert!(
        third.unix_millis() - first.unix_millis() >= 1500,
        "{first} {second} {third}"
    );
    let skew = (Timestamp::now().unix_millis() - third.unix_millis()).abs();
    assert!(skew < 60_000, "the times are now: {third}");

    let status = client.signal_and_wait("INT");
    assert!(
        status.success(),
        "clock-client exits with 0 on Ctrl-C: {status}"
    );
    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
}

#[test]
fn console_client_comes_back_after_a_server_restart() {
    let server_binary = clock_demo_binary("clock-server");
    let server_binary = server_binary.to_str().unwrap();
    let bind = format!("127.0.0.1:{}", free_port());
    // `--bind` given twice: the last one wins.
    let server = ServerProcess::start(server_binary, &["--bind", &bind]);
    let client = ClockClient::start(&format!("http://{bind}/hubs/clock"));
    let before = client.next_time_after(None);

    assert!(server.terminate(), "clock-server exits with 0 on SIGTERM");
    let restarted_at = Timestamp::now();
    let server = ServerProcess::start(server_binary, &["--bind", &bind]);

    let after = client.next_time_after(Some(restarted_at));
    assert!(after > before);

    let status = client.signal_and_wait("TERM");
    assert!(
        status.success(),
        "clock-client exits with 0 on SIGTERM: {status}"
    );
    assert!(server.terminate());
}

#[test]
fn page_shows_a_ticking_clock_in_headless_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        chromium.exists(),
        "install Debian's chromium (`apt-get install -y chromium`; scripts/test.sh does)"
    );
    let binary = clock_demo_binary("clock-server");
    let server = ServerProcess::start(binary.to_str().unwrap(), &[]);
    // Next to the profile directories: `<target>/clock-page.png`.
    let screenshot = binary
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("clock-page.png");
    let _ = std::fs::remove_file(&screenshot);

    let passed = run_node_tests(
        "clock_page.test.mjs",
        &[
            ("CLOCK_URL", &format!("{}/", server.base_url())),
            ("CHROMIUM", chromium.to_str().unwrap()),
            ("SCREENSHOT", screenshot.to_str().unwrap()),
        ],
    );
    assert!(passed, "the clock page did not tick in headless Chromium");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    assert!(server.terminate());
}
