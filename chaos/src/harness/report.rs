//! The report: an SVG with throughput, latency and the audit over time, fault periods shaded,
//! in the manner of Jepsen's plots. Written by hand: three line charts need no plotting crate.

use std::fmt::Write;

use super::checker::AuditSample;
use super::faults::FaultEvent;
use super::workload::Op;
use crate::load::Outcome;

const WIDTH: f64 = 1000.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const TOP: f64 = 40.0;
const GAP: f64 = 40.0;

struct Series<'a> {
    label: &'a str,
    color: &'a str,
    points: Vec<(f64, f64)>,
}

fn panel(svg: &mut String, index: usize, title: &str, seconds: f64, series: &[Series]) {
    let y0 = TOP + index as f64 * (PANEL + GAP);
    let plot_w = WIDTH - LEFT - 20.0;
    let max_y = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let _ = write!(
        svg,
        r##"<text x="{LEFT}" y="{}" font-size="13" font-weight="bold">{title}</text>"##,
        y0 - 8.0
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL}" fill="none" stroke="#999"/>"##
    );
    for tick in 0..=4 {
        let v = max_y * tick as f64 / 4.0;
        let y = y0 + PANEL - PANEL * tick as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{v:.0}</text><line x1="{LEFT}" x2="{}" y1="{y}" y2="{y}" stroke="#eee"/>"##,
            LEFT - 4.0,
            y + 3.0,
            LEFT + plot_w
        );
    }
    for (i, s) in series.iter().enumerate() {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| {
                format!(
                    "{:.1},{:.1}",
                    LEFT + plot_w * x / seconds.max(1.0),
                    y0 + PANEL - PANEL * y / max_y
                )
            })
            .collect();
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>"##,
            s.color,
            path.join(" ")
        );
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" fill="{}">{}</text>"##,
            LEFT + plot_w - 150.0,
            y0 + 14.0 + 13.0 * i as f64,
            s.color,
            s.label
        );
    }
}

/// Per-second buckets of the operations' start times.
fn per_second(ops: &[Op], seconds: usize) -> Vec<Vec<&Op>> {
    let mut buckets = vec![Vec::new(); seconds + 1];
    for op in ops {
        let s = (op.started_ms / 1000) as usize;
        if s <= seconds {
            buckets[s].push(op);
        }
    }
    buckets
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}

/// Renders the whole report.
pub fn svg(
    ops: &[Op],
    audits: &[AuditSample],
    faults: &[FaultEvent],
    duration_ms: u64,
    summary: &str,
) -> String {
    let seconds = (duration_ms / 1000) as usize;
    let buckets = per_second(ops, seconds);
    let x = |s: usize| s as f64 + 0.5;
    let confirmed = buckets
        .iter()
        .enumerate()
        .map(|(s, b)| {
            (
                x(s),
                b.iter()
                    .filter(|o| matches!(o.outcome, Outcome::Confirmed { .. }))
                    .count() as f64,
            )
        })
        .collect();
    let failed = buckets
        .iter()
        .enumerate()
        .map(|(s, b)| {
            (
                x(s),
                b.iter()
                    .filter(|o| !matches!(o.outcome, Outcome::Confirmed { .. }))
                    .count() as f64,
            )
        })
        .collect();
    let latency = |p: f64| -> Vec<(f64, f64)> {
        buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(s, b)| {
                let mut l: Vec<u64> = b.iter().map(|o| o.latency_ms).collect();
                l.sort_unstable();
                (x(s), percentile(&l, p))
            })
            .collect()
    };
    let height = TOP + 3.0 * (PANEL + GAP) + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##
    );
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="18" font-size="14">tuma chaos — {summary}</text>"##
    );
    let plot_w = WIDTH - LEFT - 20.0;
    for f in faults {
        let x0 = LEFT + plot_w * f.start_ms as f64 / duration_ms.max(1) as f64;
        let x1 = LEFT + plot_w * f.end_ms.max(f.start_ms + 100) as f64 / duration_ms.max(1) as f64;
        let _ = write!(
            out,
            r##"<rect x="{x0:.1}" y="{TOP}" width="{:.1}" height="{}" fill="#f5a623" fill-opacity="0.18"><title>{}</title></rect>"##,
            x1 - x0,
            3.0 * (PANEL + GAP) - GAP,
            f.description
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{}" font-size="9" fill="#b36b00">{}</text>"##,
            x0 + 2.0,
            TOP + 3.0 * (PANEL + GAP) - GAP + 12.0,
            f.kind.name()
        );
    }
    let s = seconds as f64 + 1.0;
    panel(
        &mut out,
        0,
        "throughput (transfers started per second)",
        s,
        &[
            Series {
                label: "confirmed",
                color: "#2a9d2a",
                points: confirmed,
            },
            Series {
                label: "failed or ambiguous",
                color: "#d33",
                points: failed,
            },
        ],
    );
    panel(
        &mut out,
        1,
        "latency (ms)",
        s,
        &[
            Series {
                label: "p50",
                color: "#1f77b4",
                points: latency(0.5),
            },
            Series {
                label: "p99",
                color: "#9467bd",
                points: latency(0.99),
            },
        ],
    );
    let in_flight = audits
        .iter()
        .filter_map(|a| a.in_flight.map(|n| (a.at_ms as f64 / 1000.0, n as f64)))
        .collect();
    let imbalance = audits
        .iter()
        .filter_map(|a| {
            a.balance_sum_cents
                .map(|c| (a.at_ms as f64 / 1000.0, c.abs() as f64))
        })
        .collect();
    panel(
        &mut out,
        2,
        "audit: |Σ balances| in cents (must stay 0) and transfers in flight",
        s,
        &[
            Series {
                label: "|Σ balances|",
                color: "#d33",
                points: imbalance,
            },
            Series {
                label: "in flight",
                color: "#555",
                points: in_flight,
            },
        ],
    );
    out.push_str("</svg>\n");
    out
}
