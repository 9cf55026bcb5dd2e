//! `kmem bench [ARGS]...`: runs the benchmark suite, the `kmem-bench` binary (its own crate,
//! which links the peer allocators the suite compares kmem with; the `kmem` binary does not
//! carry them). It is looked up next to the running `kmem` (cargo builds both into the same
//! `target/<profile>/`), and replaces this process, so its output, signals and exit code are
//! the suite's own. Without it, `kmem bench` says how to build it (exit code 1).

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// The suite's binary beside `kmem`, if it is there.
fn suite() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.join("kmem-bench");
    path.is_file().then_some(path)
}

/// Runs the suite with `args`; returns only if it could not be started.
pub fn run(args: &[String]) -> ExitCode {
    let Some(path) = suite() else {
        eprintln!(
            "kmem bench: the benchmark suite (kmem-bench) is not next to this kmem; build it with `cargo build --release -p kmem-bench` (or run `cargo run --release -p kmem-bench -- {}`)",
            args.join(" ")
        );
        return ExitCode::from(1);
    };
    let e = Command::new(&path).args(args).exec();
    eprintln!("kmem bench: cannot run {}: {e}", path.display());
    ExitCode::from(1)
}
