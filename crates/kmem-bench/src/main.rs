#![doc = include_str!("../README.md")]

mod floor;
mod harness;
mod kmem_adapter;
mod memory;
mod mempool;
mod obj_peers;
mod objects;
mod pages;
mod peers;
mod vmalloc;

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{env, fs, process};

use harness::{Config, Results, Role};
use pages::{Bench, Contender};

/// Workload groups, in the order they run (a single kmalloc class `kN` is a group too). `memory`
/// is not timed: it runs once, after the others, and adds its own section to the report.
const GROUPS: [&str; 10] =
    ["pages", "mempool", "vmalloc", "hot64", "hot64-2T", "kmalloc", "batch64", "churn", "prodcons", "memory"];

const USAGE: &str = "\
kmem-bench: kmem against crates.io allocators and the floor, as paired ratios (BENCHMARKS.md)

usage: cargo run --release -p kmem-bench -- [OPTIONS]

options:
  --quick           3 rounds of 10 ms samples (a few seconds) instead of 11 rounds of 20 ms
  --groups G[,G..]  workload groups to run (default: all): pages, mempool, vmalloc, hot64, hot64-2T,
                    kmalloc (k8..k8192), kN (one class, e.g. k64), batch64, churn, prodcons,
                    memory (not timed: metadata, slab waste, resident memory after churn)
  --rounds N        interleaved rounds (default 11; 3 with --quick)
  --out FILE        also write the report (machine + markdown table) to FILE
  -h, --help        this text
";

/// Parsed command line.
struct Args {
    quick: bool,
    groups: Vec<String>,
    rounds: Option<usize>,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { quick: false, groups: Vec::new(), rounds: None, out: None };
    let mut it = env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value =
            |name: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                process::exit(0);
            }
            "--quick" => args.quick = true,
            "--groups" => {
                for g in value("--groups")?.split(',').filter(|g| !g.is_empty()) {
                    if !GROUPS.contains(&g) && kmalloc_class(g).is_none() {
                        return Err(format!("unknown group `{g}` (known: {}, kN)", GROUPS.join(", ")));
                    }
                    args.groups.push(g.to_owned());
                }
            }
            "--rounds" => {
                let v = value("--rounds")?;
                match v.parse::<usize>() {
                    Ok(n) if n > 0 => args.rounds = Some(n),
                    _ => return Err(format!("--rounds wants a positive integer, not `{v}`")),
                }
            }
            "--out" => args.out = Some(value("--out")?),
            // `cargo bench` passes this to every bench target; there is nothing to switch.
            "--bench" => {}
            _ => return Err(format!("unknown argument `{arg}`\n\n{USAGE}")),
        }
    }
    if args.groups.is_empty() {
        args.groups = GROUPS.iter().map(|&g| g.to_owned()).collect();
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("kmem-bench: {e}");
        process::exit(2);
    });
    let cfg = Config {
        rounds: args.rounds.unwrap_or(if args.quick { 3 } else { 11 }),
        sample_target: Duration::from_millis(if args.quick { 10 } else { 20 }),
    };

    let kmem = kmem_adapter::Kmem::boot();
    let mut report = header(&cfg, &args.groups, kmem.as_ref().err());
    let mut results = Results::new(cfg.rounds);
    for group in &args.groups {
        if group == "pages" {
            let mut contenders: Vec<Box<dyn Contender + '_>> = Vec::new();
            if let Ok(k) = &kmem {
                contenders.extend(k.contenders());
            }
            contenders.extend(page_peers());
            pages::run(&cfg, &mut contenders, &mut results);
        } else if group == "vmalloc" {
            vmalloc::run(&cfg, &mut results);
        }
        if group == "mempool" {
            // kmem against itself (pool vs. its backing allocator): no peer applies.
            match kmem.as_ref().map(kmem_adapter::Kmem::mempool_contenders) {
                Ok(Ok(mut contenders)) => mempool::run(&cfg, &mut contenders, &mut results),
                Ok(Err(e)) => eprintln!("kmem-bench: mempool group skipped: {e}"),
                Err(_) => {}
            }
        }
    }
    let works = slab_works(&args.groups);
    if !works.is_empty() {
        let mut contenders: Vec<Box<dyn objects::Contender + '_>> = Vec::new();
        match kmem.as_ref().map(kmem_adapter::Kmem::slab_contenders) {
            Ok(Ok(c)) => contenders.extend(c),
            Ok(Err(e)) => eprintln!("kmem-bench: no kmem slab rows: {e}"),
            Err(_) => {}
        }
        contenders.extend(slab_peers(&works));
        objects::run(&cfg, &works, &mut contenders, &mut results);
    }
    if !results.is_empty() {
        report.push('\n');
        report.push_str(&results.table());
    }
    if args.groups.iter().any(|g| g == "memory") {
        report.push('\n');
        report.push_str(&memory::run());
    }
    print!("{report}");
    if let Some(path) = &args.out {
        if let Err(e) = fs::write(path, &report) {
            eprintln!("kmem-bench: cannot write {path}: {e}");
            process::exit(1);
        }
        eprintln!("kmem-bench: report written to {path}");
    }
}

/// The page peers and the page floor, in table order.
fn page_peers() -> Vec<Box<dyn Contender>> {
    vec![
        Box::new(Bench::new("buddy_system_allocator Heap<32>", Role::Peer, peers::BuddyHeapPeer::new())),
        Box::new(Bench::new("buddy_system_allocator FrameAllocator<32>", Role::Peer, peers::BuddyFramePeer::new())),
        Box::new(Bench::new("linked_list_allocator Heap", Role::Peer, peers::LinkedListPeer::new())),
        Box::new(Bench::new("talc Talc", Role::Peer, peers::TalcPeer::new())),
        Box::new(Bench::new(
            "floor: free list, links outside pages",
            Role::Floor,
            floor::FreeList::new((pages::BATCH + pages::LIVE + 1) as u32),
        )),
    ]
}

/// The kmalloc class a `kN` group names.
fn kmalloc_class(group: &str) -> Option<usize> {
    let n: usize = group.strip_prefix('k')?.parse().ok()?;
    floor::KMALLOC_CLASSES.contains(&n).then_some(n)
}

/// The slab workloads the selected groups ask for, in table order.
fn slab_works(groups: &[String]) -> Vec<objects::Work> {
    use objects::Work;
    let has = |g: &str| groups.iter().any(|x| x == g);
    let mut works = Vec::new();
    if has("hot64") {
        works.push(Work::Hot64);
    }
    if has("hot64-2T") {
        works.push(Work::Hot64x2);
    }
    for n in floor::KMALLOC_CLASSES {
        if has("kmalloc") || groups.iter().any(|g| kmalloc_class(g) == Some(n)) {
            works.push(Work::K(n));
        }
    }
    if has("batch64") {
        works.push(Work::Batch64);
    }
    if has("churn") {
        works.push(Work::Churn);
    }
    if has("prodcons") {
        works.push(Work::ProdCons);
    }
    works
}

/// The slab peers and floors, in table order.
fn slab_peers(works: &[objects::Work]) -> Vec<Box<dyn objects::Contender>> {
    use objects::{BATCH64, Bench, FIXED, HOT64, SIZED, THREADS};
    let all = FIXED | SIZED | THREADS;
    let mut peers: Vec<Box<dyn objects::Contender>> = vec![
        Box::new(Bench::shared("system (glibc malloc)", Role::Peer, all, obj_peers::Global(std::alloc::System))),
        Box::new(Bench::shared("mimalloc (mi_malloc/mi_free)", Role::Peer, all, obj_peers::MiMalloc)),
        Box::new(Bench::shared(
            "jemalloc (tikv-jemallocator)",
            Role::Peer,
            all,
            obj_peers::Global(tikv_jemallocator::Jemalloc),
        )),
        Box::new(Bench::shared("snmalloc (snmalloc-rs)", Role::Peer, all, obj_peers::Global(snmalloc_rs::SnMalloc))),
        Box::new(Bench::new("talc Talc", Role::Peer, FIXED | SIZED, obj_peers::talc())),
        Box::new(Bench::new("rlsf Tlsf", Role::Peer, FIXED | SIZED, obj_peers::rlsf())),
        Box::new(Bench::new("linked_list_allocator Heap", Role::Peer, FIXED | SIZED, obj_peers::linked_list())),
        Box::new(Bench::new("buddy_system_allocator Heap<32>", Role::Peer, FIXED | SIZED, obj_peers::buddy())),
        Box::new(Bench::new(
            "slab (tokio) Slab<MaybeUninit<[u8; 64]>>",
            Role::Peer,
            FIXED,
            obj_peers::TokioSlab::new(),
        )),
        Box::new(Bench::shared(
            "sharded-slab Slab<MaybeUninit<[u8; 64]>>",
            Role::Peer,
            FIXED | THREADS,
            obj_peers::ShardedSlab::new(),
        )),
        // Not batch64: `pull` scans the pool's pages from the first one for a free slot, so a
        // million objects out at once make the batch quadratic (it did not finish in 100 s).
        Box::new(Bench::shared(
            "lockfree-object-pool LinearObjectPool",
            Role::Peer,
            HOT64 | THREADS,
            obj_peers::LockfreePool::new(),
        )),
        Box::new(Bench::shared("object-pool Pool", Role::Peer, FIXED | THREADS, obj_peers::ObjectPool::new())),
        // Floors: hot64 keeps its list in L1; batch64 needs a million objects of arena.
        Box::new(Bench::new(
            "floor: free list in the objects",
            Role::Floor,
            HOT64,
            floor::ObjFreeList::new(64, objects::LIVE + 1),
        )),
        Box::new(Bench::new(
            "floor: free list per kmalloc class",
            Role::Floor,
            SIZED,
            floor::ClassLists::new(objects::CHURN_LIVE + objects::LIVE + 1),
        )),
        Box::new(Bench::new(
            "floor: address stack per kmalloc class",
            Role::Floor,
            SIZED,
            floor::ClassStacks::new(objects::CHURN_LIVE + objects::LIVE + 1),
        )),
        Box::new(Bench::with_threads(
            "floor: free list per thread, batched hand-off",
            Role::Floor,
            THREADS,
            (),
            |_, work, warm, units| {
                let (a, b) = floor::handoff_pair(64, 4096);
                objects::two_threads(work, a, b, warm, units)
            },
        )),
        Box::new(Bench::with_threads(
            "floor: address stack per thread, whole batches handed off",
            Role::Floor,
            THREADS,
            (),
            |_, work, warm, units| {
                let (a, b) = floor::stack_handoff_pair(64, 4096);
                objects::two_threads(work, a, b, warm, units)
            },
        )),
    ];
    if works.contains(&objects::Work::Batch64) {
        // 64 MB of arena, made only when batch64 runs.
        let list = floor::ObjFreeList::new(64, objects::BATCH_OBJECTS);
        peers.push(Box::new(Bench::new("floor: free list in the objects", Role::Floor, BATCH64, list)));
        // The same with the links outside the objects (a further 8 MB of addresses).
        let stack = floor::PtrStack::new(64, objects::BATCH_OBJECTS);
        peers.push(Box::new(Bench::new("floor: address stack", Role::Floor, BATCH64, stack)));
    }
    peers
}

/// The machine, toolchain, date and method, as markdown lines above the table.
fn header(cfg: &Config, groups: &[String], kmem_err: Option<&String>) -> String {
    let cpu = cpu_description();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel =
        fs::read_to_string("/proc/sys/kernel/osrelease").map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let mut h = format!(
        "## kmem-bench: {groups}\n\n\
         - machine: {cpu}, {cores} cores, Linux {kernel}\n\
         - toolchain: {rustc}, release profile (thin LTO, codegen-units 1, no debug info)\n\
         - date: {date}\n\
         {method}\
         - peers: buddy_system_allocator {bsa}, linked_list_allocator {lla}, talc {talc}; slab \
           workloads also: system allocator ({glibc}), mimalloc {mi}, tikv-jemallocator {je}, \
           snmalloc-rs {sn}, rlsf {rlsf}, slab {slab}, sharded-slab {sharded}, \
           lockfree-object-pool {lfp}, object-pool {op}\n\
         - load: {load}\n",
        groups = groups.join(", "),
        rustc = env!("KMEM_BENCH_RUSTC"),
        date = utc_now(),
        method = if groups.iter().all(|g| g == "memory") {
            "- method: the `memory` group alone: not timed, run once\n".to_owned()
        } else {
            format!(
                "- method: {} interleaved rounds (order rotated each round), one sample per allocator per round, samples of at least {} ms after a \
                 warm-up, one thread (two for hot64-2T and prodcons), nothing pinned; ratios are medians of the \
                 per-round ratios kmem ÷ best peer and kmem ÷ floor\n",
                cfg.rounds,
                cfg.sample_target.as_millis()
            )
        },
        bsa = env!("KMEM_BENCH_V_BUDDY_SYSTEM_ALLOCATOR"),
        lla = env!("KMEM_BENCH_V_LINKED_LIST_ALLOCATOR"),
        talc = env!("KMEM_BENCH_V_TALC"),
        glibc = glibc_version(),
        mi = env!("KMEM_BENCH_V_MIMALLOC"),
        je = env!("KMEM_BENCH_V_JEMALLOC"),
        sn = env!("KMEM_BENCH_V_SNMALLOC"),
        rlsf = env!("KMEM_BENCH_V_RLSF"),
        slab = env!("KMEM_BENCH_V_SLAB"),
        sharded = env!("KMEM_BENCH_V_SHARDED_SLAB"),
        lfp = env!("KMEM_BENCH_V_LOCKFREE_OBJECT_POOL"),
        op = env!("KMEM_BENCH_V_OBJECT_POOL"),
        load = load_average(),
    );
    if let Some(e) = kmem_err {
        h.push_str(&format!("- kmem: **machine failed to boot** ({e}); peers and floor only\n"));
    }
    h
}

/// The glibc version (`gnu_get_libc_version`), the system allocator's.
fn glibc_version() -> String {
    unsafe extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: glibc returns a static NUL-terminated string.
    let v = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    format!("glibc {}", v.to_string_lossy())
}

/// `/proc/loadavg`'s 1, 5 and 15 minute load averages at start: other work on the machine.
fn load_average() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let avgs: Vec<&str> = text.split_whitespace().take(3).collect();
    match avgs.as_slice() {
        [a, b, c] => format!("load average {a}, {b}, {c} (1, 5, 15 min) at start"),
        _ => "unknown".to_owned(),
    }
}

/// The CPU model from `/proc/cpuinfo`, with its family and model numbers (a bare "AMD EPYC" does
/// not tell Zen generations apart) and whether it runs under a hypervisor.
fn cpu_description() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim().to_owned())
        })
    };
    let mut cpu = field("model name").unwrap_or_else(|| "unknown CPU".to_owned());
    if let (Some(family), Some(model)) = (field("cpu family"), field("model")) {
        cpu.push_str(&format!(" (family {family}, model {model})"));
    }
    if field("flags").is_some_and(|f| f.split(' ').any(|x| x == "hypervisor")) {
        cpu.push_str(", virtualised");
    }
    cpu
}

/// The current time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant, "chrono-Compatible Low-Level Date
    // Algorithms", civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}
