//! `kmem bench`: the suite beside `kmem` is run with the arguments as given, and its exit code
//! is kmem's; without it, `kmem bench` says how to build it. (A copy of `kmem` in a directory
//! of its own, with and without a stand-in `kmem-bench` script.)

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory holding a copy of the `kmem` binary (and nothing else yet).
fn lone_kmem(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(env!("CARGO_BIN_EXE_kmem"), dir.join("kmem")).expect("copy kmem");
    dir
}

/// Runs `exe` with `args`. A file just written may be briefly busy for `exec` (`ETXTBSY`):
/// another test's thread can fork while the file's write descriptor is open, and the child
/// holds it until its own `exec`; such a run is retried.
fn run(exe: &Path, args: &[&str]) -> Output {
    for _ in 0..50 {
        match Command::new(exe).args(args).output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r.expect("run kmem"),
        }
    }
    panic!("{} stayed busy", exe.display());
}

#[test]
fn without_the_suite_it_says_how_to_build_it() {
    let dir = lone_kmem("bench-missing");
    let o = run(&dir.join("kmem"), &["bench", "--quick"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("kmem bench: the benchmark suite (kmem-bench) is not next to this kmem"), "{err}");
    assert!(err.contains("cargo build --release -p kmem-bench"), "{err}");
}

#[test]
fn the_suite_gets_the_arguments_and_gives_the_exit_code() {
    let dir = lone_kmem("bench-stand-in");
    let suite = dir.join("kmem-bench");
    std::fs::write(&suite, "#!/bin/sh\necho \"suite: $*\"\nexit 7\n").expect("write stand-in");
    std::fs::set_permissions(&suite, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let o = run(&dir.join("kmem"), &["bench", "--groups", "pages", "--help", "-x"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "suite: --groups pages --help -x\n");
    assert_eq!(o.status.code(), Some(7));
}
