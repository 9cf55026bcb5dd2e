//! Reading ftrace text of the kernel's `kmem:*` events (for `kmem replay`): one event per
//! line, as `/sys/kernel/tracing/trace`, `trace_pipe` and `perf script` print them:
//!
//! ```text
//!            bash-1234    [002] d..1.  5678.123456: kmalloc: call_site=load_elf_binary+0x1d4/0x1690 ptr=00000000c0ffee00 bytes_req=64 bytes_alloc=64 gfp_flags=GFP_KERNEL node=-1 accounted=false
//! ```
//!
//! The events and fields read are those of `include/trace/events/kmem.h` (6.x, and the older
//! `*_node` variants and unnamed `kmem_cache_alloc`): `kmalloc`, `kmem_cache_alloc` (`name=`
//! since 6.19), `kfree`, `kmem_cache_free`, `mm_page_alloc`, `mm_page_free`,
//! `mm_page_free_batched`. Any other event is [`Kind::Other`]; `#` lines, blank lines, the
//! call-chain frames `perf script -g` prints under an event, and `trace-cmd report`'s `cpus=N`
//! header are skipped. A line that names one of these events but lacks a field it needs, or
//! has one that does not parse, is an error naming the line. The CPU column is the first
//! `[digits]` with blanks on both sides (a task name may hold `[1]` too); `pfn=` is hex with
//! `0x` (Linux 4.x on) or decimal (before).
//!
//! Pointers are taken as the numbers they print as (`%p` hashes them, consistently within a
//! boot, which is all a replay needs). GFP masks are read by name (`%pGg`'s names, with or
//! without the `__` of older kernels); a name kmem does not know, and a hex remainder, are
//! returned separately so the caller can say what it ignored.

use kmem::Gfp;
use kmem_core::gfp::{__GFP_RECLAIMABLE, GFP_KERNEL, GFPFLAG_NAMES};

/// One event of a trace.
#[derive(Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// The CPU it was recorded on (`[003]`), if the line shows one.
    pub cpu: Option<u32>,
    /// What happened.
    pub kind: Kind<'a>,
}

/// The events a replay acts on.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `kmalloc`/`kmalloc_node` (`cache` `None`) or `kmem_cache_alloc`/`_node`.
    Alloc {
        /// `call_site`, as printed (`%pS`, or hex on old kernels).
        site: &'a str,
        /// `ptr`; 0 for a failed allocation.
        ptr: u64,
        /// `bytes_req`.
        req: usize,
        /// `bytes_alloc`: what the traced kernel gave (its size class, or the cache's `s->size`).
        alloc: usize,
        /// `gfp_flags`, the names kmem knows.
        gfp: Gfp,
        /// The first name kmem does not know (or a hex remainder), ignored in `gfp`.
        unknown_gfp: Option<&'a str>,
        /// `Some` for `kmem_cache_alloc`: the cache's `name=` (`None` before 6.19).
        cache: Option<Option<&'a str>>,
    },
    /// `kfree` (`kmalloc` true) or `kmem_cache_free`.
    Free {
        /// `call_site`.
        site: &'a str,
        /// `ptr`.
        ptr: u64,
        /// `kfree` rather than `kmem_cache_free`.
        kmalloc: bool,
    },
    /// `mm_page_alloc`: `pfn` 0 with `page` NULL for a failed allocation.
    PageAlloc {
        /// `pfn`, `None` if the allocation failed.
        pfn: Option<u64>,
        /// `order`.
        order: u32,
        /// `gfp_flags`, the names kmem knows.
        gfp: Gfp,
        /// As for [`Kind::Alloc`].
        unknown_gfp: Option<&'a str>,
    },
    /// `mm_page_free`, `mm_page_free_batched` (order 0).
    PageFree {
        /// `pfn`.
        pfn: u64,
        /// `order`.
        order: u32,
    },
    /// ftrace's `CPU:N [LOST M EVENTS]` (or `[LOST EVENTS]`, count unknown): the ring buffer
    /// of CPU `N` overwrote or dropped events before this point.
    Lost {
        /// `M`, if printed.
        events: Option<u64>,
    },
    /// Any other event (named).
    Other(&'a str),
}

/// A line that could not be read.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `key=value` fields of an event, at most [`MAX_FIELDS`]. A word without `=` continues the
/// previous value (`%pS` of a module symbol prints `func+0x1/0x2 [module]`).
struct Fields<'a> {
    text: &'a str,
    spans: [(&'a str, usize, usize); MAX_FIELDS],
    len: usize,
}

const MAX_FIELDS: usize = 16;

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Self {
        let mut f = Fields { text, spans: [("", 0, 0); MAX_FIELDS], len: 0 };
        let mut at = 0;
        for word in text.split(' ') {
            let start = at;
            at += word.len() + 1;
            if word.is_empty() {
                continue;
            }
            match word.split_once('=') {
                Some((key, _)) if f.len < MAX_FIELDS && !key.is_empty() && !key.contains(['[', '/', '+']) => {
                    f.spans[f.len] = (key, start + key.len() + 1, start + word.len());
                    f.len += 1;
                }
                _ if f.len > 0 => f.spans[f.len - 1].2 = start + word.len(),
                _ => {}
            }
        }
        f
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.spans[..self.len].iter().find(|s| s.0 == key).map(|&(_, a, b)| &self.text[a..b])
    }
}

/// Reads one line: `Ok(None)` for a comment or blank line.
///
/// # Errors
/// A `kmem:*` event this module reads whose fields are missing or malformed; the message says
/// which field.
pub fn parse_line(line: &str) -> Result<Option<Event<'_>>, ParseError> {
    let line = line.trim_end();
    if line.trim_start().is_empty() || line.trim_start().starts_with('#') {
        return Ok(None);
    }
    if let Some(lost) = lost_events(line.trim_start()) {
        return Ok(Some(lost));
    }
    if is_callchain_frame(line) || is_trace_cmd_header(line) {
        return Ok(None);
    }
    let bad = |what: &str| ParseError(what.to_owned());
    // `task-pid [cpu] flags timestamp: event: fields`; the task name may hold anything but the
    // CPU column is the first `[digits]`.
    let (cpu, after) = match find_cpu(line) {
        Some((cpu, rest)) => (Some(cpu), rest),
        None => (None, line),
    };
    let (_, rest) = after.split_once(": ").ok_or_else(|| bad("no `timestamp: event:` in the line"))?;
    let (event, fields) = match rest.split_once(": ") {
        Some((e, f)) => (e, f),
        None => (rest.strip_suffix(':').unwrap_or(rest), ""),
    };
    let event = event.trim();
    let event = event.strip_prefix("kmem:").unwrap_or(event);
    let f = Fields::new(fields);
    let need = |key: &str| f.get(key).ok_or_else(|| ParseError(format!("{event} event without `{key}=`")));
    let number = |key: &str| -> Result<usize, ParseError> {
        let v = need(key)?;
        v.parse().map_err(|_| ParseError(format!("{event}: `{key}={v}` is not a number")))
    };
    let pointer = |key: &str| -> Result<u64, ParseError> {
        let v = need(key)?;
        parse_hex(v).ok_or_else(|| ParseError(format!("{event}: `{key}={v}` is not a hex pointer")))
    };
    // `pfn=0x%lx` since Linux 4.x; `pfn=%lu` before.
    let pfn = || -> Result<u64, ParseError> {
        let v = need("pfn")?;
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        };
        parsed.ok_or_else(|| ParseError(format!("{event}: `pfn={v}` is not a page frame number")))
    };
    let order = || -> Result<u32, ParseError> {
        let v = need("order")?;
        v.parse().ok().filter(|&o| o <= 63).ok_or_else(|| ParseError(format!("{event}: `order={v}` is not an order")))
    };
    let kind = match event {
        "kmalloc" | "kmalloc_node" | "kmem_cache_alloc" | "kmem_cache_alloc_node" => {
            let (gfp, unknown_gfp) = parse_gfp(need("gfp_flags")?);
            Kind::Alloc {
                site: need("call_site")?,
                ptr: pointer("ptr")?,
                req: number("bytes_req")?,
                alloc: number("bytes_alloc")?,
                gfp,
                unknown_gfp,
                cache: event.starts_with("kmem_cache").then(|| f.get("name")),
            }
        }
        "kfree" | "kmem_cache_free" => {
            Kind::Free { site: need("call_site")?, ptr: pointer("ptr")?, kmalloc: event == "kfree" }
        }
        "mm_page_alloc" => {
            let (gfp, unknown_gfp) = parse_gfp(need("gfp_flags")?);
            let page = pointer("page")?;
            let pfn = pfn()?;
            Kind::PageAlloc { pfn: (page != 0).then_some(pfn), order: order()?, gfp, unknown_gfp }
        }
        "mm_page_free" => Kind::PageFree { pfn: pfn()?, order: order()? },
        "mm_page_free_batched" => Kind::PageFree { pfn: pfn()?, order: 0 },
        other => Kind::Other(other),
    };
    Ok(Some(Event { cpu, kind }))
}

/// `CPU:%d [LOST %lu EVENTS]` or `CPU:%d [LOST EVENTS]` (`print_trace_line`).
fn lost_events(line: &str) -> Option<Event<'static>> {
    let (cpu, rest) = line.strip_prefix("CPU:")?.split_once(' ')?;
    let cpu = cpu.parse().ok()?;
    let inner = rest.strip_prefix("[LOST")?.strip_suffix("EVENTS]")?.trim();
    let events = if inner.is_empty() { None } else { Some(inner.parse().ok()?) };
    Some(Event { cpu: Some(cpu), kind: Kind::Lost { events } })
}

/// A frame of `perf script -g`'s call chain under an event: an indented hex address, then the
/// symbol (`\tffffffff8123abcd __kmalloc+0x1d ([kernel.kallsyms])`), and no `: ` (an event
/// line of a task with an all-hex name, `  abc  42 [001] 7.25: kmem:kfree: ...`, has one).
fn is_callchain_frame(line: &str) -> bool {
    let rest = line.trim_start();
    rest.len() < line.len()
        && !line.contains(": ")
        && rest
            .split_once(char::is_whitespace)
            .is_some_and(|(addr, _)| !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `trace-cmd report`'s first line (`cpus=2`), before the events.
fn is_trace_cmd_header(line: &str) -> bool {
    line.strip_prefix("cpus=").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The CPU column (`[003]`) and the text after it: the first `[digits]` with blanks on both
/// sides (a task name such as `foo[1]` holds one too, but not after a blank).
fn find_cpu(line: &str) -> Option<(u32, &str)> {
    let mut from = 0;
    while let Some(open) = line[from..].find('[') {
        let open = from + open;
        let blank_before = line[..open].ends_with([' ', '\t']);
        if let Some(close) = line[open..].find(']') {
            let inner = &line[open + 1..open + close];
            let after = &line[open + close + 1..];
            let blank_after = after.is_empty() || after.starts_with([' ', '\t']);
            if blank_before && blank_after && !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()) {
                return inner.parse().ok().map(|cpu| (cpu, &line[open + close + 1..]));
            }
        }
        from = open + 1;
    }
    None
}

/// A pointer as `%p`/`%px`/`0x%lx` print it; NULL is 0, printed `(null)` by old kernels and
/// `(nil)` by `perf script` (libtraceevent prints a plain `%p` with the C library's `%p`).
fn parse_hex(v: &str) -> Option<u64> {
    if v == "(null)" || v == "(nil)" {
        return Some(0);
    }
    u64::from_str_radix(v.strip_prefix("0x").unwrap_or(v), 16).ok()
}

/// `gfp_flags=` as `%pGg`/`show_gfp_flags` print it: names joined by `|` (composites and single
/// bits, kmem's table, the `__`-less names of kernels before 4.x, `GFP_TEMPORARY`), maybe a hex
/// remainder. Returns the mask of the known names and the first part it ignored.
pub fn parse_gfp(text: &str) -> (Gfp, Option<&str>) {
    let mut gfp = Gfp::empty();
    let mut unknown = None;
    for part in text.split('|') {
        // `show_gfp_flags` of an empty mask.
        if part == "none" {
            continue;
        }
        let known = GFPFLAG_NAMES
            .iter()
            .find(|(_, name)| *name == part || name.strip_prefix("__") == Some(part))
            .map(|&(g, _)| g)
            .or_else(|| (part == "GFP_TEMPORARY").then_some(GFP_KERNEL | __GFP_RECLAIMABLE));
        match known {
            Some(g) => gfp |= g,
            None if unknown.is_none() && !part.is_empty() => unknown = Some(part),
            None => {}
        }
    }
    (gfp, unknown)
}

#[cfg(test)]
mod tests {
    use kmem_core::gfp::{__GFP_NOWARN, __GFP_ZERO, GFP_ATOMIC, GFP_NOWAIT};

    use super::*;

    #[test]
    fn a_kmalloc_line_of_6_x() {
        let line = "           bash-1234    [002] d..1.  5678.123456: kmalloc: call_site=load_elf_binary+0x1d4/0x1690 ptr=00000000c0ffee00 bytes_req=60 bytes_alloc=64 gfp_flags=GFP_KERNEL|__GFP_ZERO node=-1 accounted=false";
        let e = parse_line(line).unwrap().unwrap();
        assert_eq!(e.cpu, Some(2));
        assert_eq!(
            e.kind,
            Kind::Alloc {
                site: "load_elf_binary+0x1d4/0x1690",
                ptr: 0xc0ff_ee00,
                req: 60,
                alloc: 64,
                gfp: GFP_KERNEL | __GFP_ZERO,
                unknown_gfp: None,
                cache: None,
            }
        );
    }

    #[test]
    fn cache_events_with_and_without_a_name_and_a_module_call_site() {
        let named = "  kworker/u8:2-77 [000] ..... 10.5: kmem_cache_alloc: call_site=ext4_alloc_inode+0x1a/0x1f0 [ext4] ptr=ffff888004a1b2c0 name=ext4_inode_cache bytes_req=1080 bytes_alloc=1088 gfp_flags=GFP_KERNEL|__GFP_RECLAIMABLE node=-1 accounted=true";
        let Kind::Alloc { site, cache, req, alloc, ptr, .. } = parse_line(named).unwrap().unwrap().kind else {
            panic!("an alloc")
        };
        assert_eq!(
            (site, cache, req, alloc),
            ("ext4_alloc_inode+0x1a/0x1f0 [ext4]", Some(Some("ext4_inode_cache")), 1080, 1088)
        );
        assert_eq!(ptr, 0xffff_8880_04a1_b2c0);
        let old = "<idle>-0 [001] ..s1 99.0: kmem_cache_alloc_node: call_site=ffffffff81a2b3c4 ptr=ffff88003a0b1c00 bytes_req=232 bytes_alloc=256 gfp_flags=GFP_ATOMIC|GFP_NOWARN node=0";
        let Kind::Alloc { cache, gfp, .. } = parse_line(old).unwrap().unwrap().kind else { panic!("an alloc") };
        assert_eq!((cache, gfp), (Some(None), GFP_ATOMIC | __GFP_NOWARN), "pre-4.x names without `__`");
        let free = "x-1 [003] .... 1.0: kmem_cache_free: call_site=ext4_free_inode+0x1/0x2 ptr=ffff888004a1b2c0 name=ext4_inode_cache";
        assert_eq!(
            parse_line(free).unwrap().unwrap().kind,
            Kind::Free { site: "ext4_free_inode+0x1/0x2", ptr: 0xffff_8880_04a1_b2c0, kmalloc: false }
        );
    }

    #[test]
    fn page_events_perf_script_form_and_others() {
        let a = "  perf  4242 [001]  7.25: kmem:mm_page_alloc: page=0xffffea0000123400 pfn=0x48d0 order=2 migratetype=0 gfp_flags=GFP_NOWAIT|__GFP_COMP";
        assert_eq!(
            parse_line(a).unwrap().unwrap(),
            Event {
                cpu: Some(1),
                kind: Kind::PageAlloc {
                    pfn: Some(0x48d0),
                    order: 2,
                    gfp: GFP_NOWAIT | kmem_core::gfp::__GFP_COMP,
                    unknown_gfp: None
                }
            }
        );
        let failed = "t-1 [000] .... 1.0: mm_page_alloc: page=0000000000000000 pfn=0x0 order=9 migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_SKIP_KASAN";
        let Kind::PageAlloc { pfn, unknown_gfp, .. } = parse_line(failed).unwrap().unwrap().kind else { panic!() };
        assert_eq!((pfn, unknown_gfp), (None, Some("__GFP_SKIP_KASAN")));
        let batched = "t-1 [000] .... 1.0: mm_page_free_batched: page=00000000deadbeef pfn=0x1000 order=0";
        assert_eq!(parse_line(batched).unwrap().unwrap().kind, Kind::PageFree { pfn: 0x1000, order: 0 });
        let sched = "t-1 [000] .... 1.0: sched_switch: prev_comm=a prev_pid=1";
        assert_eq!(parse_line(sched).unwrap().unwrap().kind, Kind::Other("sched_switch"));
        assert_eq!(parse_line("# tracer: nop").unwrap(), None);
        assert_eq!(parse_line("   ").unwrap(), None);
    }

    #[test]
    fn perf_script_null_pointers_are_nil() {
        let free = "  swapper     0 [002]  3.5: kmem:kfree: call_site=0xffffffff81234567 ptr=(nil)";
        assert_eq!(
            parse_line(free).unwrap().unwrap().kind,
            Kind::Free { site: "0xffffffff81234567", ptr: 0, kmalloc: true }
        );
        let failed = "  perf  4242 [001]  7.25:   kmem:mm_page_alloc: page=(nil) pfn=0x0 order=3 migratetype=0 gfp_flags=GFP_NOWAIT";
        let Kind::PageAlloc { pfn, .. } = parse_line(failed).unwrap().unwrap().kind else { panic!("a page alloc") };
        assert_eq!(pfn, None, "a failed allocation");
    }

    #[test]
    fn lost_events_markers() {
        assert_eq!(
            parse_line("CPU:3 [LOST 1234 EVENTS]").unwrap().unwrap(),
            Event { cpu: Some(3), kind: Kind::Lost { events: Some(1234) } }
        );
        assert_eq!(
            parse_line("CPU:0 [LOST EVENTS]").unwrap().unwrap(),
            Event { cpu: Some(0), kind: Kind::Lost { events: None } }
        );
        assert!(parse_line("CPU:0 [LOST many EVENTS]").is_err(), "not a marker: no event either");
    }

    #[test]
    fn malformed_lines_name_the_field() {
        let e = parse_line("t-1 [000] .... 1.0: kfree: call_site=a+0x1/0x2").unwrap_err();
        assert_eq!(e.0, "kfree event without `ptr=`");
        let e = parse_line(
            "t-1 [000] .... 1.0: kmalloc: call_site=a ptr=12 bytes_req=x bytes_alloc=8 gfp_flags=GFP_KERNEL",
        )
        .unwrap_err();
        assert_eq!(e.0, "kmalloc: `bytes_req=x` is not a number");
        let e = parse_line("t-1 [000] .... 1.0: mm_page_free: page=1 pfn=zz order=0").unwrap_err();
        assert_eq!(e.0, "mm_page_free: `pfn=zz` is not a page frame number");
        assert!(parse_line("no event here").is_err());
    }

    #[test]
    fn gfp_names_old_new_and_unknown() {
        assert_eq!(parse_gfp("GFP_KERNEL"), (GFP_KERNEL, None));
        assert_eq!(parse_gfp("none"), (Gfp::empty(), None));
        assert_eq!(parse_gfp("GFP_TEMPORARY"), (GFP_KERNEL | __GFP_RECLAIMABLE, None));
        assert_eq!(parse_gfp("GFP_KERNEL|0x4000000"), (GFP_KERNEL, Some("0x4000000")));
        assert_eq!(parse_gfp("__GFP_NOLOCKDEP|GFP_ATOMIC"), (GFP_ATOMIC, Some("__GFP_NOLOCKDEP")));
    }

    #[test]
    fn old_pfns_perf_callchains_trace_cmd_headers_and_bracketed_task_names() {
        // Before 4.x, `pfn=%lu`: decimal.
        let old = "t-1 [000] .... 1.0: mm_page_free: page=ffffea0000012340 pfn=74565 order=1";
        assert_eq!(parse_line(old).unwrap().unwrap().kind, Kind::PageFree { pfn: 74565, order: 1 });
        // `perf script -g`: the event line, then its call chain, then a blank line.
        let event = "  perf  4242 [001]  7.25: kmem:kfree: call_site=kfree_x+0x1 ptr=0xffff888001234560";
        assert!(matches!(parse_line(event).unwrap().unwrap().kind, Kind::Free { .. }));
        assert_eq!(parse_line("\tffffffff8123abcd kfree+0x1d ([kernel.kallsyms])").unwrap(), None);
        assert_eq!(parse_line("            7f00deadbeef main+0x10 (/usr/bin/x)").unwrap(), None);
        assert_eq!(parse_line("cpus=4").unwrap(), None);
        let hex_task = "  abc  4242 [001]  7.25: kmem:kfree: call_site=f+0x1 ptr=0xffff888001234560";
        assert!(matches!(parse_line(hex_task).unwrap().unwrap().kind, Kind::Free { .. }));
        // A task whose name holds `[digits]`: the CPU column is the bracket between blanks.
        let named = "  foo[1]-77  [003] ..... 2.0: kfree: call_site=f+0x1/0x2 ptr=ffff888000001000";
        assert_eq!(parse_line(named).unwrap().unwrap().cpu, Some(3));
        assert!(parse_line("cpus=four").is_err());
    }
}
