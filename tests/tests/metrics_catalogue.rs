//! The metrics catalogue (`docs/metrics.md`) names exactly the metrics the code exports, and
//! the alert rules (`deploy/prometheus/tuma-alerts.yml`) and the Grafana dashboard
//! (`deploy/grafana/tuma.json`) use only catalogued metrics — so none of them drifts from the
//! code. Reads files only.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, skipping build output and dot directories.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable directory") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            sources(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The metric names registered with `counter!`, `gauge!` or `histogram!` in `text`, and those
/// named by `METRIC_…` constants (registered through the constant).
fn registered(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let constant = line
            .trim_start()
            .trim_start_matches("pub ")
            .strip_prefix("const METRIC_");
        if let Some(quoted) = constant.and_then(|rest| rest.split_once("&str = \"")) {
            let name: String = quoted.1.chars().take_while(|c| *c != '"').collect();
            if name.starts_with("tuma_") {
                names.push(name);
            }
        }
    }
    for macro_name in ["counter!(", "gauge!(", "histogram!("] {
        let mut rest = text;
        while let Some(at) = rest.find(macro_name) {
            rest = &rest[at + macro_name.len()..];
            let Some(quoted) = rest.trim_start().strip_prefix('"') else {
                continue;
            };
            let name: String = quoted.chars().take_while(|c| *c != '"').collect();
            if name.starts_with("tuma_") {
                names.push(name);
            }
        }
    }
    names
}

/// Every `tuma_…` token in `text`.
fn mentioned(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tuma_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len().max(1)..];
        names.insert(name);
    }
    names
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_catalogue_the_alerts_and_the_dashboard_agree_with_the_code() {
    let root = workspace();
    let mut files = Vec::new();
    for crate_dir in [
        "actors", "cluster", "service", "channels", "daraja", "node", "chaos", "bench",
    ] {
        sources(&root.join(crate_dir), &mut files);
    }
    let exported: BTreeSet<String> = files
        .iter()
        .flat_map(|file| registered(&read(file)))
        .collect();
    assert!(
        exported.len() > 50 && exported.contains("tuma_storage_fsyncs_total"),
        "the scan found the code's metrics: {exported:?}"
    );
    let catalogue_text = read(&root.join("docs/metrics.md"));
    let catalogued: BTreeSet<String> = catalogue_text
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| name.starts_with("tuma_"))
        .map(str::to_string)
        .collect();
    let missing: Vec<_> = exported.difference(&catalogued).collect();
    assert!(
        missing.is_empty(),
        "exported but not in docs/metrics.md: {missing:?}"
    );
    let stale: Vec<_> = catalogued.difference(&exported).collect();
    assert!(
        stale.is_empty(),
        "in docs/metrics.md but not exported: {stale:?}"
    );

    for used_by in [
        "deploy/prometheus/tuma-alerts.yml",
        "deploy/grafana/tuma.json",
    ] {
        let used = mentioned(&read(&root.join(used_by)));
        assert!(!used.is_empty(), "{used_by} uses no metric");
        let unknown: Vec<_> = used.difference(&catalogued).collect();
        assert!(
            unknown.is_empty(),
            "{used_by} uses uncatalogued metrics: {unknown:?}"
        );
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&root.join("deploy/grafana/tuma.json"))).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels
        .iter()
        .all(|p| p["targets"].as_array().is_some_and(|t| !t.is_empty())));
}

#[test]
fn the_scanner_finds_names_across_lines_and_ignores_others() {
    let code = "metrics::counter!(\n    \"tuma_a_total\",\n    \"kind\" => k\n);\nhistogram!(\"tuma_b_seconds\");\ncounter!(name);\ngauge!(\"other\");";
    assert_eq!(registered(code), vec!["tuma_a_total", "tuma_b_seconds"]);
    let constant = "pub const METRIC_X: &str = \"tuma_x_total\";\nconst OTHER: &str = \"tuma_y\";";
    assert_eq!(registered(constant), vec!["tuma_x_total"]);
    assert_eq!(
        mentioned("rate(tuma_x_total[1m]) / tuma_y"),
        ["tuma_x_total", "tuma_y"].map(String::from).into()
    );
}
