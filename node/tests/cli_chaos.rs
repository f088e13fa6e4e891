//! `tuma chaos` can fail: a node built to acknowledge transfers before they are decided is
//! caught by the checker, which names the transfers and the seed to replay.

use std::process::Command;

#[test]
fn the_checker_catches_a_node_that_acknowledges_before_deciding() {
    let report =
        std::env::temp_dir().join(format!("tuma-chaos-planted-{}.svg", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_tuma"))
        .args([
            "chaos",
            "--nodes",
            "3",
            "--duration",
            "15s",
            "--seed",
            "3",
            "--faults",
            "pause",
            "--plant-fault",
            "ack-before-decide",
        ])
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("but is failed") || stdout.contains("but is absent"),
        "{stdout}"
    );
    assert!(
        stdout.contains("replay with: tuma chaos --nodes 3 --duration 15s --seed 3"),
        "{stdout}"
    );
    let last = stdout.lines().last().unwrap();
    assert!(
        last.starts_with("ops=") && !last.ends_with("violations=0"),
        "{last}"
    );
    let svg = std::fs::read_to_string(&report).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("polyline"),
        "the report is an SVG chart"
    );
    let _ = std::fs::remove_file(report);
    // The kept data directory is named in the output; clean it up.
    if let Some(line) = stdout
        .lines()
        .find(|l| l.starts_with("node logs and data kept in "))
    {
        let _ = std::fs::remove_dir_all(line.trim_start_matches("node logs and data kept in "));
    }
}
