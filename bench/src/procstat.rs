//! CPU time and memory from `/proc`.

/// Clock ticks per second of `/proc/*/stat` (`CLK_TCK`, 100 on Linux).
const CLOCK_TICKS: f64 = 100.0;

/// CPU seconds of a process (`"self"` or a pid): the sum of its threads'
/// run time from `/proc/PID/task/*/schedstat` (nanoseconds, as the
/// scheduler counts it), or utime + stime from `/proc/PID/stat` (in 10 ms
/// clock ticks) where schedstat is missing. The nanoseconds matter: a
/// clock tick to a few thousand clients or a short connect storm costs
/// tens of milliseconds, where 10 ms steps would decide a ratio. (Threads
/// that end take their run time with them; the servers and the load
/// generator keep theirs for the whole run: no blocking pools.)
pub fn cpu_seconds(pid: &str) -> f64 {
    scheduled_seconds(pid).unwrap_or_else(|| ticked_seconds(pid))
}

fn scheduled_seconds(pid: &str) -> Option<f64> {
    let mut nanos = 0u64;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(task) = task else { continue };
        // A thread that ended between the listing and the read counts nothing.
        let Ok(schedstat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        nanos += schedstat.split_whitespace().next()?.parse::<u64>().ok()?;
        threads += 1;
    }
    (threads > 0).then(|| nanos as f64 / 1e9)
}

fn ticked_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may contain spaces: fields start after its `)`.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// Resident set size of a process in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds the whole machine was busy (all cores, not idle/iowait).
pub fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let values: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|value| value.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: f64 = values
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != 3 && *index != 4)
        .take(8)
        .map(|(_, value)| value)
        .sum();
    busy / CLOCK_TICKS
}

/// A short description of the machine: CPU model, cores, memory, kernel.
pub fn machine_description() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    // The machine's cores, not this process's (pinned to one of them).
    let cores = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count()
        .max(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_owned();
    serde_json::json!({
        "cpu": model,
        "cores": cores,
        "memory_gib": (memory_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "loadavg": load,
    })
}
