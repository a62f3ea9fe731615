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
    for input in inputs {
        let text = std::fs::read_to_string(input)?;
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let record: Value = serde_json::from_str(line)?;
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

fn ratio(ours: Option<f64>, other: Option<f64>) -> (String, Option<f64>) {
    match (ours, other) {
        (Some(ours), Some(other)) if other > 0.0 => {
            let ratio = ours / other;
            (format!("{ratio:.2}×"), Some(ratio))
        }
        _ => ("–".into(), None),
    }
}

fn geomean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some((values.iter().map(|value| value.ln()).sum::<f64>() / values.len() as f64).exp())
}

/// Ratios of one kind, collected across rows for the targets.
#[derive(Default)]
struct RatioSet {
    values: BTreeMap<&'static str, Vec<f64>>,
}

impl RatioSet {
    fn push(&mut self, name: &'static str, value: Option<f64>) {
        if let Some(value) = value {
            self.values.entry(name).or_default().push(value);
        }
    }

    fn summary(&self, name: &str) -> (Option<f64>, Option<f64>) {
        let values = self.values.get(name).map(Vec::as_slice).unwrap_or(&[]);
        (
            geomean(values),
            values.iter().copied().min_by(f64::total_cmp),
        )
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
        "\nDeliveries per server CPU-second (the headline) and ratios from the same run:\n\n\
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
                ratio(value(ours), value(other))
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
         Generated by `scripts/bench.sh` ({} mode, {} repetition(s) in random order) from {}; \
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
         (HdrHistogram). Server CPU is utime+stime from `/proc/PID/stat`. ⚠ marks runs where the \
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

    // Targets of the issue, for ours (JSON; MessagePack alongside).
    out.push_str("\n## targets (ours vs the others, ratios from this run)\n\n| target | measured | status |\n|---|---|---|\n");
    let status = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let mut target = |name: &str, set: &RatioSet, key: &str, goal: f64| {
        let (geo, min) = set.summary(key);
        let _ = writeln!(
            out,
            "| {name} ≥ {goal}× | geometric mean {} (worst case {}) | {} |",
            geo.map_or("–".into(), |v| format!("{v:.2}×")),
            min.map_or("–".into(), |v| format!("{v:.2}×")),
            status(geo.map(|geo| geo >= goal))
        );
    };
    target(
        "broadcast deliveries/CPU-s, JSON vs raw",
        &broadcast,
        "json/raw",
        0.9,
    );
    target(
        "broadcast deliveries/CPU-s, JSON vs socketioxide",
        &broadcast,
        "json/sio",
        2.0,
    );
    target(
        "broadcast deliveries/CPU-s, MessagePack vs raw",
        &broadcast,
        "msgpack/raw",
        0.9,
    );
    target(
        "broadcast deliveries/CPU-s, MessagePack vs socketioxide",
        &broadcast,
        "msgpack/sio",
        2.0,
    );
    target("echo calls/CPU-s, JSON vs raw", &echo, "json/raw", 0.7);
    target(
        "echo calls/CPU-s, JSON vs socketioxide",
        &echo,
        "json/sio",
        1.5,
    );
    target(
        "echo calls/CPU-s, MessagePack vs raw",
        &echo,
        "msgpack/raw",
        0.7,
    );
    target(
        "echo calls/CPU-s, MessagePack vs socketioxide",
        &echo,
        "msgpack/sio",
        1.5,
    );
    for server in ["ours-json", "ours-msgpack"] {
        let rss = idle_rss.get(server).copied();
        let _ = writeln!(
            out,
            "| server RSS per idle SignalR connection ({server}, ≥ 10,000 connections) ≤ 8 kB | {} | {} |",
            rss.map_or("–".into(), |kb| format!("{kb:.1} kB")),
            status(rss.map(|kb| kb <= 8.0))
        );
        let p99 = single_p99.get(server).copied().flatten();
        let _ = writeln!(
            out,
            "| single broadcast to 10,000 receivers ({server}), p99 time to the last < 50 ms | {} ms | {} |",
            ms(p99),
            status(p99.map(|p99| p99 < 50.0))
        );
        let loss = slow_loss.get(server).copied().flatten();
        let _ = writeln!(
            out,
            "| healthy receivers' throughput loss with 1 % stalled ({server}) < 10 % | {} | {} |",
            loss.map_or("–".into(), |loss| format!("{:.1} %", loss * 100.0)),
            status(loss.map(|loss| loss < 0.10))
        );
    }

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
