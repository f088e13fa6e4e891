//! `tuma bench` from the outside: a short run on a local cluster ends with the contract line and
//! writes its JSON, markdown and SVG results.

use std::process::Command;

#[test]
fn a_short_bench_reports_its_contract_line_and_files() {
    let out = std::env::temp_dir().join(format!("tuma-bench-test-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .args([
            "bench",
            "--nodes",
            "3",
            "--shards",
            "8",
            "--duration",
            "4s",
            "--warmup",
            "1s",
            "--accounts",
            "20",
            "--clients",
            "8",
            "--fast-pin-hash",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let keys: Vec<&str> = last
        .split(' ')
        .map(|kv| kv.split('=').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "workload",
            "tuma_tps",
            "p50_ms",
            "p99_ms",
            "postgres_tps",
            "ratio"
        ],
        "{last}"
    );
    let tps: f64 = last
        .split(' ')
        .nth(1)
        .unwrap()
        .trim_start_matches("tuma_tps=")
        .parse()
        .unwrap();
    assert!(tps > 0.0, "{last}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap();
    assert!(json["tuma"]["confirmed"].as_u64().unwrap() > 0);
    assert_eq!(json["tuma"]["node_usage"].as_array().unwrap().len(), 3);
    // What a transfer cost, read from /proc and each node's /metrics over the window.
    let costs = &json["tuma"]["costs"];
    assert!(
        costs["machine_cpu_us_per_transfer"].as_f64().unwrap() > 0.0,
        "{costs}"
    );
    let nodes = costs["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{costs}");
    for node in nodes {
        // Leaders batch a loop's proposals into one entry: fewer entries than commands.
        assert!(
            node["raft_entries_per_transfer"].as_f64().unwrap() > 0.0,
            "{node}"
        );
        assert!(
            node["peer_frames_per_transfer"].as_f64().unwrap() > 0.0,
            "{node}"
        );
        assert!(
            node["commands_per_entry"].as_f64().unwrap() >= 1.0,
            "{node}"
        );
        assert!(
            node["context_switches_per_transfer"].as_f64().unwrap() > 0.0,
            "{node}"
        );
    }
    assert!(std::fs::read_to_string(out.join("plots.svg"))
        .unwrap()
        .contains("polyline"));
    assert!(std::fs::read_to_string(out.join("result.md"))
        .unwrap()
        .starts_with("| workload |"));
    for bad in [
        &["bench", "--baseline", "oracle"][..],
        &["bench", "--baseline", "postgres", "--workload", "day"],
        &["bench", "--accounts", "0"],
        &["bench", "--skip-setup"],
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_tuma"))
            .args(bad)
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{bad:?} should be refused before any cluster starts"
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("error"),
            "{bad:?}"
        );
    }
    std::fs::remove_dir_all(&out).unwrap();
}
