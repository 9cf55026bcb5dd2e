//! Shared by the C test drivers (`c_abi.rs`, `c_kernel_forms.rs`): compile a C file from
//! `tests/c` against `include/` with gcc, link it with the libkmem this build made (shared,
//! shared from a position-dependent executable, or static), run it with chosen `KMEM_*`
//! settings, under `KMEM_C_TEST_WRAPPER` if set (`.ci/valgrind-c`).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Where cargo put libkmem.so and libkmem.a for this build: next to this test binary.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().expect("deps directory").to_path_buf();
    assert!(
        dir.join("libkmem.so").exists() && dir.join("libkmem.a").exists(),
        "libkmem.so and libkmem.a should be in {} (built through the libkmem dev-dependency)",
        dir.display()
    );
    dir
}

pub fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_abi");
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

/// The suite's flags: the kernel's `-Wstrict-prototypes` (the headers must pass it), warnings
/// are errors.
pub const CFLAGS: &[&str] = &["-std=gnu11", "-Wall", "-Wextra", "-Wstrict-prototypes", "-Werror", "-O2", "-g"];

/// gcc with [`CFLAGS`], then `extra` (a later `-std=` wins), `-I include` and `args`.
pub fn gcc(extra: &[&str], args: &[&str]) -> Output {
    Command::new("gcc")
        .env("LC_ALL", "C")
        .args(CFLAGS)
        .args(extra)
        .arg("-I")
        .arg(manifest().join("include"))
        .args(args)
        .output()
        .expect("run gcc (the C test suite needs the system C compiler)")
}

pub fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Compiles C source text with `extra` flags to an object file; the compiler's output.
pub fn compile_text(tag: &str, text: &str, extra: &[&str]) -> Output {
    let src = out_dir().join(format!("{tag}.c"));
    std::fs::write(&src, text).expect("write the C source");
    let obj = src.with_extension("o");
    gcc(extra, &["-c", &src.display().to_string(), "-o", &obj.display().to_string()])
}

/// How a test program is linked with libkmem.
#[derive(Clone, Copy)]
pub enum Link {
    /// Not linked (header-only programs).
    None,
    Shared,
    /// Shared, from a position-dependent executable: the addresses C takes of the library's
    /// functions are the executable's PLT entries, which the library's own references share.
    SharedNoPie,
    Static,
}

/// Compiles `tests/c/<name>.c` with `extra` flags and links it with libkmem.so.
pub fn build(name: &str, extra: &[&str]) -> PathBuf {
    build_linked(name, Link::Shared, extra)
}

/// Compiles `tests/c/<name>.c` with `extra` flags into an executable linked as `link`; returns
/// its path.
pub fn build_linked(name: &str, link: Link, extra: &[&str]) -> PathBuf {
    let src = manifest().join("tests/c").join(format!("{name}.c"));
    let suffix = match link {
        Link::None => "plain",
        Link::Shared => "so",
        Link::SharedNoPie => "so-nopie",
        Link::Static => "static",
    };
    let exe = out_dir().join(format!("{name}-{suffix}"));
    let lib = lib_dir();
    let mut args: Vec<String> =
        vec![src.display().to_string(), "-o".into(), exe.display().to_string(), "-pthread".into()];
    match link {
        Link::None => {}
        Link::Shared | Link::SharedNoPie => {
            args.extend([format!("-L{}", lib.display()), "-lkmem".into(), format!("-Wl,-rpath,{}", lib.display())]);
            if matches!(link, Link::SharedNoPie) {
                args.extend(["-fno-pie".into(), "-no-pie".into()]);
            }
        }
        // The native libraries a Rust staticlib needs (`rustc --print native-static-libs`).
        Link::Static => args.extend(
            [lib.join("libkmem.a").display().to_string()]
                .into_iter()
                .chain(["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"].map(String::from)),
        ),
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = gcc(extra, &args);
    assert!(o.status.success(), "gcc {name}.c failed:\n{}", show(&o));
    exe
}

/// Runs a C program with these `KMEM_*` settings (every other `KMEM_*` variable is removed),
/// under `KMEM_C_TEST_WRAPPER` if set.
pub fn run_with(exe: &Path, settings: &[(&str, &str)]) -> Output {
    run_with_args(exe, &[], settings)
}

/// [`run_with`], passing `args` to the program.
pub fn run_with_args(exe: &Path, args: &[&str], settings: &[(&str, &str)]) -> Output {
    let wrapper = std::env::var("KMEM_C_TEST_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(w) => {
            let mut c = Command::new(w);
            c.args(words).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KMEM_") && k != "KMEM_C_TEST_WRAPPER") {
        cmd.env_remove(k);
    }
    cmd.args(args);
    // cargo's LD_LIBRARY_PATH lists target/<profile> first, whose libkmem.so is whatever
    // `cargo build` uplifted last; the suite tests the one built with it.
    cmd.env("LD_LIBRARY_PATH", lib_dir());
    cmd.envs(settings.iter().copied());
    cmd.output().expect("run a C test program")
}

/// Builds and runs `tests/c/<name>.c`; it must exit 0 and print `<name>: N checks, 0 failed`.
pub fn run_suite_with(name: &str, extra: &[&str], settings: &[(&str, &str)]) -> Output {
    run_suite_linked(name, Link::Shared, extra, settings)
}

/// [`run_suite_with`], linked as `link`.
pub fn run_suite_linked(name: &str, link: Link, extra: &[&str], settings: &[(&str, &str)]) -> Output {
    let o = run_with(&build_linked(name, link, extra), settings);
    assert!(o.status.success(), "{name} failed:\n{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("{name}: ")) && out.contains(" checks, 0 failed"), "{}", show(&o));
    o
}

/// Every header in `include/`, by path (`linux/slab.h`, ...).
pub fn headers() -> Vec<String> {
    let include = manifest().join("include");
    let mut headers = Vec::new();
    for dir in ["linux", "linux/byteorder", "linux/sched", "asm"] {
        for entry in std::fs::read_dir(include.join(dir)).expect("read include/") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "h") {
                headers.push(format!("{dir}/{}", path.file_name().unwrap().to_string_lossy()));
            }
        }
    }
    headers.sort();
    headers
}
