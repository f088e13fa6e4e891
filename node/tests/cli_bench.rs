//! `tuma bench` from the outside: a short run on a local cluster ends with the contract line and
//! writes its JSON, markdown and SVG results.

use std::process::Command;

/// Runs a short bench on a local 3-node cluster with `extra` flags; answers its standard output
/// and the result directory.
fn short_bench(name: &str, extra: &[&str]) -> (String, std::path::PathBuf) {
    let out = std::env::temp_dir().join(format!("tuma-bench-test-{name}-{}", std::process::id()));
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
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (stdout, out)
}

fn result_json(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("result.json")).unwrap()).unwrap()
}

#[test]
fn a_short_bench_reports_its_contract_line_and_files() {
    let (stdout, out) = short_bench("default", &[]);
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
    let json = result_json(&out);
    assert_eq!(json["tuma"]["load_client"], "lean client, a node at random");
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
        &[
            "bench",
            "--baseline",
            "postgres-replicated",
            "--workload",
            "skewed",
        ],
        &["bench", "--accounts", "0"],
        &["bench", "--skip-setup"],
        &["bench", "--client", "curl"],
        &["bench", "--route", "nearest"],
        &["bench", "--client", "gateway", "--route", "leader"],
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

/// With `--route leader` the lean client sends each request to its payer shard's leader: the
/// nodes forward few (leaders can move between two reads of the map), where with a node at
/// random about two in three are forwarded (3 nodes); balance reads (the `day` mix) go the same
/// way. The old client still runs.
#[test]
fn the_lean_client_routes_to_leaders_and_says_so() {
    let forwarded = |json: &serde_json::Value| -> f64 {
        json["tuma"]["costs"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["forwarded_per_transfer"].as_f64().unwrap())
            .sum()
    };
    // A run with `flags` whose results name `client`: its forwarded requests per transfer.
    let labelled = |name: &str, flags: &[&str], client: &str| -> f64 {
        let (_, out) = short_bench(name, flags);
        let json = result_json(&out);
        assert_eq!(json["tuma"]["load_client"], client);
        assert!(json["tuma"]["confirmed"].as_u64().unwrap() > 0);
        let md = std::fs::read_to_string(out.join("result.md")).unwrap();
        assert!(md.contains(&format!("Load generator: {client}.")), "{md}");
        std::fs::remove_dir_all(out).unwrap();
        forwarded(&json)
    };
    let to_leaders = labelled(
        "leader",
        &["--route", "leader", "--workload", "day"],
        "lean client, to the payer shard's leader",
    );
    let to_any = labelled(
        "gateway",
        &["--client", "gateway", "--workload", "day"],
        "gateway client (reqwest), a node at random",
    );
    assert!(
        to_leaders < to_any * 0.6,
        "forwarded per transfer: {to_leaders:.2} to leaders, {to_any:.2} to any node"
    );
}

/// `--baseline postgres-replicated` runs the single instance and then a primary with two quorum
/// standbys, reports both, and keeps the contract line last. Needs PostgreSQL installed (the
/// baseline script installs it from the Debian packages, which a test does not do).
#[test]
fn the_replicated_baseline_is_reported_beside_the_single_one() {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.flatten()
                .any(|d| d.path().join("bin/pg_basebackup").exists())
        })
        .unwrap_or(false);
    if !installed {
        eprintln!(
            "SKIPPED: PostgreSQL is not installed (scripts/postgres-baseline.sh installs it; \
             run `tuma bench --baseline postgres` once)"
        );
        return;
    }
    let (stdout, out) = short_bench("replicated", &["--baseline", "postgres-replicated"]);
    let lines: Vec<&str> = stdout.lines().collect();
    let last = lines[lines.len() - 1];
    assert!(last.starts_with("workload=transfers tuma_tps="), "{last}");
    assert!(!last.contains("postgres_tps=n/a"), "{last}");
    let before = lines[lines.len() - 2];
    assert!(
        before.starts_with("baseline=postgres-replicated postgres_replicated_tps="),
        "{before}"
    );
    let json = result_json(&out);
    for (key, nodes) in [("postgres", 1), ("postgres_replicated", 3)] {
        assert_eq!(json[key]["nodes"], nodes, "{key}");
        assert!(json[key]["confirmed"].as_u64().unwrap() > 0, "{key}");
    }
    let md = std::fs::read_to_string(out.join("result.md")).unwrap();
    assert!(
        md.contains("| transfers (postgres, primary + 2 quorum standbys) | 3 |"),
        "{md}"
    );
    std::fs::remove_dir_all(out).unwrap();
}
