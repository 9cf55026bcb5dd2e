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

#[test]
fn demo_prints_the_books_get_free_pages_lines() {
    // The demo's own machine: i386, 1 GiB (sparse), so HighMem exists.
    let o = kmem(&["demo"], &[("KMEM_MEM", "1G")]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let out = stdout(&o);
    let log: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
    // Seed 000, basicmem.c: get_free_pages_test with get_order(8192*10) = 5.
    assert_eq!(log, ["get_free_pages test", "__get_free_pages test ok [5]"]);
    assert!(out.contains("# /proc/buddyinfo\nNode 0, zone      DMA "), "{out}");
    assert!(out.contains("zone  HighMem "), "i386 profile by default: {out}");
    assert!(out.lines().any(|l| l.starts_with("MemTotal:") && l.ends_with(" kB")), "{out}");
}

#[test]
fn demo_list_and_single_example() {
    let o = kmem(&["demo", "--list"], &[]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("get_free_pages "));
    let o = kmem(&["demo", "get_free_pages"], &[]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("get_free_pages test\n__get_free_pages test ok [5]\n"));
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

#[test]
fn stat_buddyinfo_after_fragment_workload() {
    let fresh = stdout(&kmem(&["stat", "buddyinfo"], &[]));
    let frag = stdout(&kmem(&["stat", "buddyinfo", "--workload", "fragment"], &[("KMEM_PCP", "0")]));
    for text in [&fresh, &frag] {
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

#[test]
fn help_lists_every_environment_variable_and_the_exit_codes() {
    let o = kmem(&["--help"], &[]);
    assert!(o.status.success());
    let help = stdout(&o);
    for (var, _) in kmem::env::VARIABLES {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    assert!(
        help.contains(
            "Exit codes: 0 ok, 1 an example, workload or insmod failed, 2 bad command line, 3 bad environment"
        )
    );
}
