//! Records, for the report header, the compiler that built the benchmark and the versions of the
//! peers that `Cargo.lock` resolved, so a table always says what it compared.

use std::{env, fs, path::Path, process::Command};

/// The peers whose resolved version the header prints, with the variable that carries each.
const PEERS: [(&str, &str); 11] = [
    ("buddy_system_allocator", "KMEM_BENCH_V_BUDDY_SYSTEM_ALLOCATOR"),
    ("linked_list_allocator", "KMEM_BENCH_V_LINKED_LIST_ALLOCATOR"),
    ("talc", "KMEM_BENCH_V_TALC"),
    ("mimalloc", "KMEM_BENCH_V_MIMALLOC"),
    ("tikv-jemallocator", "KMEM_BENCH_V_JEMALLOC"),
    ("snmalloc-rs", "KMEM_BENCH_V_SNMALLOC"),
    ("rlsf", "KMEM_BENCH_V_RLSF"),
    ("slab", "KMEM_BENCH_V_SLAB"),
    ("sharded-slab", "KMEM_BENCH_V_SHARDED_SLAB"),
    ("lockfree-object-pool", "KMEM_BENCH_V_LOCKFREE_OBJECT_POOL"),
    ("object-pool", "KMEM_BENCH_V_OBJECT_POOL"),
];

fn main() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned());
    println!("cargo:rustc-env=KMEM_BENCH_RUSTC={version}");

    // The workspace lock file sits two levels above this crate.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = Path::new(&manifest_dir).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rerun-if-changed=build.rs");
    let text = fs::read_to_string(&lock).unwrap_or_default();
    for (name, var) in PEERS {
        let v = locked_version(&text, name).unwrap_or("?");
        println!("cargo:rustc-env={var}={v}");
    }
}

/// The `version` that follows `name = "<name>"` in a `Cargo.lock`.
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == wanted {
            return lines.next()?.strip_prefix("version = \"")?.strip_suffix('"');
        }
    }
    None
}
