//! What each confirmed transfer costs: machine CPU (from `/proc/stat`), the load generator's own
//! CPU, and for each node its context switches (every thread's, from `/proc/<pid>/task`) and the
//! engine's counters and timings from its `/metrics` — read before and after the measured
//! window, so set-up and warm-up are left out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::measure::{process_usage, TICKS_PER_SECOND};

/// The counters one node exposes that a cost is computed from.
const COUNTERS: [&str; 9] = [
    "tuma_raft_entries_applied_total",
    "tuma_ledger_commands_applied_total",
    "tuma_peer_frames_sent_total",
    "tuma_requests_forwarded_total",
    "tuma_storage_fsyncs_total",
    "tuma_engine_step_seconds_sum",
    "tuma_engine_step_seconds_count",
    "tuma_checkpoint_seconds_sum",
    "tuma_checkpoint_seconds_count",
];

/// Counters read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    /// Busy jiffies of the whole machine.
    machine_busy_ticks: u64,
    /// This process's CPU ticks (the load generator).
    own_ticks: u64,
    /// Per node: context switches (local nodes only) and `/metrics` counters.
    nodes: Vec<NodeReading>,
}

#[derive(Clone, Debug, Default)]
struct NodeReading {
    context_switches: Option<u64>,
    metrics: BTreeMap<String, f64>,
}

/// One node's costs over the window.
#[derive(Clone, Debug, Serialize)]
pub struct NodeCosts {
    pub node: usize,
    pub context_switches_per_transfer: Option<f64>,
    pub raft_entries_per_transfer: f64,
    pub commands_per_entry: f64,
    pub peer_frames_per_transfer: f64,
    /// Client requests the node passed on to their shard's leader.
    pub forwarded_per_transfer: f64,
    pub fsyncs_per_second: f64,
    /// The engine loop: mean step, and the slowest steps of the last minute (the exporter's
    /// rolling summary).
    pub engine_step_mean_ms: f64,
    pub engine_step_p99_ms: Option<f64>,
    pub checkpoints: f64,
    pub checkpoint_mean_ms: f64,
    pub checkpoint_max_ms: Option<f64>,
}

/// The whole run's costs.
#[derive(Clone, Debug, Serialize)]
pub struct Costs {
    /// Busy CPU time of the whole machine (nodes, load generator, everything else) per confirmed
    /// transfer.
    pub machine_cpu_us_per_transfer: f64,
    /// The machine's busy cores over the window.
    pub machine_busy_cores: f64,
    /// The load generator's own CPU: cores, and µs per confirmed transfer.
    pub load_generator_cores: f64,
    pub load_generator_cpu_us_per_transfer: f64,
    pub nodes: Vec<NodeCosts>,
}

impl Reading {
    /// Reads everything now: `pids` for local nodes (context switches), `metrics` the text of
    /// each node's `/metrics` (empty when unreachable).
    pub fn take(pids: &[Option<u32>], metrics: &[String]) -> Reading {
        let nodes = metrics
            .iter()
            .enumerate()
            .map(|(i, text)| NodeReading {
                context_switches: pids.get(i).copied().flatten().and_then(context_switches),
                metrics: parse_metrics(text),
            })
            .collect();
        Reading {
            machine_busy_ticks: machine_busy_ticks().unwrap_or_default(),
            own_ticks: process_usage(std::process::id()).map_or(0, |(ticks, _)| ticks),
            nodes,
        }
    }
}

/// Costs between two readings `seconds` apart, over `confirmed` transfers.
pub fn costs(before: &Reading, after: &Reading, seconds: f64, confirmed: u64) -> Costs {
    let per = |value: f64| value / (confirmed.max(1) as f64);
    let seconds = seconds.max(1e-9);
    let busy = after
        .machine_busy_ticks
        .saturating_sub(before.machine_busy_ticks) as f64;
    let machine_busy_cores = busy / TICKS_PER_SECOND / seconds;
    let own = after.own_ticks.saturating_sub(before.own_ticks) as f64 / TICKS_PER_SECOND;
    let nodes = before
        .nodes
        .iter()
        .zip(&after.nodes)
        .enumerate()
        .map(|(i, (b, a))| {
            let delta = |name: &str| {
                (a.metrics.get(name).copied().unwrap_or(0.0)
                    - b.metrics.get(name).copied().unwrap_or(0.0))
                .max(0.0)
            };
            let mean_ms = |sum: &str, count: &str| delta(sum) * 1000.0 / delta(count).max(1.0);
            let quantile_ms = |name: &str, q: &str| {
                a.metrics
                    .get(&format!("{name}{{quantile=\"{q}\"}}"))
                    .map(|s| s * 1000.0)
            };
            let entries = delta("tuma_raft_entries_applied_total");
            NodeCosts {
                node: i + 1,
                context_switches_per_transfer: match (b.context_switches, a.context_switches) {
                    (Some(b), Some(a)) => Some(per(a.saturating_sub(b) as f64)),
                    _ => None,
                },
                raft_entries_per_transfer: per(entries),
                commands_per_entry: delta("tuma_ledger_commands_applied_total") / entries.max(1.0),
                peer_frames_per_transfer: per(delta("tuma_peer_frames_sent_total")),
                forwarded_per_transfer: per(delta("tuma_requests_forwarded_total")),
                fsyncs_per_second: delta("tuma_storage_fsyncs_total") / seconds,
                engine_step_mean_ms: mean_ms(
                    "tuma_engine_step_seconds_sum",
                    "tuma_engine_step_seconds_count",
                ),
                engine_step_p99_ms: quantile_ms("tuma_engine_step_seconds", "0.99"),
                checkpoints: delta("tuma_checkpoint_seconds_count"),
                checkpoint_mean_ms: mean_ms(
                    "tuma_checkpoint_seconds_sum",
                    "tuma_checkpoint_seconds_count",
                ),
                checkpoint_max_ms: quantile_ms("tuma_checkpoint_seconds", "1"),
            }
        })
        .collect();
    Costs {
        machine_cpu_us_per_transfer: per(busy / TICKS_PER_SECOND * 1e6),
        machine_busy_cores,
        load_generator_cores: own / seconds,
        load_generator_cpu_us_per_transfer: per(own * 1e6),
        nodes,
    }
}

/// Busy jiffies from the first line of `/proc/stat` (idle and iowait are not busy).
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_busy_ticks(stat.lines().next()?)
}

fn parse_busy_ticks(cpu_line: &str) -> Option<u64> {
    let mut fields = cpu_line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let values: Vec<u64> = fields.take(8).filter_map(|f| f.parse().ok()).collect();
    if values.len() < 5 {
        return None;
    }
    let all: u64 = values.iter().sum();
    Some(all - values[3] - values[4])
}

/// Voluntary and involuntary context switches of every thread of a process.
fn context_switches(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// The samples of a Prometheus text exposition that a cost needs, by name (with labels, as
/// written): counters summed over their labels, summary quantiles kept by label.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let bare = name.split('{').next().unwrap_or(name);
        if COUNTERS.contains(&bare) {
            *out.entry(bare.to_string()).or_default() += value;
        } else if name.contains("quantile=") {
            out.insert(name.to_string(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ticks_leave_out_idle_and_iowait() {
        let line = "cpu  100 5 50 1000 20 3 2 0 0 0";
        assert_eq!(parse_busy_ticks(line), Some(160));
        assert_eq!(parse_busy_ticks("cpu0 1 2 3 4 5"), None);
    }

    #[test]
    fn counters_and_quantiles_are_read_from_the_exposition() {
        let text = "# TYPE tuma_raft_entries_applied_total counter\n\
            tuma_raft_entries_applied_total 40\n\
            tuma_peer_frames_sent_total{peer=\"2\"} 3\n\
            tuma_peer_frames_sent_total{peer=\"3\"} 4\n\
            tuma_engine_step_seconds{quantile=\"0.99\"} 0.004\n\
            tuma_engine_step_seconds_sum 2\n\
            tuma_engine_step_seconds_count 1000\n\
            tuma_other_total 9\n";
        let m = parse_metrics(text);
        assert_eq!(m["tuma_raft_entries_applied_total"], 40.0);
        assert_eq!(m["tuma_peer_frames_sent_total"], 7.0);
        assert_eq!(m["tuma_engine_step_seconds{quantile=\"0.99\"}"], 0.004);
        assert!(!m.contains_key("tuma_other_total"));
    }

    #[test]
    fn costs_are_deltas_per_confirmed_transfer() {
        let node = |entries: f64, frames: f64, steps: f64, step_sum: f64| NodeReading {
            context_switches: Some(1_000),
            metrics: [
                ("tuma_raft_entries_applied_total", entries),
                ("tuma_ledger_commands_applied_total", entries),
                ("tuma_peer_frames_sent_total", frames),
                ("tuma_engine_step_seconds_count", steps),
                ("tuma_engine_step_seconds_sum", step_sum),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        };
        let before = Reading {
            machine_busy_ticks: 1_000,
            own_ticks: 100,
            nodes: vec![node(10.0, 5.0, 100.0, 1.0)],
        };
        let mut after = Reading {
            machine_busy_ticks: 1_200,
            own_ticks: 150,
            nodes: vec![node(410.0, 605.0, 1_100.0, 3.0)],
        };
        after.nodes[0].context_switches = Some(1_500);
        let c = costs(&before, &after, 2.0, 100);
        // 200 busy ticks = 2 s of CPU over 100 transfers.
        assert!((c.machine_cpu_us_per_transfer - 20_000.0).abs() < 1e-6);
        assert!(
            (c.machine_busy_cores - 1.0).abs() < 1e-9,
            "{}",
            c.machine_busy_cores
        );
        assert!((c.load_generator_cores - 0.25).abs() < 1e-9);
        let n = &c.nodes[0];
        assert_eq!(n.context_switches_per_transfer, Some(5.0));
        assert_eq!(n.raft_entries_per_transfer, 4.0);
        assert_eq!(n.commands_per_entry, 1.0);
        assert_eq!(n.peer_frames_per_transfer, 6.0);
        assert!((n.engine_step_mean_ms - 2.0).abs() < 1e-9);
    }
}
