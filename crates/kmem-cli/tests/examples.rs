//! The book's C examples (`examples/c/`: basicmem.c, mempool.c, mc.c, scullc.c), built with
//! their Makefile by the system `gcc` and run with `kmem insmod`: what they print is the seeds'
//! printed output, the same golden files the Rust demo is held to (`tests/golden/`). `insmod -t`
//! prints the log without timestamps, so lines compare as text.
//!
//! `KMEM_C_TEST_WRAPPER` (e.g. `valgrind --error-exitcode=99`) runs `kmem insmod` under a
//! wrapper, as for the C test suite; `.ci/valgrind-c` uses it for memcheck.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Builds every example once (`make -C examples/c OUT=...`); returns the output directory.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples-c");
        let o = Command::new("make")
            .env("LC_ALL", "C")
            .arg("-C")
            .arg(manifest.join("../../examples/c"))
            .arg(format!("OUT={}", out.display()))
            .arg("--always-make")
            .output()
            .expect("run make (the C examples need make and gcc)");
        assert!(
            o.status.success(),
            "make -C examples/c:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

fn insmod(name: &str) -> Output {
    let so = built().join(format!("{name}.so"));
    let wrapper = std::env::var("KMEM_C_TEST_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(words).arg(env!("CARGO_BIN_EXE_kmem"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_kmem")),
    };
    cmd.args(["insmod", "-t"]).arg(&so);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KMEM_")) {
        cmd.env_remove(k);
    }
    cmd.output().expect("run kmem insmod")
}

fn golden(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs example `name` and returns its output, after checking it ran cleanly.
fn run(name: &str) -> String {
    let o = insmod(name);
    let out = String::from_utf8(o.stdout).expect("utf-8 log");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "kmem insmod {name}.so failed:\n{out}{err}");
    assert!(err.is_empty(), "stderr of {name}: {err}");
    out
}

#[test]
fn basicmem_prints_the_seeds_output() {
    // The seed shows dmesg after insmod; the exit line comes at rmmod (here: when kmem exits).
    assert_eq!(run("basicmem"), golden("basicmem") + "Module Memory Test End\n");
}

#[test]
fn mempool_prints_the_seeds_output() {
    assert_eq!(run("mempool"), golden("mempool"));
}

#[test]
fn mc_prints_the_seeds_output() {
    assert_eq!(run("mc"), golden("mc"));
}

#[test]
fn scullc_prints_what_the_rust_demo_prints() {
    assert_eq!(run("scullc"), golden("scullc"));
}
