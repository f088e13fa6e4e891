//! `tuma sim` from the outside: the summary line contract, replay, and bad input.

use std::process::Command;

fn tuma() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuma"))
}

#[test]
fn a_few_hundred_seeds_pass_with_the_contract_summary_line() {
    let output = tuma().args(["sim", "--seeds", "300"]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap();
    let fields: Vec<(&str, u64)> = last
        .split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k, v.parse().unwrap())
        })
        .collect();
    let names: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        ["seeds", "transfers", "committed", "aborted", "violations"],
        "{last}"
    );
    let value = |name| fields.iter().find(|(k, _)| *k == name).unwrap().1;
    assert_eq!(value("seeds"), 300);
    assert_eq!(value("violations"), 0);
    assert!(value("transfers") >= 300 * 200, "{last}");
    assert!(value("committed") > value("transfers") / 2, "{last}");
    assert!(value("aborted") > value("transfers") / 10, "{last}");
    println!("{last}");
}

#[test]
fn a_replayed_seed_writes_the_same_trace_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("tuma-sim-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |name: &str| {
        let path = dir.join(name);
        let status = tuma()
            .args(["sim", "--seed", "11", "--trace"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::read(&path).unwrap()
    };
    let (a, b) = (run("a.txt"), run("b.txt"));
    assert!(a.len() > 10_000, "trace is {} bytes", a.len());
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_with_a_message() {
    for args in [
        &["sim", "--seeds", "0"][..],
        &["sim", "--seeds", "ten"],
        &["sim", "--transfers", "0"],
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
