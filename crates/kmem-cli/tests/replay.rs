//! `kmem replay`: a kernel's `kmem:*` trace replayed on a machine, through the binary. The
//! sample trace (`traces/sample.trace`) has every event kind the replay reads, a header, an
//! event it skips, a free of an object allocated before the trace, `kfree(NULL)`, a
//! `kmalloc(0)`, a failed traced allocation, a cross-CPU free and a GFP name kmem lacks.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/traces/sample.trace");

fn kmem(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.args(args).env("KMEM_MEM", "64M").env_remove("KMEM_PROFILE").env_remove("KMEM_LOG_ECHO");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run kmem");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("kmem output")
}

/// Fails unless `text` holds every one of `parts`.
fn assert_has(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

fn out(o: &Output) -> String {
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).expect("utf-8")
}

/// A trace file of `lines` (each an ftrace event line body after `[cpu] ... ts: `).
fn trace_file(name: &str, events: &[&str]) -> String {
    let path = format!("{}/{name}.trace", env!("CARGO_TARGET_TMPDIR"));
    let text: String = events.iter().map(|e| format!("  t-1 [000] ..... 1.000000: {e}\n")).collect();
    std::fs::write(&path, text).expect("write trace");
    path
}

#[test]
fn the_sample_trace_is_replayed_and_reported() {
    let text = out(&kmem(&["replay", SAMPLE], None));
    assert_has(
        &text,
        &[
            "35 lines: 9 allocations, 6 frees, 2 page allocations, 2 page frees, 1 other events\n",
            "skipped: 1 frees of objects allocated before the trace, 1 allocations the traced kernel failed, 0 frees lost from the trace\n",
            "GFP flags kmem does not know (ignored): __GFP_NOLOCKDEP (1)\n",
            "Total bytes requested: 4752\nTotal bytes allocated: 5728\nTotal bytes freed:     3584\nNet total bytes allocated: 2144\n",
            "Internal fragmentation: 17.039106%\nCross CPU frees: 1/5\n",
            "Requests kmem could not serve at once: 0 (of 8 replayed)\n",
            "kmalloc size classes: kmem's size equals the traced bytes_alloc for 5 of 5 requests\n",
            "Live at the end of the trace: 3 objects, ",
            "page events counted, not replayed (--pages replays them)\n",
        ],
    );
    let cache = text.lines().find(|l| l.starts_with("ext4_inode_cache ")).expect("the cache's row");
    let cols: Vec<&str> = cache.split_whitespace().collect();
    assert_eq!(&cols[1..5], ["2", "2", "1", "1088"], "allocs, peak, live, traced size: {cache}");
    let site = text.lines().find(|l| l.starts_with("load_elf_binary+0x1d4/0x1690 ")).expect("a call site row");
    let cols: Vec<&str> = site.split_whitespace().collect();
    assert_eq!(&cols[1..], ["224/74", "184/61", "224/74", "3", "1", "17.857%"], "{site}");
    // Sorted by bytes allocated: the ext4 site first.
    let first = text.lines().skip_while(|l| !l.starts_with("call site")).nth(1).unwrap();
    assert!(first.starts_with("ext4_alloc_inode+0x1a/0x1f0 [ext4] "), "{first}");
}

#[test]
fn standard_input_reads_the_same_and_pages_and_stat_add_their_parts() {
    let file = out(&kmem(&["replay", SAMPLE], None));
    let piped = out(&kmem(&["replay", "-"], Some(&std::fs::read(SAMPLE).unwrap())));
    assert_eq!(piped, file);
    let text = out(&kmem(&["replay", "--pages", "--stat", "buddyinfo", SAMPLE], None));
    assert!(
        text.contains("pages: 1 blocks live at the end, 1 frees of blocks allocated before the trace, 0 allocations kmem could not serve\n"),
        "{text}"
    );
    assert!(text.contains("\nNode 0, zone      DMA "), "buddyinfo appended: {text}");
    assert!(text.contains("zone    DMA32 "), "x86_64 by default: {text}");
    let i386 = out(&kmem(&["replay", "--profile", "i386", "--stat", "buddyinfo", SAMPLE], None));
    assert!(i386.contains("zone   Normal ") && !i386.contains("DMA32"), "{i386}");
}

#[test]
fn kmem_failures_size_class_differences_and_lost_frees_are_reported() {
    let path = trace_file(
        "failures",
        &[
            // Larger than KMALLOC_MAX_SIZE (4 MiB): kmem cannot serve it.
            "kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req=33554432 bytes_alloc=33554432 gfp_flags=GFP_KERNEL|__GFP_NOFAIL node=-1 accounted=false",
            // A class the traced kernel had and kmem has not (80 bytes).
            "kmalloc: call_site=b+0x1/0x2 ptr=0000000000000200 bytes_req=72 bytes_alloc=80 gfp_flags=GFP_KERNEL node=-1 accounted=false",
            // The same address again without its free: the free was lost.
            "kmalloc: call_site=b+0x1/0x2 ptr=0000000000000200 bytes_req=72 bytes_alloc=80 gfp_flags=GFP_KERNEL node=-1 accounted=false",
            "kfree: call_site=c+0x1/0x2 ptr=0000000000000200",
            // The free of the request kmem could not serve: one of the trace's frees.
            "kfree: call_site=c+0x1/0x2 ptr=0000000000000100",
        ],
    );
    let text = out(&kmem(&["replay", &path], None));
    assert_has(
        &text,
        &[
            // The lost free is none of the trace's frees: two kfrees, of 80 bytes and 32 MiB.
            "5 lines: 3 allocations, 2 frees, ",
            "Total bytes freed:     33554512\n",
            "Cross CPU frees: 0/2\n",
            "skipped: 0 frees of objects allocated before the trace, 0 allocations the traced kernel failed, 1 frees lost from the trace\n",
            "Requests kmem could not serve at once: 1 (of 3 replayed)\n",
            "kmalloc size classes: kmem's size equals the traced bytes_alloc for 0 of 2 requests\n  bytes_req 72: traced 80, kmem 96 (2 requests)\n",
            "Live at the end of the trace: 0 objects, 0 bytes\n",
        ],
    );
}

#[test]
fn huge_traced_sizes_saturate_the_totals() {
    const MAX: &str = "18446744073709551615";
    let huge = format!(
        "kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req={MAX} bytes_alloc={MAX} gfp_flags=GFP_KERNEL"
    );
    // Served by kmem (8 bytes), with a traced size near the top of `size_t`.
    let odd = |ptr: u32| {
        format!(
            "kmalloc: call_site=b+0x1/0x2 ptr={ptr:016x} bytes_req=8 bytes_alloc=18446744073709551000 gfp_flags=GFP_KERNEL"
        )
    };
    let (a, b) = (odd(0x200), odd(0x300));
    let path = trace_file(
        "huge",
        &[
            &huge,
            &huge,
            &a,
            &b,
            "kfree: call_site=c+0x1/0x2 ptr=0000000000000200",
            "kfree: call_site=c+0x1/0x2 ptr=0000000000000300",
        ],
    );
    let text = out(&kmem(&["replay", &path], None));
    let lines = ["requested: ", "allocated: ", "freed:     "].map(|what| format!("Total bytes {what}{MAX}\n"));
    assert_has(&text, &lines.each_ref().map(String::as_str));
}

#[test]
fn kfree_of_zero_size_ptr_is_a_no_op_without_a_traced_kmalloc_0() {
    // Kernels return ZERO_SIZE_PTR from kmalloc(0) before its event; kfree traces it.
    let path = trace_file(
        "zero_size_ptr",
        &[
            "kfree: call_site=seq_release+0x1a/0x30 ptr=0000000000000010",
            "kfree: call_site=seq_release+0x1a/0x30 ptr=(null)",
            "kfree: call_site=put_cred_rcu+0x1f/0x90 ptr=00000000deadbeef",
        ],
    );
    let text = out(&kmem(&["replay", &path], None));
    assert_has(&text, &["skipped: 1 frees of objects allocated before the trace, "]);
}

#[test]
fn a_task_name_that_is_not_utf_8_is_read() {
    // `comm` is any 15 bytes: here UTF-8 "ü" cut in half, and a Latin-1 "é".
    let mut text = Vec::new();
    text.extend_from_slice(b"  abcdefghijklmn\xc3-7 [001] ..... 1.0: kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL\n");
    text.extend_from_slice(b"  caf\xe9-8 [002] ..... 1.1: kfree: call_site=b+0x1/0x2 ptr=0000000000000100\n");
    let text = out(&kmem(&["replay", "-"], Some(&text)));
    assert_has(&text, &["2 lines: 1 allocations, 1 frees, ", "Cross CPU frees: 1/1\n"]);
}

#[test]
fn ring_buffer_lost_events_lines_are_counted_not_errors() {
    let text = b"  t-1 [000] ..... 1.0: kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL\n\
CPU:2 [LOST 4096 EVENTS]\n\
CPU:0 [LOST EVENTS]\n\
  t-1 [002] ..... 2.0: kfree: call_site=b+0x1/0x2 ptr=0000000000000100\n";
    let text = out(&kmem(&["replay", "-"], Some(text)));
    assert_has(
        &text,
        &[
            "4 lines: 1 allocations, 1 frees, ",
            "the trace lost events: 2 [LOST ...] lines, 4096 events counted in them\n",
        ],
    );
}

#[test]
fn a_failed_page_allocation_is_not_a_failed_object_allocation() {
    let path = trace_file(
        "page_failure",
        &[
            "mm_page_alloc: page=0000000000000000 pfn=0x0 order=9 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE",
            "kmalloc: call_site=a+0x1/0x2 ptr=0000000000000000 bytes_req=64 bytes_alloc=64 gfp_flags=GFP_ATOMIC",
        ],
    );
    let text = out(&kmem(&["replay", &path], None));
    assert_has(
        &text,
        &[
            "2 lines: 0 allocations, 0 frees, 0 page allocations, ",
            ", 1 allocations the traced kernel failed, ",
            "page allocations the traced kernel failed: 1\n",
        ],
    );
}

#[test]
fn the_free_of_a_block_kmem_could_not_serve_is_not_unknown() {
    let path = trace_file(
        "page_kmem_failure",
        &[
            // Order 12: above kmem's MAX_PAGE_ORDER.
            "mm_page_alloc: page=00000000aaaa0001 pfn=0x40000 order=12 migratetype=1 gfp_flags=GFP_KERNEL",
            "mm_page_free: page=00000000aaaa0001 pfn=0x40000 order=12",
        ],
    );
    let text = out(&kmem(&["replay", "--pages", &path], None));
    let line = "pages: 0 blocks live at the end, 0 frees of blocks allocated before the trace, 1 allocations kmem could not serve\n";
    assert!(text.contains(line), "missing {line:?} in:\n{text}");
}

#[test]
fn an_unreadable_line_or_file_is_an_error_naming_it() {
    let path = trace_file(
        "bad",
        &[
            "kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL",
            "kfree: call_site=a+0x1/0x2",
        ],
    );
    let o = kmem(&["replay", &path], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, format!("kmem replay: {path}: line 2: kfree event without `ptr=`\n"));
    assert!(o.stdout.is_empty(), "no partial report");
    let o = kmem(&["replay", "/nonexistent/trace"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("kmem replay: /nonexistent/trace: cannot open: "));
    let o = kmem(&["replay", "--profile", "sparc", SAMPLE], None);
    assert_eq!(o.status.code(), Some(2), "a bad command line");
}

/// `--per-cpu` runs each trace CPU's events on a thread (kmem CPU) of its own, in trace order:
/// the trace's numbers and kmem's sizes are the same as on one thread, and a bad line is the
/// same error.
#[test]
fn per_cpu_replays_read_the_same_trace_the_same() {
    let one = out(&kmem(&["replay", SAMPLE], None));
    let per_cpu = out(&kmem(&["replay", "--per-cpu", SAMPLE], None));
    let head = |t: &str| t.split("\ncache ").next().unwrap().to_owned();
    assert_eq!(head(&per_cpu), head(&one));
    let path = trace_file(
        "per_cpu_bad",
        &[
            "kmalloc: call_site=a+0x1/0x2 ptr=0000000000000100 bytes_req=8 bytes_alloc=8 gfp_flags=GFP_KERNEL",
            "kfree: ptr=zz",
        ],
    );
    let o = kmem(&["replay", "--per-cpu", &path], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).ends_with(": line 2: kfree event without `call_site=`\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// No trace line is longer than a page of ftrace text, let alone a MiB: a longer one (a file
/// with no newline, such as `kmem replay /dev/zero`) is an error at its first MiB instead of
/// growing one line without end until the process runs out of memory.
#[test]
fn a_line_longer_than_a_mib_is_an_error_not_unbounded_memory() {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-long-line.trace");
    let mut text = vec![b'x'; 3 << 20];
    text.push(b'\n');
    std::fs::write(&path, &text).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let o = kmem(&["replay", path], None);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err, format!("kmem replay: {path}: line 1: longer than 1048576 bytes: not a trace line\n"));
}

/// `kmem replay --help`: "the machine is x86_64 with 1 GiB unless --profile or KMEM_* say
/// otherwise" — not the host's RAM, which the x86_64 profile defaults to elsewhere.
#[test]
fn the_default_machine_has_1_gib() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kmem"));
    cmd.args(["replay", "--stat", "meminfo", SAMPLE]).env_remove("KMEM_MEM").env_remove("KMEM_PROFILE");
    let text = out(&cmd.env_remove("KMEM_LOG_ECHO").output().expect("run kmem"));
    let total = text.lines().find(|l| l.starts_with("MemTotal:")).expect("MemTotal line");
    let kb: u64 = total.split_whitespace().nth(1).unwrap().parse().unwrap();
    // 1 GiB less the page array.
    assert!(((1 << 20) - (16 << 10)..=1 << 20).contains(&kb), "{total}");
}
