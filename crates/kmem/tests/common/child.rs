//! The parent half of a harness-less test binary that runs its real test in a child process
//! (a fresh default machine, configured by environment variables, and a hang reported by the
//! child's own watchdog instead of hanging the suite).

use std::process::Command;

/// Runs this executable again with `marker` set and `envs`, and asserts the child succeeded
/// and printed `child ok`; then prints libtest's line for `name`.
pub fn run_child(marker: &str, envs: &[(&str, &str)], name: &str) {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.env(marker, "1");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("child ok"),
        "child failed: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    println!("test {name} ... ok");
}
