//! `kmem insmod` on C modules built here with the system `gcc` against kmem-ffi's headers:
//! init and exit messages in dmesg form, parameters (typed, unknown, invalid), an init that
//! fails (insmod's message and exit code, no exit run), the kernel's load errors, and a
//! module whose symbols resolve against the `kmem` binary's exports.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Builds `tests/modules/<name>.c` into a module file of its own (tests run in parallel).
fn module(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = manifest.join("tests/modules").join(format!("{name}.c"));
    let include = manifest.join("../kmem-ffi/include");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("modules");
    std::fs::create_dir_all(&dir).unwrap();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let so = dir.join(n.to_string()).join(format!("{name}.so"));
    std::fs::create_dir_all(so.parent().unwrap()).unwrap();
    let o = Command::new("gcc")
        .env("LC_ALL", "C")
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-O2", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&so)
        .output()
        .expect("run gcc");
    assert!(o.status.success(), "gcc {name}.c:\n{}", String::from_utf8_lossy(&o.stderr));
    so
}

fn insmod(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.arg("insmod").args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KMEM_")) {
        cmd.env_remove(k);
    }
    cmd.output().expect("run kmem insmod")
}

/// [`insmod`] with these `KMEM_*` settings.
fn insmod_with(args: &[&str], settings: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.arg("insmod").args(args);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KMEM_")) {
        cmd.env_remove(k);
    }
    cmd.envs(settings.iter().copied());
    cmd.output().expect("run kmem insmod")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8")
}

#[test]
fn init_then_exit_with_parameters_printed_as_dmesg() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    let o = insmod(&[path, "who=kmem", "order=3", "flags-mask=0x20", "delta=-7", "bogus=1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // dmesg form: "[    0.001234] text".
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with('[') && l.contains("] ")), "{out}");
    let texts: Vec<&str> = lines.iter().map(|l| l.split_once("] ").unwrap().1).collect();
    assert_eq!(
        texts,
        [
            "hello: unknown parameter 'bogus' ignored",
            "hello kmem: order=3 mask=0x20 delta=-7",
            "__get_free_pages test ok [3]",
            "goodbye kmem",
        ]
    );
}

#[test]
fn defaults_levels_and_notime() {
    let so = module("hello");
    let o = insmod(&["-t", "-r", so.to_str().unwrap(), "positive"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "<6>hello world: order=5 mask=0x10 delta=-1\n<4>__get_free_pages test ok [5]\n<4>do_init_module: 'hello'->init suspiciously returned 1, it should follow 0/-E convention\n<4>do_init_module: loading module anyway...\n"
        ),
        "{out}"
    );
    assert!(out.ends_with("<6>goodbye world\n"), "{out}");
}

#[test]
fn failing_init_is_reported_like_insmod() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    let o = insmod(&["-t", path, "fail=y"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: Cannot allocate memory\n"));
    let out = stdout(&o);
    assert!(out.contains("hello: failing on request\n"), "{out}");
    assert!(!out.contains("goodbye"), "a failed init's module never runs its exit: {out}");
}

#[test]
fn invalid_parameter_fails_the_load() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    let o = insmod(&["-t", path, "order=five"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: Invalid argument\n"));
    assert_eq!(stdout(&o), "hello: `five' invalid for parameter `order'\n");
    let o = insmod(&["-t", path, "order"]);
    assert_eq!(o.status.code(), Some(1), "an int needs a value");
    let o = insmod(&["-t", path, "order=99999999999"]);
    assert_eq!(o.status.code(), Some(1), "out of range for int");
}

#[test]
fn legacy_module_taints_and_reports_sleeping_under_a_lock() {
    let so = module("legacy24");
    let o = insmod(&["-t", so.to_str().unwrap(), "--rmmod"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(
            "legacy24: module license 'unspecified' taints kernel.\nDisabling lock debugging due to kernel taint\nModule Memory Test\nBUG: sleeping function called from invalid context at "
        ),
        "{out}"
    );
    assert!(out.contains("in_atomic(): 1,"), "{out}");
    // The call trace names the module's function, as the kernel's `%pS` does.
    let trace = &out[out.find("Call Trace:\n <TASK>\n").expect("a call trace")..];
    let frames: Vec<&str> = trace.lines().skip(2).take_while(|l| *l != " </TASK>").collect();
    assert_eq!(frames.len(), 2, "kmem's location, then the module's frame: {trace}");
    assert!(frames[0].starts_with("  crates/kmem-ffi/src/pages.rs:"), "{trace}");
    assert!(frames[1].starts_with("  init_module+0x") && frames[1].ends_with(" [legacy24]"), "{trace}");
    assert!(out.ends_with("Module Memory Test End\n"), "{out}");
}

#[test]
fn rmmod_of_a_module_without_exit_is_refused() {
    let so = module("noexit");
    let o = insmod(&["-t", so.to_str().unwrap(), "--rmmod"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "rmmod: ERROR: could not remove module noexit: Device or resource busy\n");
    assert_eq!(stdout(&o), "noexit loaded\n");
    let o = insmod(&["-t", so.to_str().unwrap()]);
    assert!(o.status.success(), "without --rmmod it just stays loaded until kmem exits");
}

#[test]
fn load_errors_use_the_kernels_words() {
    let so = module("unknown_symbol");
    let path = so.to_str().unwrap();
    let o = insmod(&["-t", path]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: Unknown symbol in module\n"));
    assert_eq!(stdout(&o), "unknown_symbol: Unknown symbol kmem_there_is_no_such_function (err -2)\n");

    let text = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("not-a-module.so");
    std::fs::write(&text, "not ELF\n").unwrap();
    let o = insmod(&[text.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).ends_with("not-a-module.so: Invalid module format\n"), "{}", stderr(&o));

    let o = insmod(&["/nonexistent/m.so"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "insmod: ERROR: could not load module /nonexistent/m.so: No such file or directory\n");
}

#[test]
fn stat_after_init_and_after_rmmod() {
    let so = module("hello");
    let o = insmod(&["-t", so.to_str().unwrap(), "--stat", "buddyinfo", "--rmmod", "--stat", "meminfo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let stats = out.split_once("# /proc/buddyinfo\n").expect("buddyinfo header").1;
    assert!(stats.starts_with("Node 0, zone      DMA "), "{out}");
    assert!(stats.contains("# /proc/meminfo\nMemTotal:"), "{out}");
}

#[test]
fn the_binary_exports_the_whole_c_abi() {
    let so = module("exports");
    let o = insmod(&["-t", so.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let (present, total) =
        out.trim_end().split_once(" exports resolved").expect("summary line").0.split_once(" of ").unwrap();
    assert_eq!(present, total, "{out}");
    assert!(total.parse::<u32>().unwrap() > 70, "{out}");
}

#[test]
fn too_long_string_parameter() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    let long = format!("who={}", "x".repeat(1025));
    let o = insmod(&["-t", path, &long]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: No space left on device\n"));
    let out = stdout(&o);
    assert!(out.starts_with("who: string parameter too long\nhello: `xxx"), "{out}");
    assert!(out.ends_with("' too large for parameter `who'\n"), "{out}");
    let ok = format!("who={}", "y".repeat(1024));
    assert!(insmod(&["-t", path, &ok]).status.success(), "1024 bytes are allowed");
}

#[test]
fn a_modules_own_definitions_win_over_kmems_exports() {
    let so = module("own_symbols");
    let o = insmod(&["-t", so.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "the module's own dump_stack\n");
}

/// Audit: a file whose ELF section-header offset (`e_shoff`) is near `u64::MAX` must be
/// "Invalid module format" (exit 1), not a panic (exit 101): `elf::find_section`'s header
/// closure checks `shoff + i * shentsize` but then adds the field offsets (`at + 4`, `at + 8`,
/// ... `at + 32`) unchecked, which overflows in a debug build.
#[test]
fn a_section_table_offset_near_u64_max_is_an_invalid_module_not_a_panic() {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2; // ELFCLASS64
    elf[5] = 1; // little-endian
    elf[0x10..0x12].copy_from_slice(&3u16.to_le_bytes()); // ET_DYN
    elf[0x28..0x30].copy_from_slice(&(u64::MAX - 3).to_le_bytes()); // e_shoff
    elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf[0x3c..0x3e].copy_from_slice(&1u16.to_le_bytes()); // e_shnum
    elf[0x3e..0x40].copy_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ovf-shoff.so");
    std::fs::write(&file, &elf).unwrap();
    let o = insmod(&[file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).ends_with("ovf-shoff.so: Invalid module format\n"), "{}", stderr(&o));
}

/// The `/sys/kernel/debug/kmemleak` part of `kmem insmod --kmemleak`'s output, split into
/// its objects, after checking that the log says there are `n` and the report lists `n`.
fn kmemleak_objects(out: &str, n: usize) -> Vec<String> {
    let line = format!("] kmemleak: {n} new suspected memory leaks (see /sys/kernel/debug/kmemleak)\n");
    assert!(out.contains(&line), "{out}");
    let Some((_, report)) = out.split_once("# /sys/kernel/debug/kmemleak\n") else { panic!("no report: {out}") };
    let objects: Vec<String> = report.split("unreferenced object ").skip(1).map(str::to_owned).collect();
    assert_eq!(objects.len(), n, "{out}");
    objects
}

#[test]
fn kmemleak_reports_what_a_module_left_allocated_after_its_exit() {
    let so = module("leaky");
    let o = insmod(&["--kmemleak", "--rmmod", so.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let objects = kmemleak_objects(&out, 4);
    // In allocation order: the string (kmalloc-32), the cache object (its object size), the
    // vmalloc area (whole pages), the pool; each named by its allocation's call chain.
    assert!(objects[0].contains(" (size 32):\n") && objects[0].contains("  leaked by leaky_\n"), "{}", objects[0]);
    assert!(objects[1].contains(" (size 24):\n") && objects[1].contains("MEMK"), "{}", objects[1]);
    assert!(objects[2].contains(" (size 16384):\n  comm \""), "{}", objects[2]);
    assert!(objects[2].contains("  hex dump (first 32 bytes):\n"), "{}", objects[2]);
    for object in &objects {
        assert!(object.starts_with("0x"), "{object}");
        assert!(object.contains("  backtrace (crc "), "{object}");
        assert!(object.contains("] init_module+0x") && object.contains(" [leaky]\n"), "{object}");
    }
}

#[test]
fn kmemleak_is_quiet_for_a_module_that_frees_or_hands_off_everything() {
    // Freed, krealloc'ed and freed, kfree_rcu'ed, kmemleak_not_leak'ed, vfree'd, destroyed.
    let so = module("leaky");
    let o = insmod(&["--kmemleak", so.to_str().unwrap(), "leak=0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("kmemleak"), "{out}");
    // Without --kmemleak nothing is tracked, leaks or not.
    let o = insmod(&["--rmmod", so.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("kmemleak"), "{}", stdout(&o));
}

#[test]
fn kmemleak_reports_what_a_failed_init_left_allocated() {
    let so = module("leaky");
    let o = insmod(&["--kmemleak", so.to_str().unwrap(), "leak=0", "fail=1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("could not insert module"), "{}", stderr(&o));
    let out = stdout(&o);
    let objects = kmemleak_objects(&out, 1);
    assert!(objects[0].contains(" (size 256):\n"), "{}", objects[0]);
}

#[test]
fn kmemleak_scans_a_module_that_stays_loaded_from_its_data() {
    let so = module("keeper");
    let o = insmod(&["--kmemleak", so.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // The lost buffer (kmalloc-1k); the list its data refers to, head and next, is not.
    let objects = kmemleak_objects(&out, 1);
    assert!(objects[0].contains(" (size 1024):\n") && objects[0].contains(" [keeper]\n"), "{}", objects[0]);
    // With --rmmod, which it refuses (no exit), it is scanned all the same.
    let o = insmod(&["--kmemleak", "--rmmod", so.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("rmmod: ERROR: could not remove module keeper"), "{}", stderr(&o));
    kmemleak_objects(&stdout(&o), 1);
}

/// A module whose exit leaves `call_rcu` callbacks of its own queued (the kernel's rule is
/// that it calls `rcu_barrier()` first) is reported at unload, and kmem runs the callbacks
/// before the code goes, instead of kswapd running unloaded code later. With the barrier in
/// its exit, no report. (kswapd off: its pass would run the callbacks at any moment.)
#[test]
fn a_module_unloaded_with_its_call_rcu_callbacks_queued_is_reported() {
    let so = module("rcu_leftover");
    let path = so.to_str().unwrap();
    let warning = "rcu_leftover: unloaded with 2 call_rcu callback(s) of its own still queued: its exit must call rcu_barrier() (kmem runs them before its code goes)";
    let o = insmod_with(&["-t", path, "--rmmod"], &[("KMEM_KSWAPD", "0")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{out}"));
    assert!(at("rcu_leftover: exit") < at(warning) && at(warning) < at("rcu_leftover: callback 1"), "{out}");
    assert!(at("rcu_leftover: callback 1") < at("rcu_leftover: callback 2"), "{out}");
    let o = insmod_with(&["-t", path, "barrier=1", "--rmmod"], &[("KMEM_KSWAPD", "0")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("unloaded with") && out.contains("rcu_leftover: callback 2"), "{out}");
    assert!(out.find("rcu_leftover: callback 2") < out.find("rcu_leftover: exit"), "{out}");
}

/// A module that kills the process in its init, by `BUG_ON` (lib/bug.c's `kernel BUG at
/// <file>:<line>!`, then `abort()`), by a `SLAB_PANIC` cache that cannot be made (the kernel's
/// `panic()`) or by a write to a bad address (`SIGSEGV`): the log up to then (the module's own
/// lines, the report) is on stdout, written as it was made, as the kernel's log outlives the
/// task an oops kills. Before, the log was printed only when the module was done: nothing.
#[test]
fn a_module_that_dies_in_its_init_still_prints_its_log() {
    use std::os::unix::process::ExitStatusExt as _;
    let so = module("oops");
    let path = so.to_str().unwrap();
    let o = insmod(&["-t", path]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "oops: before the end\noops: exit\n");
    for (param, signal, report) in
        [("bug=1", 6, "kernel BUG at "), ("panic=1", 6, "Kernel panic - not syncing: "), ("fault=8", 11, "")]
    {
        let o = insmod(&["-t", path, param]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(o.status.signal(), Some(signal), "{param}: {out}{err}");
        assert!(out.starts_with("oops: before the end\n"), "{param}: {out}");
        assert!(out.contains(report), "{param}: {out}");
        assert!(err.contains(report), "{param}: {err}");
        assert!(!out.contains("oops: exit"), "{param}: {out}");
    }
    let o = insmod(&["-t", path, "bug=1"]);
    assert!(stdout(&o).contains("kernel BUG at ") && stdout(&o).contains("oops.c:"), "{}", stdout(&o));
}

/// A module path that is not a regular file (a FIFO, a device): the kernel's `finit_module`
/// refuses it (`kernel_read_file`: `EINVAL`), so insmod says `Invalid argument`. Before,
/// kmem opened and read it whole: a FIFO without a writer hung it, `/dev/zero` ate memory
/// until the OOM killer came.
#[test]
fn a_module_path_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("modules");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join(format!("fifo-{}.so", std::process::id()));
    let _ = std::fs::remove_file(&fifo);
    let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success());
    for path in [fifo.to_str().unwrap(), "/dev/null"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
            .args(["insmod", path])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run kmem insmod");
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() && start.elapsed() < std::time::Duration::from_secs(20) {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            let _ = child.wait();
            let _ = std::fs::remove_file(&fifo);
            panic!("kmem insmod {path} hung");
        }
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{path}: {}", stderr(&o));
        assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: Invalid argument\n"));
    }
    std::fs::remove_file(&fifo).unwrap();
}

/// Any negative init result fails the load with insmod's words for it, INT_MIN included (its
/// negation overflows: kmem panicked there, and the module's log was lost); a number that is no
/// errno is strerror's `Unknown error N`.
#[test]
fn an_init_returning_any_negative_number_fails_the_load() {
    let so = module("initret");
    let path = so.to_str().unwrap();
    for (ret, says) in [
        ("-12", "Cannot allocate memory"),
        ("-5000", "Unknown error 5000"),
        ("-2147483648", "Unknown error -2147483648"),
    ] {
        let o = insmod(&["-t", path, &format!("ret={ret}")]);
        assert_eq!(o.status.code(), Some(1), "{ret}: {}", stderr(&o));
        assert_eq!(stderr(&o), format!("insmod: ERROR: could not insert module {path}: {says}\n"));
        assert_eq!(stdout(&o), format!("initret: returning {ret}\n"));
    }
}

/// A bad `KMEM_KMEMLEAK` or `KMEM_KMEMLEAK_SCAN` is a bad environment (exit code 3, the
/// variable named, nothing loaded), as the README's exit codes say for every `KMEM_*` value;
/// the C ABI alone only warns and goes on (it used to here too, and loaded the module).
#[test]
fn a_bad_kmemleak_variable_is_a_bad_environment() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    for (var, value) in [("KMEM_KMEMLEAK", "maybe"), ("KMEM_KMEMLEAK_SCAN", "soon")] {
        let o = insmod_with(&[path, "--rmmod"], &[(var, value)]);
        assert_eq!(o.status.code(), Some(3), "{var}={value}: {}", stderr(&o));
        assert!(stderr(&o).contains(var), "{}", stderr(&o));
        assert_eq!(stdout(&o), "", "nothing loaded");
    }
    let o = insmod_with(&[path, "--rmmod"], &[("KMEM_KMEMLEAK", "0"), ("KMEM_KMEMLEAK_SCAN", "off")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// kernel/params.c's `next_arg` quoting: a whole argument in double quotes
/// (`"who=two words"`) names the parameter after the opening quote and loses the closing one;
/// a value's opening quote goes even without a closing one. The opening quote was kept in the
/// name, so the parameter was unknown and ignored.
#[test]
fn quoted_parameters_as_next_arg_reads_them() {
    let so = module("hello");
    let path = so.to_str().unwrap();
    for (arg, who) in [("\"who=two words\"", "two words"), ("who=\"open", "open"), ("who=\"both\"", "both")] {
        let o = insmod(&["-t", path, arg]);
        assert!(o.status.success(), "{arg}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(!out.contains("unknown parameter"), "{arg}: {out}");
        assert!(out.contains(&format!("hello {who}: order=5")), "{arg}: {out}");
    }
}
