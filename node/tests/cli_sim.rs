//! `tuma sim` from the outside: the summary line contract, replay, and bad input.

use std::process::Command;

fn tuma() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuma"))
}

/// Runs `tuma sim` with `args`; returns the summary line's fields after checking their names.
fn summary(args: &[&str]) -> Vec<(String, u64)> {
    let output = tuma().args(args).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let fields: Vec<(String, u64)> = last
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["seeds", "transfers", "committed", "aborted", "violations"],
        "{last}"
    );
    println!("{last}");
    fields
}

fn value(fields: &[(String, u64)], name: &str) -> u64 {
    fields.iter().find(|(k, _)| k == name).unwrap().1
}

#[test]
fn the_engine_simulator_passes_its_seeds_with_the_contract_summary_line() {
    let fields = summary(&["sim", "--seeds", "40"]);
    assert_eq!(value(&fields, "seeds"), 40);
    assert_eq!(value(&fields, "violations"), 0);
    let transfers = value(&fields, "transfers");
    assert!(transfers >= 40 * 55, "{transfers}");
    assert!(value(&fields, "committed") > transfers / 3);
    assert!(value(&fields, "aborted") > transfers / 10);
}

#[test]
fn the_model_simulator_passes_a_few_hundred_seeds() {
    let fields = summary(&["sim", "--model", "--seeds", "300"]);
    assert_eq!(value(&fields, "seeds"), 300);
    assert_eq!(value(&fields, "violations"), 0);
    let transfers = value(&fields, "transfers");
    assert!(transfers >= 300 * 200, "{transfers}");
    assert!(value(&fields, "committed") > transfers / 2);
    assert!(value(&fields, "aborted") > transfers / 10);
}

#[test]
fn a_planted_replica_destruction_fails_the_run_and_names_the_replay_command() {
    let output = tuma()
        .args([
            "sim",
            "--seeds",
            "60",
            "--seed-start",
            "40",
            "--plant-fault",
            "destroy-on-placement-change",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains("--plant-fault destroy-on-placement-change")
            && stdout.contains("destroyed its replica"),
        "{stdout}"
    );
}

#[test]
fn a_replayed_seed_writes_the_same_trace_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("tuma-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str, model: bool| {
        let path = dir.join(name);
        let mut command = tuma();
        command.args(["sim", "--seed", "11", "--trace"]).arg(&path);
        if model {
            command.arg("--model");
        }
        assert!(command.status().unwrap().success());
        std::fs::read(&path).unwrap()
    };
    for model in [false, true] {
        let (a, b) = (run("a.txt", model), run("b.txt", model));
        assert!(a.len() > 5_000, "trace is {} bytes", a.len());
        assert_eq!(a, b, "model: {model}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    for args in [
        &["sim", "--seeds", "0"][..],
        &["sim", "--seeds", "ten"],
        &["sim", "--transfers", "0"],
        &["sim", "--plant-fault", "nonsense"],
        &["sim", "--model", "--plant-fault", "presume-abort-early"],
    ] {
        let output = tuma().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../tuma.example.toml");
    let dir = std::env::temp_dir().join(format!("tuma-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "an-example-cluster-secret").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let check = |token: &str| {
        tuma()
            .args([
                "node",
                "--config",
                example,
                "--check-config",
                "--admin-token",
                token,
            ])
            .arg("--cluster-secret-file")
            .arg(&secret)
            .output()
            .unwrap()
    };
    let output = check("example-admin-token");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.starts_with("config ok: node 1 of 3 members, 64 shards × 3 replicas"),
        "{stdout}"
    );
    // Everything else valid, a short admin token alone is refused, and the error says so.
    let bad = check("short");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("admin token must be at least 16"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
