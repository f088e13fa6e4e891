//! # tuma-tests — integration tests on the real binary
//!
//! The tests live in `tests/tests/`; each runs the `tuma` binary built by Cargo for this
//! workspace (see `tuma_binary`).

use std::path::PathBuf;

/// Path of the `tuma` binary Cargo built next to this test's executable.
pub fn tuma_binary() -> PathBuf {
    let mut path = std::env::current_exe().expect("test executable path");
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join(format!("tuma{}", std::env::consts::EXE_SUFFIX))
}
