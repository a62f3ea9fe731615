//! Renders `bench/RESULTS.md` and the chart from result files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

const SERVERS: [&str; 4] = ["ours-json", "ours-msgpack", "raw", "socketioxide"];
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

type Error = Box<dyn std::error::Error>;

struct Results {
    header: Value,
    footer: Value,
    /// (workload, params) -> server -> records of every repetition.
    groups: BTreeMap<(String, String), BTreeMap<String, Vec<Value>>>,
    files: Vec<PathBuf>,
}

fn load(inputs: &[PathBuf]) -> Result<Results, Error> {
    let mut results = Results {
        header: Value::Null,
        footer: Value::Null,
        groups: BTreeMap::new(),
        files: inputs.to_vec(),
    };
    for (file, input) in inputs.iter().enumerate() {
        let text = std::fs::read_to_string(input)?;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let mut record: Value = serde_json::from_str(line)?;
            // Repetitions of several result files (runs) rendered together
            // stay apart: a ratio pairs records of one run's repetition.
            if let Some(fields) = record.as_object_mut() {
                fields.insert("run_file".into(), Value::from(file));
            }
            match record["record"].as_str() {
                Some("run") => results.header = record,
                Some("end") => results.footer = record,
                _ => {
                    let key = (
                        record["workload"].as_str().unwrap_or("").to_owned(),
                        sort_key(&record["params"]),
                    );
                    let server = record["server"].as_str().unwrap_or("").to_owned();
                    results
                        .groups
                        .entry(key)
                        .or_default()
                        .entry(server)
                        .or_default()
                        .push(record);
                }
            }
        }
    }
    Ok(results)
}

/// Params as a key that sorts numerically (connections, then the rest).
fn sort_key(params: &Value) -> String {
    let number = |name: &str| params[name].as_u64().unwrap_or(0);
    format!(
        "{:08}|{:08}|{:08}|{:08}|{params}",
        number("connections") + number("receivers"),
        number("in_flight"),
        number("size"),
        number("stalled"),
    )
}

fn params_of(key: &str) -> Value {
    key.rsplit('|')
        .next()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or(Value::Null)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|value| value.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    })
}

/// The median over repetitions of `path` (a JSON pointer) in `records`.
fn med(records: Option<&Vec<Value>>, path: &str) -> Option<f64> {
    let records = records?;
    median(
        records
            .iter()
            .filter(|record| record["ok"] == Value::Bool(true))
            .filter_map(|record| record.pointer(path).and_then(Value::as_f64))
            .collect(),
    )
}

fn any_client_bound(records: Option<&Vec<Value>>, pointer: &str) -> bool {
    records.is_some_and(|records| {
        records
            .iter()
            .any(|record| record.pointer(pointer) == Some(&Value::Bool(true)))
    })
}

fn human(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(value) if value >= 1e6 => format!("{:.2} M", value / 1e6),
        Some(value) if value >= 1e3 => format!("{:.1} k", value / 1e3),
        Some(value) => format!("{value:.0}"),
    }
}

fn ms(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(value) if value < 10.0 => format!("{value:.2}"),
        Some(value) => format!("{value:.1}"),
    }
}

fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some((values.iter().map(|value| value.ln()).sum::<f64>() / values.len() as f64).exp())
}

/// The values at `path` of the successful records, by repetition.
fn by_repetition(records: Option<&Vec<Value>>, path: &str) -> BTreeMap<u64, f64> {
    records
        .into_iter()
        .flatten()
        .filter(|record| record["ok"] == Value::Bool(true))
        .filter_map(|record| {
            let value = record.pointer(path).and_then(Value::as_f64)?;
            (value.is_finite() && value > 0.0).then(|| {
                let run = record["run_file"].as_u64().unwrap_or(0);
                (
                    run << 32 | record["repetition"].as_u64().unwrap_or(0),
                    value,
                )
            })
        })
        .collect()
}

/// One ratio, ours over another server, in each repetition that has both
/// (the two ran next to each other: the repetitions are interleaved).
/// Keyed by run file and repetition, so that rendering two runs together
/// gives the spread over both.
#[derive(Debug, Clone, Default)]
struct Spread {
    /// Repetition -> ratio.
    by_repetition: BTreeMap<u64, f64>,
}

impl Spread {
    fn between(ours: Option<&Vec<Value>>, other: Option<&Vec<Value>>, path: &str) -> Spread {
        let other = by_repetition(other, path);
        Spread {
            by_repetition: by_repetition(ours, path)
                .into_iter()
                .filter_map(|(repetition, ours)| Some((repetition, ours / other.get(&repetition)?)))
                .collect(),
        }
    }

    fn median(&self) -> Option<f64> {
        median(self.by_repetition.values().copied().collect())
    }

    fn min(&self) -> Option<f64> {
        self.by_repetition.values().copied().min_by(f64::total_cmp)
    }

    fn max(&self) -> Option<f64> {
        self.by_repetition.values().copied().max_by(f64::total_cmp)
    }

    /// Half the min–max range relative to the median (0.05 = ±5 %).
    fn half_range(&self) -> Option<f64> {
        Some((self.max()? - self.min()?) / 2.0 / self.median()?)
    }

    /// `0.62× (0.58–0.66)`, or `0.62×` from one repetition.
    fn text(&self) -> String {
        match (self.median(), self.min(), self.max()) {
            (Some(median), Some(min), Some(max)) if self.by_repetition.len() > 1 => {
                format!("{median:.2}× ({min:.2}–{max:.2})")
            }
            (Some(median), ..) => format!("{median:.2}×"),
            _ => "–".into(),
        }
    }
}

/// Ratios of one kind, collected across rows for the targets.
#[derive(Default)]
struct RatioSet {
    values: BTreeMap<&'static str, Vec<Spread>>,
}

impl RatioSet {
    fn push(&mut self, name: &'static str, spread: Option<Spread>) {
        if let Some(spread) = spread.filter(|spread| !spread.by_repetition.is_empty()) {
            self.values.entry(name).or_default().push(spread);
        }
    }

    /// The geometric mean over the rows, per repetition (as a [`Spread`]),
    /// and the worst row's median.
    fn summary(&self, name: &str) -> (Spread, Option<f64>) {
        let rows = self.values.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let mut per_repetition: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for row in rows {
            for (&repetition, &ratio) in &row.by_repetition {
                per_repetition.entry(repetition).or_default().push(ratio);
            }
        }
        let geo = Spread {
            by_repetition: per_repetition
                .into_iter()
                .filter_map(|(repetition, ratios)| Some((repetition, geomean(&ratios)?)))
                .collect(),
        };
        let worst = rows
            .iter()
            .filter_map(Spread::median)
            .min_by(f64::total_cmp);
        (geo, worst)
    }
}

/// A throughput table (echo or broadcast max-rate) plus its ratios.
fn throughput_tables(
    out: &mut String,
    results: &Results,
    workload: &str,
    label: impl Fn(&Value) -> String,
    header: &str,
    filter: impl Fn(&Value) -> bool,
) -> RatioSet {
    let mut ratios = RatioSet::default();
    let _ = writeln!(
        out,
        "\nDeliveries per second counted by the clients (p99 latency in ms):\n\n\
         | {header} | ours-json | ours-msgpack | raw | socketioxide |\n|{}---|---|---|---|",
        "---|".repeat(header.matches('|').count() + 1)
    );
    let rows: Vec<_> = results
        .groups
        .iter()
        .filter(|((name, key), _)| name == workload && filter(&params_of(key)))
        .collect();
    for ((_, key), servers) in &rows {
        let mut line = format!("| {} |", label(&params_of(key)));
        for server in SERVERS {
            let records = servers.get(server);
            let (rate_path, p99_path, bound_path) =
                ("/deliveries_per_s", "/latency/p99_ms", "/client_bound");
            let bound = if any_client_bound(records, bound_path) {
                " ⚠"
            } else {
                ""
            };
            let _ = write!(
                line,
                " {} ({}){bound} |",
                human(med(records, rate_path)),
                ms(med(records, p99_path))
            );
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\nDeliveries per server CPU-second (the headline) and ratios from the same run \
         (median over the repetitions, min–max in brackets):\n\n\
         | {header} | ours-json | ours-msgpack | raw | socketioxide | json/raw | json/sio | msgpack/raw | msgpack/sio |\n|{}---|---|---|---|---|---|---|---|",
        "---|".repeat(header.matches('|').count() + 1)
    );
    for ((_, key), servers) in &rows {
        let value = |server: &str| med(servers.get(server), "/deliveries_per_server_cpu_s");
        let (json, msgpack, raw, sio) = (
            value("ours-json"),
            value("ours-msgpack"),
            value("raw"),
            value("socketioxide"),
        );
        // A ratio involving a client-bound run would measure the load
        // generator, not the servers: it is named, not computed.
        let bound = |server: &str| any_client_bound(servers.get(server), "/client_bound");
        let compare = |ours: &str, other: &str| {
            if bound(ours) || bound(other) {
                ("client-bound".to_owned(), None)
            } else {
                let spread = Spread::between(
                    servers.get(ours),
                    servers.get(other),
                    "/deliveries_per_server_cpu_s",
                );
                (spread.text(), Some(spread))
            }
        };
        let (json_raw, json_raw_value) = compare("ours-json", "raw");
        let (json_sio, json_sio_value) = compare("ours-json", "socketioxide");
        let (mp_raw, mp_raw_value) = compare("ours-msgpack", "raw");
        let (mp_sio, mp_sio_value) = compare("ours-msgpack", "socketioxide");
        ratios.push("json/raw", json_raw_value);
        ratios.push("json/sio", json_sio_value);
        ratios.push("msgpack/raw", mp_raw_value);
        ratios.push("msgpack/sio", mp_sio_value);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {json_raw} | {json_sio} | {mp_raw} | {mp_sio} |",
            label(&params_of(key)),
            human(json),
            human(msgpack),
            human(raw),
            human(sio)
        );
    }
    ratios
}

fn size_label(size: u64) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// Renders the Markdown report and the chart.
pub fn render(inputs: &[PathBuf], markdown: &Path, png: &Path) -> Result<(), Error> {
    let results = load(inputs)?;
    let mut out = String::new();
    let machine = &results.header["machine"];
    let _ = writeln!(
        out,
        "# Benchmark results\n\n\
         Generated by `scripts/bench.sh` ({} mode, {} repetition(s) of each job, interleaved; the jobs in random order) from {}; \
         do not edit by hand.\n\n\
         **Machine:** {} — {} cores, {} GiB RAM, Linux {}. Load average at the start: {}; at the end: {}.\n",
        results.header["mode"].as_str().unwrap_or("?"),
        results.header["repetitions"],
        results
            .files
            .iter()
            .map(|file| format!("`{}`", file.display()))
            .collect::<Vec<_>>()
            .join(", "),
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["loadavg"].as_str().unwrap_or("?"),
        results.footer["loadavg"].as_str().unwrap_or("?"),
    );
    let other: Vec<f64> = results
        .groups
        .values()
        .flat_map(|servers| servers.values().flatten())
        .filter_map(|record| Some(record["other_cpu_s"].as_f64()? / record["seconds"].as_f64()?))
        .collect();
    if let Some(other) = median(other) {
        let _ = writeln!(
            out,
            "CPU used by other processes during the measurement windows (median): {:.2} of {} cores{}.\n",
            other,
            machine["cores"],
            if other > 0.2 {
                " — **the machine was shared** (others were compiling); absolute numbers are \
                 lower than on a quiet machine, ratios from the same run stay comparable"
            } else {
                ""
            }
        );
    }
    out.push_str(
        "Every job starts a fresh server process (release build) and drives it from one tokio load \
         generator (the same client code for every server, connections spread over 127.0.0.2–33). \
         Values are medians over repetitions. Latency is measured from the timestamp in each payload \
         (HdrHistogram). Server CPU is the run time of its threads from `/proc/PID/task/*/schedstat` (nanoseconds). ⚠ marks runs where the \
         load generator used more CPU than the server (client-bound: deliveries/s then understates \
         the server, so no ratio is computed against such a run and it counts toward no target).\n",
    );

    out.push_str("\n## echo (closed loop)\n");
    let echo = throughput_tables(
        &mut out,
        &results,
        "echo",
        |params| {
            format!(
                "{} | {} | {}",
                params["connections"],
                params["in_flight"],
                size_label(params["size"].as_u64().unwrap_or(0))
            )
        },
        "connections | in flight | payload",
        |_| true,
    );

    out.push_str("\n## broadcast (one sender, max rate: at most 32 broadcasts undelivered)\n");
    let broadcast = throughput_tables(
        &mut out,
        &results,
        "broadcast",
        |params| {
            format!(
                "{} | {}",
                params["receivers"],
                size_label(params["size"].as_u64().unwrap_or(0))
            )
        },
        "receivers | payload",
        |_| true,
    );

    out.push_str(
        "\nHighest stepped rate (deliveries/s) whose p99 stayed under 100 ms, every message delivered:\n\n\
         | receivers | payload | ours-json | ours-msgpack | raw | socketioxide |\n|---|---|---|---|---|---|\n",
    );
    for ((name, key), servers) in &results.groups {
        if name != "broadcast" {
            continue;
        }
        let params = params_of(key);
        let any = servers
            .values()
            .flatten()
            .any(|record| !record["best_rate_under_100ms_deliveries_per_s"].is_null());
        if !any {
            continue;
        }
        let mut line = format!(
            "| {} | {} |",
            params["receivers"],
            size_label(params["size"].as_u64().unwrap_or(0))
        );
        for server in SERVERS {
            let _ = write!(
                line,
                " {} |",
                human(med(
                    servers.get(server),
                    "/best_rate_under_100ms_deliveries_per_s"
                ))
            );
        }
        let _ = writeln!(out, "{line}");
    }

    out.push_str(
        "\n## single broadcast to N receivers (time until the last one has it, over all broadcasts of all repetitions)\n\n\
         | receivers | server | p50 ms | p99 ms | max ms | broadcasts |\n|---|---|---|---|---|---|\n",
    );
    let mut single_p99 = BTreeMap::new();
    for ((name, key), servers) in &results.groups {
        if name != "single-broadcast" {
            continue;
        }
        let params = params_of(key);
        for server in SERVERS {
            let mut times: Vec<f64> = servers
                .get(server)
                .into_iter()
                .flatten()
                .flat_map(|record| {
                    record["time_to_last_ms"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|value| value.as_f64())
                .collect();
            times.sort_by(f64::total_cmp);
            let quantile = |q: f64| {
                (!times.is_empty()).then(|| {
                    times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1]
                })
            };
            single_p99.insert(server, quantile(0.99));
            let _ = writeln!(
                out,
                "| {} | {server} | {} | {} | {} | {} |",
                params["receivers"],
                ms(quantile(0.5)),
                ms(quantile(0.99)),
                ms(quantile(1.0)),
                times.len()
            );
        }
    }

    out.push_str(
        "\n## idle connections (server RSS per connection, connect rate incl. handshake)\n\n\
         | connections | server | RSS per connection | server RSS | connects/s |\n|---|---|---|---|---|\n",
    );
    let mut idle_rss = BTreeMap::new();
    for ((name, _), servers) in &results.groups {
        if name != "idle" {
            continue;
        }
        let mut rows: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for server in SERVERS {
            let Some(records) = servers.get(server) else {
                continue;
            };
            let mut by_count: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
            for record in records {
                for point in record["points"].as_array().into_iter().flatten() {
                    by_count
                        .entry(point["connections"].as_u64().unwrap_or(0))
                        .or_default()
                        .push(point);
                }
            }
            for (count, points) in by_count {
                let per = median(
                    points
                        .iter()
                        .filter_map(|p| p["rss_per_connection_kib"].as_f64())
                        .collect(),
                );
                let rss = median(
                    points
                        .iter()
                        .filter_map(|p| p["server_rss_kib"].as_f64())
                        .collect(),
                );
                let rate = median(
                    points
                        .iter()
                        .filter_map(|p| p["connect_per_s"].as_f64())
                        .collect(),
                );
                if count >= 10_000 {
                    let entry: &mut f64 = idle_rss.entry(server).or_insert(0.0);
                    *entry = entry.max(per.unwrap_or(0.0) * 1.024);
                }
                rows.entry(count).or_default().push(format!(
                    "| {count} | {server} | {} | {} MiB | {} |",
                    per.map_or("–".into(), |kib| format!("{:.1} kB", kib * 1.024)),
                    rss.map_or("–".into(), |kib| format!("{:.0}", kib / 1024.0)),
                    human(rate)
                ));
            }
        }
        for lines in rows.values() {
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    out.push_str(
        "\n## slow consumer (broadcast at max rate; some receivers stop reading)\n\n\
         | receivers | stalled | payload | server | healthy deliveries/s without → with stalled | loss | p99 ms without → with | the stalled receivers |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut slow_loss = BTreeMap::new();
    for ((name, key), servers) in &results.groups {
        if name != "slow-consumer" {
            continue;
        }
        let params = params_of(key);
        for server in SERVERS {
            let records = servers.get(server);
            let loss = med(records, "/healthy_throughput_loss");
            slow_loss.insert(server, loss);
            let fate = records
                .and_then(|records| records.last())
                .map(|record| {
                    let stalled = &record["with_stalled"];
                    format!(
                        "{} closed by the server, {} still open; they got {} of {} broadcasts",
                        stalled["stalled_closed_by_server"],
                        stalled["stalled_still_open"],
                        human(stalled["stalled_received"].as_f64().map(|received| {
                            received / stalled["stalled"].as_f64().unwrap_or(1.0).max(1.0)
                        })),
                        human(stalled["broadcasts_sent"].as_f64())
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {server} | {} → {} | {} | {} → {} | {fate} |",
                params["receivers"],
                params["stalled"],
                size_label(params["size"].as_u64().unwrap_or(0)),
                human(med(records, "/baseline/deliveries_per_s")),
                human(med(records, "/with_stalled/deliveries_per_s")),
                loss.map_or("–".into(), |loss| format!("{:.1} %", loss * 100.0)),
                ms(med(records, "/baseline/latency/p99_ms")),
                ms(med(records, "/with_stalled/latency/p99_ms")),
            );
        }
    }

    // The clock: the seed's sample at scale.
    out.push_str(
        "\n## clock (the seed's sample: `show_time(now)` to every client each tick through the typed context; raw pushes the same frame)\n\n\
         Server CPU per tick is the server's CPU time from just after one tick reached every client to just after the last measured one, \
         divided by the ticks (idle time between ticks included). *Last client* is the time from the tick's timestamp \
         (the server's clock) until the last client has it; p50/p99 over every measured tick of every repetition.\n\n\
         | clients | server | server CPU ms per tick | deliveries per server CPU-s | last client p50 ms | last client p99 ms | ticks | vs raw (per CPU-s) |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let mut clock_ratio: BTreeMap<&str, Spread> = BTreeMap::new();
    let mut clock_p99: BTreeMap<&str, Option<f64>> = BTreeMap::new();
    for ((name, key), servers) in &results.groups {
        if name != "clock" {
            continue;
        }
        let params = params_of(key);
        for server in ["ours-json", "ours-msgpack", "raw"] {
            let records = servers.get(server);
            let mut times: Vec<f64> = records
                .into_iter()
                .flatten()
                .filter(|record| record["ok"] == Value::Bool(true))
                .flat_map(|record| {
                    record["last_client_ms"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|value| value.as_f64())
                .collect();
            times.sort_by(f64::total_cmp);
            let quantile = |q: f64| {
                (!times.is_empty()).then(|| {
                    times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1]
                })
            };
            let versus = if server == "raw" {
                "–".to_owned()
            } else {
                let spread =
                    Spread::between(records, servers.get("raw"), "/deliveries_per_server_cpu_s");
                let text = spread.text();
                clock_ratio.insert(server, spread);
                text
            };
            clock_p99.insert(server, quantile(0.99));
            let _ = writeln!(
                out,
                "| {} | {server} | {} | {} | {} | {} | {} | {versus} |",
                params["clients"],
                ms(med(records, "/server_cpu_ms_per_tick")),
                human(med(records, "/deliveries_per_server_cpu_s")),
                ms(quantile(0.5)),
                ms(quantile(0.99)),
                times.len()
            );
        }
    }

    // The connect storm.
    out.push_str(
        "\n## connect storm (new connections as fast as the server takes them, kept open until the storm ends)\n\n\
         A connect of ours is what the official clients do: `POST /negotiate` on a connection of its own, \
         the WebSocket upgrade with the negotiated id, the SignalR handshake. A connect of raw is the WebSocket upgrade only \
         (it has nothing more), so the ratio prices the SignalR connection setup as a whole (the goal's definition). \
         The `-skip-negotiation` rows (newer runs only) are our hub's clients connecting as the JS client's \
         `skipNegotiation: true` does: the WebSocket upgrade at the hub's URL without an id, then the handshake, on a \
         fresh server right after the full storm; their ratio is the like-for-like comparison of the transport and \
         handshake with raw's upgrade, without negotiate's request and connection of its own.\n\n\
         | connections | at once | server | connects/s | connects per server CPU-s | connect p50 ms | connect p99 ms | vs raw (per CPU-s) | vs raw (per s) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let mut storm_ratio: BTreeMap<String, Spread> = BTreeMap::new();
    for ((name, key), servers) in &results.groups {
        if name != "connect-storm" {
            continue;
        }
        let params = params_of(key);
        let skip_json = format!("ours-json{}", crate::runner::SKIP_NEGOTIATION);
        let skip_msgpack = format!("ours-msgpack{}", crate::runner::SKIP_NEGOTIATION);
        for server in [
            "ours-json",
            skip_json.as_str(),
            "ours-msgpack",
            skip_msgpack.as_str(),
            "raw",
        ] {
            let records = servers.get(server);
            // Runs before the skip-negotiation storm existed have no such
            // rows.
            if records.is_none() && server.ends_with(crate::runner::SKIP_NEGOTIATION) {
                continue;
            }
            let (per_cpu, per_second) = if server == "raw" {
                ("–".to_owned(), "–".to_owned())
            } else {
                let per_cpu =
                    Spread::between(records, servers.get("raw"), "/connects_per_server_cpu_s");
                let per_second = Spread::between(records, servers.get("raw"), "/connects_per_s");
                let texts = (per_cpu.text(), per_second.text());
                storm_ratio.insert(server.to_owned(), per_cpu);
                texts
            };
            let _ = writeln!(
                out,
                "| {} | {} | {server} | {} | {} | {} | {} | {per_cpu} | {per_second} |",
                params["connections"],
                params["concurrency"],
                human(med(records, "/connects_per_s")),
                human(med(records, "/connects_per_server_cpu_s")),
                ms(med(records, "/connect_p50_ms")),
                ms(med(records, "/connect_p99_ms")),
            );
        }
    }
    // The two storm rows of our hub side by side: the goal's measure and
    // the like-for-like one.
    for (protocol, server) in [("JSON", "ours-json"), ("MessagePack", "ours-msgpack")] {
        let skipped = format!("{server}{}", crate::runner::SKIP_NEGOTIATION);
        if let (Some(full), Some(skipped)) = (storm_ratio.get(server), storm_ratio.get(&skipped)) {
            let _ = writeln!(
                out,
                "\n{protocol}: per server CPU-second, our hub takes {} as many full SignalR connects \
                 (negotiate, upgrade, handshake: the goal's measure) as raw takes upgrades, and {} as many \
                 connects without negotiation (upgrade and handshake: like for like).",
                full.text(),
                skipped.text()
            );
        }
    }

    // The goals of issue 21, for each hub protocol, met or missed.
    let status = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let mut goals: Vec<(String, String, Option<bool>)> = Vec::new();
    // Headline ratios whose spread RESULTS.md states.
    let mut headline: Vec<(String, Spread)> = Vec::new();
    let geo_text = |spread: &Spread| {
        if spread.by_repetition.is_empty() {
            "–".to_owned()
        } else {
            format!("geometric mean {}", spread.text())
        }
    };
    for (protocol, prefix, server) in [
        ("JSON", "json", "ours-json"),
        ("MessagePack", "msgpack", "ours-msgpack"),
    ] {
        let rss = idle_rss.get(server).copied();
        goals.push((
            format!("idle: server RSS per connection ({protocol}, worst checkpoint ≥ 10,000 connections) ≤ 6 kB"),
            rss.map_or("–".into(), |kb| format!("{kb:.1} kB")),
            rss.map(|kb| kb <= 6.0),
        ));
        let (echo_raw, echo_worst) = echo.summary(&format!("{prefix}/raw"));
        goals.push((
            format!("echo deliveries per server CPU-s, {protocol} vs raw ≥ 0.7×"),
            geo_text(&echo_raw),
            echo_raw.median().map(|geo| geo >= 0.7),
        ));
        goals.push((
            format!("echo, {protocol} vs raw: no case below 0.5×"),
            echo_worst.map_or("–".into(), |worst| format!("worst case {worst:.2}×")),
            echo_worst.map(|worst| worst >= 0.5),
        ));
        let (echo_sio, _) = echo.summary(&format!("{prefix}/sio"));
        goals.push((
            format!("echo deliveries per server CPU-s, {protocol} vs socketioxide ≥ 1.5×"),
            geo_text(&echo_sio),
            echo_sio.median().map(|geo| geo >= 1.5),
        ));
        let (broadcast_raw, _) = broadcast.summary(&format!("{prefix}/raw"));
        goals.push((
            format!("broadcast deliveries per server CPU-s, {protocol} vs raw ≥ 0.95×"),
            geo_text(&broadcast_raw),
            broadcast_raw.median().map(|geo| geo >= 0.95),
        ));
        let (broadcast_sio, _) = broadcast.summary(&format!("{prefix}/sio"));
        goals.push((
            format!("broadcast deliveries per server CPU-s, {protocol} vs socketioxide ≥ 2×"),
            geo_text(&broadcast_sio),
            broadcast_sio.median().map(|geo| geo >= 2.0),
        ));
        let clock = clock_ratio.get(server).cloned().unwrap_or_default();
        goals.push((
            format!("clock deliveries per server CPU-s, {protocol} vs raw ≥ 0.9×"),
            clock.text(),
            clock.median().map(|ratio| ratio >= 0.9),
        ));
        let p99 = clock_p99.get(server).copied().flatten();
        goals.push((
            format!("clock, {protocol}: last client p99 after the tick < 25 ms"),
            format!("{} ms", ms(p99)),
            p99.map(|p99| p99 < 25.0),
        ));
        let storm = storm_ratio.get(server).cloned().unwrap_or_default();
        goals.push((
            format!("connect storm, {protocol} vs raw (per server CPU-s) ≥ 0.8×"),
            storm.text(),
            storm.median().map(|ratio| ratio >= 0.8),
        ));
        headline.extend([
            (format!("echo {protocol}/raw"), echo_raw),
            (format!("echo {protocol}/socketioxide"), echo_sio),
            (format!("broadcast {protocol}/raw"), broadcast_raw),
            (format!("broadcast {protocol}/socketioxide"), broadcast_sio),
            (format!("clock {protocol}/raw"), clock),
            (format!("connect storm {protocol}/raw"), storm),
        ]);
        let p99 = single_p99.get(server).copied().flatten();
        goals.push((
            format!("(round 1) single broadcast to 10,000 receivers ({protocol}), p99 time to the last < 50 ms"),
            format!("{} ms", ms(p99)),
            p99.map(|p99| p99 < 50.0),
        ));
        let loss = slow_loss.get(server).copied().flatten();
        goals.push((
            format!(
                "(round 1) healthy receivers' throughput loss with 1 % stalled ({protocol}) < 10 %"
            ),
            loss.map_or("–".into(), |loss| format!("{:.1} %", loss * 100.0)),
            loss.map(|loss| loss < 0.10),
        ));
    }
    out.push_str(
        "\n## goals (issue 21; ratios from this run: median over the interleaved repetitions, min–max in brackets)\n\n\
         | goal | measured | status |\n|---|---|---|\n",
    );
    for (goal, measured, met) in &goals {
        let _ = writeln!(out, "| {goal} | {measured} | {} |", status(*met));
    }
    let widest = headline
        .iter()
        .filter_map(|(name, spread)| Some((name, spread.half_range()?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let repetitions = results.header["repetitions"].as_u64().unwrap_or(1);
    let pinned = &results.header["pinned"];
    let _ = writeln!(
        out,
        "\n**Spread.** {}; the repetitions of each job ran interleaved (ours-json, ours-msgpack, raw, socketioxide, \
         ours-json, …), so each ratio is taken between runs next to each other in time, once per repetition. {}",
        if pinned.is_null() {
            "The server and the load generator were not pinned".to_owned()
        } else {
            format!(
                "The server was pinned to core {} and the load generator to core {}",
                pinned["server_cpu"], pinned["loadgen_cpu"]
            )
        },
        match widest {
            Some((name, half)) if repetitions > 1 => format!(
                "Over the {repetitions} repetitions the widest headline ratio ({name}) spread ±{:.1} % around its median; \
                 the goal is that two full runs agree within ±10 % on every headline ratio.",
                half * 100.0
            ),
            _ => "One repetition: no spread to state.".to_owned(),
        }
    );

    let chart_name = png
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\n## chart\n\n![deliveries/s and p99 by receiver count](results/{chart_name})\n\n\
         Reproduce: `scripts/bench.sh` (all workloads, ~15 min) or `scripts/bench.sh --quick` (~1 min); \
         raw records are in `bench/results/*.jsonl`."
    );
    // The scale-out benchmark (scripts/scaleout-bench.sh) is a separate run:
    // its latest table, kept in results/scaleout.md, goes at the end.
    if let Some(scaleout) = markdown
        .parent()
        .and_then(|dir| std::fs::read_to_string(dir.join("results/scaleout.md")).ok())
    {
        out.push('\n');
        out.push_str(&scaleout);
    }
    std::fs::write(markdown, out)?;
    chart(&results, png)?;
    Ok(())
}

fn chart(results: &Results, png: &Path) -> Result<(), Error> {
    use plotters::prelude::*;

    let font = std::fs::read(FONT)
        .map_err(|e| format!("{FONT}: {e} (install the Debian package fonts-dejavu-core)"))?;
    // plotters keeps registered fonts for the life of the process.
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| "the chart font could not be loaded")?;

    // Broadcast at max rate, 32 B: per server, (receivers, deliveries/s, p99).
    let mut series: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for ((name, key), servers) in &results.groups {
        let params = params_of(key);
        if name != "broadcast" || params["size"].as_u64() != Some(32) {
            continue;
        }
        let receivers = params["receivers"].as_f64().unwrap_or(0.0);
        for server in SERVERS {
            let records = servers.get(server);
            if let (Some(rate), Some(p99)) = (
                med(records, "/deliveries_per_s"),
                med(records, "/latency/p99_ms"),
            ) {
                series
                    .entry(server)
                    .or_default()
                    .push((receivers, rate, p99));
            }
        }
    }
    let max_rate = series
        .values()
        .flatten()
        .map(|point| point.1)
        .fold(1.0, f64::max);
    let max_p99 = series
        .values()
        .flatten()
        .map(|point| point.2)
        .fold(1.0, f64::max);
    let root = BitMapBackend::new(png, (1200, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(600);
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(127, 127, 127),
        RGBColor(214, 39, 40),
    ];
    for (area, title, index, top) in [
        (
            &left,
            "broadcast 32 B: deliveries/s",
            1usize,
            max_rate * 1.15,
        ),
        (
            &right,
            "broadcast 32 B: p99 latency (ms)",
            2usize,
            max_p99 * 1.15,
        ),
    ] {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((50f64..20_000f64).log_scale(), 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("receivers")
            .x_label_formatter(&|value| format!("{value:.0}"))
            .y_label_formatter(&|value| {
                if index == 1 {
                    human(Some(*value))
                } else {
                    format!("{value:.0}")
                }
            })
            .label_style(("sans-serif", 14))
            .draw()?;
        for (color, server) in colors.iter().zip(SERVERS) {
            let Some(points) = series.get(server) else {
                continue;
            };
            let data: Vec<(f64, f64)> = points
                .iter()
                .map(|point| (point.0, if index == 1 { point.1 } else { point.2 }))
                .collect();
            let style = ShapeStyle::from(color).stroke_width(2);
            chart
                .draw_series(LineSeries::new(data.clone(), style))?
                .label(server)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(
                data.iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, ShapeStyle::from(color).filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    Ok(())
}
