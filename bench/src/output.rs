//! Results as JSON, a markdown table, SVG plots, and the summary line.

use std::fmt::Write;

use crate::measure::BenchResult;

/// The contract line; without a baseline its fields say `n/a`.
pub fn summary_line(result: &BenchResult, postgres: Option<&BenchResult>) -> String {
    let (pg, ratio) = match postgres {
        Some(pg) => (
            format!("{:.0}", pg.tps),
            format!("{:.2}", result.tps / pg.tps.max(1e-9)),
        ),
        None => ("n/a".to_string(), "n/a".to_string()),
    };
    format!(
        "workload={} tuma_tps={:.0} p50_ms={:.1} p99_ms={:.1} postgres_tps={pg} ratio={ratio}",
        result.workload, result.tps, result.p50_ms, result.p99_ms
    )
}

/// The line before the contract line when the replicated baseline ran: its throughput and
/// the ratio against it.
pub fn replicated_line(result: &BenchResult, replicated: &BenchResult) -> String {
    format!(
        "baseline=postgres-replicated postgres_replicated_tps={:.0} ratio_replicated={:.2}",
        replicated.tps,
        result.tps / replicated.tps.max(1e-9)
    )
}

/// A markdown table of the figures (the baselines' rows too, when run).
pub fn markdown(result: &BenchResult, baselines: &[&BenchResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| workload | nodes | clients | confirmed/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | failed | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
        result.workload,
        result.nodes,
        result.clients,
        result.tps,
        result.p50_ms,
        result.p90_ms,
        result.p99_ms,
        result.p999_ms,
        result.max_ms,
        result.failed,
        result.errors
    );
    for pg in baselines {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            pg.workload,
            pg.nodes,
            pg.clients,
            pg.tps,
            pg.p50_ms,
            pg.p90_ms,
            pg.p99_ms,
            pg.p999_ms,
            pg.max_ms,
            pg.failed,
            pg.errors
        );
    }
    if !result.load_client.is_empty() {
        let _ = writeln!(out, "\nLoad generator: {}.", result.load_client);
    }
    if result.accounts > 0 && result.import_rows_per_s > 0.0 {
        let _ = writeln!(
            out,
            "\n{} customers registered in bulk at {:.0} rows/s before the run.",
            result.accounts, result.import_rows_per_s
        );
    }
    if let (Some(first), Some(last)) = (
        result.rss_mib_per_second.first(),
        result.rss_mib_per_second.last(),
    ) {
        let mid = &result.rss_mib_per_second[result.rss_mib_per_second.len() / 2];
        let show = |sample: &[f64]| {
            sample
                .iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let _ = writeln!(
            out,
            "\nResident memory per node (MiB): {} at the start, {} halfway, {} at the end.",
            show(first),
            show(mid),
            show(last)
        );
    }
    if let Some(costs) = &result.costs {
        costs_table(&mut out, costs);
    }
    if !result.node_usage.is_empty() {
        let _ = writeln!(
            out,
            "\n| node | CPU (cores) | peak RSS MiB |\n|---|---|---|"
        );
        for n in &result.node_usage {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.0} |",
                n.node, n.cpu_cores, n.peak_rss_mib
            );
        }
    }
    out
}

/// What each confirmed transfer cost, machine-wide and per node.
fn costs_table(out: &mut String, costs: &crate::costs::Costs) {
    let _ = writeln!(
        out,
        "\nCost per confirmed transfer: **{:.0} µs of machine CPU** ({:.2} busy cores); the load \
         generator used {:.2} cores ({:.0} µs per transfer).",
        costs.machine_cpu_us_per_transfer,
        costs.machine_busy_cores,
        costs.load_generator_cores,
        costs.load_generator_cpu_us_per_transfer
    );
    let _ = writeln!(
        out,
        "\n| node | context switches / transfer | Raft entries / transfer | commands / entry | peer frames / transfer | requests forwarded / transfer | fsyncs / s | engine step mean ms | step p99 ms (last minute) | checkpoints | checkpoint mean ms | max ms |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let optional = |v: Option<f64>, places: usize| {
        v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.places$}"))
    };
    for n in &costs.nodes {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} | {} | {:.0} | {:.0} | {} |",
            n.node,
            optional(n.context_switches_per_transfer, 1),
            n.raft_entries_per_transfer,
            n.commands_per_entry,
            n.peer_frames_per_transfer,
            n.forwarded_per_transfer,
            n.fsyncs_per_second,
            n.engine_step_mean_ms,
            optional(n.engine_step_p99_ms, 2),
            n.checkpoints,
            n.checkpoint_mean_ms,
            optional(n.checkpoint_max_ms, 0)
        );
    }
}

/// A line: label, colour, points.
type Line<'a> = (&'a str, &'a str, Vec<(f64, f64)>);

fn chart(out: &mut String, y0: f64, title: &str, x_max: f64, x_label: &str, series: &[Line]) {
    let (left, width, height) = (60.0, 880.0, 180.0);
    let y_max = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(1e-9_f64, f64::max)
        * 1.1;
    let _ = write!(
        out,
        r##"<text x="{left}" y="{}" font-size="13" font-weight="bold">{title}</text><rect x="{left}" y="{y0}" width="{width}" height="{height}" fill="none" stroke="#999"/>"##,
        y0 - 6.0
    );
    for t in 0..=4 {
        let v = y_max * f64::from(t) / 4.0;
        let y = y0 + height - height * f64::from(t) / 4.0;
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{v:.1}</text>"##,
            left - 4.0,
            y + 3.0
        );
    }
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{x_label} (max {x_max:.1})</text>"##,
        left + width,
        y0 + height + 14.0
    );
    for (i, (label, color, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    left + width * x / x_max.max(1e-9),
                    y0 + height - height * y / y_max
                )
            })
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/><text x="{}" y="{}" font-size="11" fill="{color}">{label}</text>"##,
            path.join(" "),
            left + width - 140.0,
            y0 + 14.0 + 13.0 * i as f64
        );
    }
}

/// Throughput and latency over time, and the latency CDF.
pub fn svg(result: &BenchResult) -> String {
    let mut out = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="960" height="1000" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##,
    );
    let _ = write!(
        out,
        r##"<text x="60" y="20" font-size="14">tuma bench — {}</text>"##,
        summary_line(result, None)
    );
    let secs = result.seconds.len() as f64;
    let tps: Vec<(f64, f64)> = result
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.confirmed as f64))
        .collect();
    let p50: Vec<(f64, f64)> = result
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.p50_ms))
        .collect();
    let p99: Vec<(f64, f64)> = result
        .seconds
        .iter()
        .enumerate()
        .map(|(i, s)| (i as f64 + 0.5, s.p99_ms))
        .collect();
    chart(
        &mut out,
        50.0,
        "confirmed transfers per second",
        secs,
        "seconds",
        &[("confirmed/s", "#2a9d2a", tps)],
    );
    chart(
        &mut out,
        290.0,
        "latency over time (ms)",
        secs,
        "seconds",
        &[("p50", "#1f77b4", p50), ("p99", "#9467bd", p99)],
    );
    let cdf: Vec<(f64, f64)> = result.cdf.iter().map(|(ms, q)| (*ms, *q)).collect();
    let x_max = cdf.last().map_or(1.0, |p| p.0);
    chart(
        &mut out,
        530.0,
        "latency CDF (fraction of confirmed transfers)",
        x_max,
        "ms",
        &[("CDF", "#d33", cdf)],
    );
    if !result.rss_mib_per_second.is_empty() {
        const COLORS: [&str; 7] = [
            "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf",
        ];
        let nodes = result.rss_mib_per_second[0].len();
        let labels: Vec<String> = (1..=nodes).map(|n| format!("node {n}")).collect();
        let series: Vec<Line> = (0..nodes)
            .map(|n| {
                let points = result
                    .rss_mib_per_second
                    .iter()
                    .enumerate()
                    .map(|(i, sample)| (i as f64, sample.get(n).copied().unwrap_or(0.0)))
                    .collect();
                (labels[n].as_str(), COLORS[n % COLORS.len()], points)
            })
            .collect();
        chart(
            &mut out,
            770.0,
            "resident memory per node (MiB), from the warm-up on",
            result.rss_mib_per_second.len() as f64,
            "seconds",
            &series,
        );
    }
    out.push_str("</svg>\n");
    out
}
