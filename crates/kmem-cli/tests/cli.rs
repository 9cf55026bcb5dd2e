//! The `kmem` binary through its command line: the demo's exact lines, `stat`, and the
//! documented exit codes (0 ok, 2 bad command line, 3 bad environment).

use std::process::{Command, Output};

fn kmem(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.args(args).env("KMEM_MEM", "64M").env_remove("KMEM_PROFILE").env_remove("KMEM_LOG_ECHO");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kmem")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

/// The golden log of one example: the lines the seed shows, in order.
fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}.log", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The demo's log part: everything before the first blank line.
fn log_part(out: &str) -> String {
    out.split("\n\n").next().unwrap().to_string() + "\n"
}

#[test]
fn demo_prints_every_examples_seed_lines_then_proc_excerpts() {
    // The demo's own machine: i386, 1 GiB (sparse), so HighMem exists.
    let o = kmem(&["demo"], &[("KMEM_MEM", "1G")]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let all: String = ["basicmem", "mempool", "mc", "scullc", "scullp", "scullv"].iter().map(|n| golden(n)).collect();
    assert_eq!(log_part(&out), all);
    assert!(out.contains("\n\n# /proc/buddyinfo\nNode 0, zone      DMA "), "{out}");
    assert!(out.contains("zone  HighMem "), "i386 profile by default: {out}");
    assert!(out.contains("# /proc/slabinfo (caches in use)\nslabinfo - version: 2.1\n"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("kmalloc-1k ")), "basicmem's 1024-byte object: {out}");
    assert!(out.lines().any(|l| l.starts_with("kmalloc-192 ")), "mempool's 132-byte elements: {out}");
    for key in ["MemTotal:", "Slab:", "VmallocTotal:"] {
        assert!(out.lines().any(|l| l.starts_with(key) && l.ends_with(" kB")), "{key}: {out}");
    }
}

#[test]
fn golden_logs_are_the_seeds_lines() {
    // The golden files themselves, against DESIGN §8 (seed 000's printed output), so a golden
    // file regenerated from a wrong demo cannot pass.
    assert_eq!(
        golden("basicmem"),
        "Module Memory Test\nkmalloc test\ntest memory\nBig Memory Ok\nvmalloc test\nvmalloc test ok\nget_free_pages test\n__get_free_pages test ok [5]\n"
    );
    let mut want = String::from("Module MEMPOOL Test\ncall mempool_create\n");
    want += &"----> mempool_alloc_test\n".repeat(4);
    want += "mempool allocate\n";
    for n in 4..8 {
        want += &format!("----> mempool_alloc_test\nalloc data {n}\n");
    }
    want += "mempool free\n";
    want += &"----> call mempool_free_test\n".repeat(4);
    want += "call mempool_destroy\n";
    want += &"----> call mempool_free_test\n".repeat(4);
    want += "Module MEMPOOL Test End\n";
    assert_eq!(golden("mempool"), want);
    // Seed 003's mc.c: its own messages, the cache size and the pool's min_nr.
    assert_eq!(
        golden("mc"),
        "创建slab缓存成功!\nMyselfCache Cache大小为: 10240\n创建内存池成功!\n内存池中元素最大个数,min_nr = 6\n执行:mempool_destroy()函数释放内存池成功!\n执行:kmem_cache_destroy()函数释放slab缓存成功!\n内核模块退出成功!\n"
    );
    // The scull devices store and return their data intact, in the expected number of quanta.
    for (name, quanta) in [("scullc", 3), ("scullp", 3), ("scullv", 4)] {
        let log = golden(name);
        assert!(log.contains(&format!("into {quanta} quanta\n")), "{name}: {log}");
        assert!(log.contains(": identical\n"), "{name}: {log}");
        assert!(log.ends_with(&format!("{name}: trimmed and released\n")), "{name}: {log}");
    }
    assert!(golden("scullc").contains("cache scullc: object size 4000, stride 4032, 8 objects per slab of 8 pages"));
}

#[test]
fn demo_list_and_single_example() {
    let o = kmem(&["demo", "--list"], &[]);
    assert!(o.status.success());
    let names: Vec<String> = stdout(&o).lines().map(|l| l.split_whitespace().next().unwrap().to_string()).collect();
    assert_eq!(names, ["basicmem", "mempool", "mc", "scullc", "scullp", "scullv"]);
    for name in ["basicmem", "mempool", "mc", "scullc", "scullp", "scullv"] {
        let o = kmem(&["demo", name], &[]);
        assert!(o.status.success());
        assert_eq!(log_part(&stdout(&o)), golden(name), "{name}");
    }
}

#[test]
fn unknown_example_is_a_usage_error() {
    let o = kmem(&["demo", "nosuch"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no example named 'nosuch'"));
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(kmem(&["stat", "slabinfoo"], &[]).status.code(), Some(2));
    assert_eq!(kmem(&["frobnicate"], &[]).status.code(), Some(2));
    // `--list` takes no name: one given with it is refused, not ignored.
    let o = kmem(&["demo", "--list", "nosuch"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'--list' cannot be used with '[NAME]'"));
    assert!(o.stdout.is_empty());
}

#[test]
fn a_variable_that_is_not_utf8_is_named_not_ignored() {
    use std::os::unix::ffi::OsStrExt;
    let o = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["stat", "meminfo"])
        .env("KMEM_MEM", std::ffi::OsStr::from_bytes(b"8M\xff"))
        .output()
        .expect("run kmem");
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "kmem: invalid KMEM_MEM=\"8M\u{fffd}\": expected UTF-8 text\n");
    assert!(o.stdout.is_empty(), "no machine of the default size instead");
}

#[test]
fn bad_environment_names_the_variable_and_exits_3() {
    for (var, value) in [("KMEM_MEM", "lots"), ("KMEM_PROFILE", "sparc"), ("KMEM_CPUS", "0")] {
        let o = kmem(&["demo"], &[(var, value)]);
        assert_eq!(o.status.code(), Some(3), "{var}={value}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(&format!("invalid {var}=")), "{var}: {err}");
    }
}

/// DESIGN §3 (bad values give a clear error naming the variable) with PA-10/§2.3: a
/// `KMEM_MIN_FREE_KBYTES` whose watermarks leave no lowmem to allocate is a bad environment
/// value (exit 3, the variable named, the largest usable value given), not a machine whose
/// first allocation is an OOM. The largest value it names works; one more is refused.
#[test]
fn a_min_free_kbytes_that_leaves_no_memory_is_refused_naming_the_variable() {
    let prefix = "kmem: invalid KMEM_MIN_FREE_KBYTES=";
    let o = kmem(&["stat", "slabinfo", "--workload", "slab"], &[("KMEM_MIN_FREE_KBYTES", "2147483647")]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(3), "{err}");
    let expected = "\"2147483647\": expected a number of kilobytes from 0 to ";
    assert!(err.starts_with(&format!("{prefix}{expected}")), "{err}");
    assert!(err.ends_with(" lowmem pages no room above the high watermark)\n"), "{err}");
    let max: usize = err[prefix.len() + expected.len()..].split(' ').next().and_then(|n| n.parse().ok()).unwrap();
    let ok = kmem(&["stat", "slabinfo", "--workload", "slab"], &[("KMEM_MIN_FREE_KBYTES", &max.to_string())]);
    assert!(ok.status.success(), "{max}: {}", String::from_utf8_lossy(&ok.stderr));
    let over = (max + 1).to_string();
    let o = kmem(&["stat", "meminfo"], &[("KMEM_MIN_FREE_KBYTES", &over)]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with(&format!("{prefix}\"{over}\": expected a number of kilobytes from 0 to {max} ")), "{err}");
}

#[test]
fn stat_buddyinfo_after_fragment_workload() {
    let fresh = stdout(&kmem(&["stat", "buddyinfo"], &[]));
    let frag = stdout(&kmem(&["stat", "buddyinfo", "--workload", "fragment"], &[("KMEM_PCP", "0")]));
    // With per-CPU lists on (the default) the freed pages are drained before buddyinfo is read.
    let frag_pcp = stdout(&kmem(&["stat", "buddyinfo", "--workload", "fragment"], &[]));
    for text in [&fresh, &frag, &frag_pcp] {
        for line in text.lines() {
            assert!(line.starts_with("Node 0, zone "), "{line}");
            assert!(line.ends_with(' '), "PROC-1 trailing space: {line:?}");
            assert_eq!(line.split_whitespace().count(), 4 + 11, "{line}");
        }
    }
    // Freeing every other page of 4096 leaves many isolated order-0 blocks.
    let order0 =
        |t: &str| -> usize { t.lines().map(|l| l.split_whitespace().nth(4).unwrap().parse::<usize>().unwrap()).sum() };
    assert!(order0(&frag) >= 2000, "fragmented: {frag}");
    assert!(order0(&frag_pcp) >= 2000, "fragmented, per-CPU lists drained: {frag_pcp}");
    assert!(order0(&fresh) < 100, "fresh: {fresh}");
}

#[test]
fn stat_exhaust_returns_to_the_fresh_buddyinfo() {
    let env = [("KMEM_PCP", "0"), ("KMEM_KSWAPD", "0")];
    let fresh = kmem(&["stat", "buddyinfo"], &env);
    let after = kmem(&["stat", "buddyinfo", "--workload", "exhaust"], &env);
    assert!(fresh.status.success() && after.status.success());
    let (fresh, report) = (stdout(&fresh), String::from_utf8_lossy(&after.stderr).into_owned());
    assert!(fresh.starts_with("Node 0, zone      DMA "), "{fresh}");
    // The workload really took (almost) all of the 64 MiB before freeing it.
    let took: usize = report
        .strip_prefix("workload exhaust: took ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exhaust report: {report:?}"));
    assert!(took > 15_000, "took only {took} of 16 384 pages");
    assert_eq!(fresh, stdout(&after), "everything came back");
}

#[test]
fn stat_other_files() {
    let z = stdout(&kmem(&["stat", "zoneinfo"], &[]));
    assert!(z.contains("\n        protection: (") && z.contains("\n  pagesets\n"), "{z}");
    let m = stdout(&kmem(&["stat", "meminfo"], &[]));
    assert!(m.starts_with("MemTotal:       "), "{m}");
    let p = stdout(&kmem(&["stat", "pagetypeinfo"], &[]));
    assert!(p.starts_with("Page block order: 10\nPages per block:  1024\n\n"), "{p}");
}

/// `kmem stat vmstat` after `exhaust`: every page the workload took was counted allocated
/// (DMA and Normal on i386, pages not blocks) and freed, and the legacy line ends the text.
#[test]
fn stat_vmstat_counts_the_exhaust_workload() {
    let out = kmem(&["stat", "vmstat", "--workload", "exhaust"], &[]);
    let v = stdout(&out);
    let value = |name: &str| -> usize {
        let line = v.lines().find(|l| l.split(' ').next() == Some(name)).unwrap_or_else(|| panic!("{name}:\n{v}"));
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    let err = String::from_utf8_lossy(&out.stderr);
    let took: usize = err
        .split("took ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the workload's line:\n{err}"));
    assert_eq!(value("pgalloc_dma") + value("pgalloc_normal"), took, "{v}");
    assert_eq!(value("pgalloc_high"), 0, "GFP_ATOMIC takes no HighMem");
    assert_eq!(value("pgfree"), took, "{v}");
    assert!(v.ends_with("\nnr_unstable 0\n"), "{v}");
}

#[test]
fn stat_vmallocinfo_after_vmalloc_workload() {
    assert_eq!(stdout(&kmem(&["stat", "vmallocinfo"], &[])), "", "a fresh machine has no areas");
    let v = stdout(&kmem(&["stat", "vmallocinfo", "--workload", "vmalloc"], &[]));
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines.len(), 8, "{v}");
    // Live areas of 1, 3, 5, 7 pages (plus guard), in address order, then the unpurged ones.
    for (line, pages) in lines[..4].iter().zip([1usize, 3, 5, 7]) {
        let size = format!(" {:>7} ", (pages + 1) * 4096);
        assert!(line.contains(&size) && line.contains("workload.rs:"), "{line}");
        assert!(line.ends_with(&format!(" pages={pages} vmalloc N0={pages}")), "{line}");
    }
    assert!(lines[4..].iter().all(|l| l.ends_with(" unpurged vm_area")), "{v}");
    let m = stdout(&kmem(&["stat", "meminfo", "--workload", "vmalloc"], &[]));
    assert!(m.contains("\nVmallocTotal:     131072 kB\nVmallocUsed:          64 kB\n"), "{m}");
}

#[test]
fn help_lists_every_environment_variable_and_the_exit_codes() {
    let o = kmem(&["--help"], &[]);
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("\n  replay  Replay a kernel's kmem:* trace"), "{help}");
    assert!(help.contains("\n  top     Show slabtop's view of a machine's slab caches"), "{help}");
    for (var, _) in kmem::env::VARIABLES {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    assert!(
        help.contains(
            "Exit codes: 0 ok, 1 an example, workload or insmod failed, a trace or slabinfo file could not be read or the output could not be written, 2 bad command line, 3 bad environment"
        )
    );
}

#[test]
fn stat_slabinfo_after_slab_workload() {
    let o = kmem(&["stat", "slabinfo", "--workload", "slab"], &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("slabinfo - version: 2.1"));
    assert!(lines.next().unwrap().starts_with("# name            <active_objs> <num_objs> <objsize>"));
    let demo = out.lines().find(|l| l.starts_with("kmem_demo ")).expect("the workload's cache");
    let fields: Vec<&str> = demo.split_whitespace().collect();
    assert_eq!(fields[3], "200", "objsize is the stride: {demo}");
    assert!(fields[1].parse::<usize>().unwrap() >= 1000, "1000 objects allocated: {demo}");
    // Every kmalloc class from 8 to 8k was used by the random sizes.
    for class in ["kmalloc-8 ", "kmalloc-96 ", "kmalloc-192 ", "kmalloc-8k "] {
        assert!(out.lines().any(|l| l.starts_with(class)), "{class}: {out}");
    }
}

#[test]
fn a_reader_that_closes_the_pipe_ends_the_output_quietly() {
    // `kmem demo --list | head -1`: the reader goes away after one line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmem"))
        .args(["demo"])
        .env("KMEM_MEM", "64M")
        .env_remove("KMEM_LOG_ECHO")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kmem");
    drop(child.stdout.take()); // Closed before kmem writes anything.
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "exit {:?}, stderr: {}", o.status, String::from_utf8_lossy(&o.stderr));
    assert!(o.stderr.is_empty(), "no panic, no message: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn an_output_that_cannot_be_written_is_reported_with_exit_1() {
    if !std::path::Path::new("/dev/full").exists() {
        return; // Nothing to write into that fails.
    }
    let cases = [
        &["demo", "--list"][..],
        &["demo", "mempool"],
        &["stat", "buddyinfo"],
        &["--help"],
        &["--version"],
        &["demo", "--help"],
    ];
    for args in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_kmem"))
            .args(args)
            .env("KMEM_MEM", "64M")
            .env_remove("KMEM_LOG_ECHO")
            .stdout(std::fs::File::create("/dev/full").expect("/dev/full"))
            .output()
            .expect("run kmem");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err, "kmem: cannot write to standard output: No space left on device (os error 28)\n", "{args:?}");
    }
}

#[test]
fn a_failing_example_keeps_what_it_logged_and_the_proc_excerpts() {
    // Every page allocation fails: basicmem logs its lines and the failure reports, then the
    // mempool example cannot create its pool.
    let o = kmem(&["demo"], &[("KMEM_FAIL_PAGE_ALLOC", "1,100,0,-1,ignore-gfp-wait=0,min-order=0")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "kmem demo: mempool_create: memory allocation failed\n");
    let out = stdout(&o);
    assert!(out.starts_with("Module Memory Test\nkmalloc test\nFAULT_INJECTION: forcing a failure.\n"), "{out}");
    assert!(out.contains("\nModule MEMPOOL Test\ncall mempool_create\n"), "the failing example's log: {out}");
    assert!(!out.contains("Module MEMPOOL Test End"), "{out}");
    assert!(out.contains("\n\n# /proc/buddyinfo\n"), "{out}");
}

/// Seed 003's init logs a failed `mempool_create` and still returns 0, so its exit runs: the
/// cache is destroyed and the module says goodbye, as `kmem insmod` of the C module shows.
#[test]
fn mc_runs_its_exit_after_a_failed_mempool_create() {
    let o = kmem(&["demo", "mc"], &[("KMEM_FAILSLAB", "1,100,0,-1,ignore-gfp-wait=0")]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let log: Vec<&str> = out.lines().take_while(|l| !l.starts_with("# /proc")).filter(|l| !l.is_empty()).collect();
    let tail = [
        "执行:mempool_create()函数失败,请重新检查?",
        "执行:kmem_cache_destroy()函数释放slab缓存成功!",
        "内核模块退出成功!",
    ];
    assert!(log.ends_with(&tail), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("MyselfCache") && l.contains(": tunables")), "no slabinfo line: {out}");
}
