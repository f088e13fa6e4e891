//! What a run measured.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds up to a minute.
const LATENCY_US_MAX: u64 = 60_000_000;

/// Per-second figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Second {
    pub confirmed: u64,
    pub failed: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One node's resource use over the measured window.
#[derive(Clone, Debug, Serialize)]
pub struct NodeUsage {
    pub node: usize,
    /// CPU time used divided by wall time (1.0 = one core busy).
    pub cpu_cores: f64,
    pub peak_rss_mib: f64,
}

/// The whole result.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    pub workload: String,
    pub nodes: usize,
    pub clients: usize,
    /// Which load generator sent the requests, and where (`lean client, a node at random`).
    pub load_client: String,
    pub duration_s: f64,
    pub confirmed: u64,
    pub failed: u64,
    pub errors: u64,
    pub failed_by_result: BTreeMap<String, u64>,
    pub tps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub seconds: Vec<Second>,
    /// (latency ms, fraction of confirmed transfers at or below it).
    pub cdf: Vec<(f64, f64)>,
    pub node_usage: Vec<NodeUsage>,
    /// What each confirmed transfer cost (machine CPU, the load generator, each node's
    /// switches, entries, frames, fsyncs, engine steps and checkpoints); none for a baseline.
    pub costs: Option<crate::costs::Costs>,
    /// Customers registered (in bulk) before the run, and the import rate.
    pub accounts: usize,
    pub import_rows_per_s: f64,
    /// Each local node's resident memory (MiB), sampled once a second from the warm-up on:
    /// `[second][node]`.
    pub rss_mib_per_second: Vec<Vec<f64>>,
}

/// Collects samples during the measured window.
pub struct Recorder {
    all: Histogram<u64>,
    per_second: Vec<(Histogram<u64>, u64)>,
    pub failed_by_result: BTreeMap<String, u64>,
    pub errors: u64,
}

impl Recorder {
    pub fn new(seconds: usize) -> Recorder {
        let histogram = || Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("static bounds");
        Recorder {
            all: histogram(),
            per_second: (0..=seconds).map(|_| (histogram(), 0)).collect(),
            failed_by_result: BTreeMap::new(),
            errors: 0,
        }
    }

    pub fn confirmed(&mut self, second: usize, latency_us: u64) {
        let latency = latency_us.clamp(1, LATENCY_US_MAX);
        let _ = self.all.record(latency);
        if let Some((h, _)) = self.per_second.get_mut(second) {
            let _ = h.record(latency);
        }
    }

    pub fn failed(&mut self, second: usize, result: &str) {
        *self.failed_by_result.entry(result.to_string()).or_default() += 1;
        if let Some((_, failed)) = self.per_second.get_mut(second) {
            *failed += 1;
        }
    }

    pub fn finish(
        self,
        workload: &str,
        nodes: usize,
        clients: usize,
        duration_s: f64,
        node_usage: Vec<NodeUsage>,
    ) -> BenchResult {
        let ms = |us: u64| us as f64 / 1000.0;
        let h = &self.all;
        let confirmed = h.len();
        let failed = self.failed_by_result.values().sum();
        let cdf = (0..=100).map(|i| {
            let q = f64::from(i) / 100.0;
            (ms(h.value_at_quantile(q)), q)
        });
        BenchResult {
            load_client: String::new(),
            workload: workload.to_string(),
            nodes,
            clients,
            duration_s,
            confirmed,
            failed,
            errors: self.errors,
            failed_by_result: self.failed_by_result.clone(),
            tps: confirmed as f64 / duration_s.max(0.001),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            seconds: self
                .per_second
                .iter()
                .map(|(h, failed)| Second {
                    confirmed: h.len(),
                    failed: *failed,
                    p50_ms: ms(h.value_at_quantile(0.5)),
                    p99_ms: ms(h.value_at_quantile(0.99)),
                })
                .collect(),
            cdf: cdf.collect(),
            node_usage,
            costs: None,
            accounts: 0,
            import_rows_per_s: 0.0,
            rss_mib_per_second: Vec::new(),
        }
    }
}

/// CPU ticks (user + system) and peak resident memory of a process, from `/proc`.
pub fn process_usage(pid: u32) -> Option<(u64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((ticks, status_kib(pid, "VmHWM:")? / 1024.0))
}

/// Current resident memory of a process (MiB), from `/proc`.
pub fn resident_mib(pid: u32) -> Option<f64> {
    Some(status_kib(pid, "VmRSS:")? / 1024.0)
}

/// A `kB` field of `/proc/<pid>/status`, such as `VmRSS:`.
fn status_kib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ; 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;
