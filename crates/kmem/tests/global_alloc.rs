//! kmem as the `#[global_allocator]` of a whole program (issue 3, "Must show"): a heavy std
//! workload — vectors, strings, hash and B-tree maps, boxes passed between threads, threads
//! that come and go — runs to completion on kmalloc, and the kmalloc caches' statistics show
//! that the allocations went through kmem.
//!
//! Its own binary (`harness = false`): the global allocator is process-wide, and the default
//! machine it builds must not be shared with other tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread;

use kmem::{KmemAlloc, Machine};

#[global_allocator]
static KMEM: KmemAlloc = KmemAlloc::new();

/// Boxes each producer thread sends.
const BOXES_PER_PRODUCER: usize = 20_000;
/// Producer threads (each is also a short-lived thread that exits).
const PRODUCERS: usize = 4;
/// Rounds of collection churn on the main thread.
const ROUNDS: usize = 40;
/// Short-lived threads that allocate, hand their data back and exit.
const EPHEMERAL: usize = 64;

/// Allocations (fast + slow) of every `kmalloc-*` cache so far.
fn kmalloc_allocs(m: &Machine) -> u64 {
    let mut n = 0;
    // The closure runs under the cache list lock: it must not allocate (it does not).
    m.for_each_cache(|c| {
        if m.cache(c).unwrap().name().starts_with("kmalloc-") {
            let info = m.cache_info(c);
            n += info.alloc_fast + info.alloc_slow;
        }
    });
    n
}

fn churn_collections(round: usize) -> u64 {
    let mut words: Vec<String> = (0..2_000).map(|i| format!("word-{round}-{i:05}")).collect();
    words.sort_unstable_by(|a, b| b.cmp(a));
    let mut counts: HashMap<String, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w[..w.len() - 2].to_owned()).or_default() += 1;
    }
    let mut tree: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for i in 0..3_000u64 {
        tree.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40, vec![i as u8; (i % 300) as usize]);
        if i % 3 == 0 {
            let first = *tree.keys().next().expect("not empty");
            tree.remove(&first);
        }
    }
    let mut grow = String::new();
    for w in words.iter().take(500) {
        grow.push_str(w);
    }
    let big: Vec<u64> = (0..200_000).collect(); // 1.6 MB: page-backed kmalloc.
    counts.values().sum::<usize>() as u64 + tree.len() as u64 + grow.len() as u64 + big[199_999]
}

fn producers_and_consumer() -> u64 {
    let (tx, rx) = mpsc::sync_channel::<Box<[u64; 16]>>(256);
    let producers: Vec<_> = (0..PRODUCERS as u64)
        .map(|t| {
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..BOXES_PER_PRODUCER as u64 {
                    let mut b = Box::new([0u64; 16]);
                    b[0] = t;
                    b[15] = i;
                    tx.send(b).expect("consumer alive");
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = thread::spawn(move || {
        let mut sum = 0;
        let mut seen = 0;
        for b in rx {
            sum += b[0] * 1_000_000 + b[15];
            seen += 1;
        }
        (sum, seen)
    });
    for p in producers {
        p.join().expect("producer");
    }
    let (sum, seen) = consumer.join().expect("consumer");
    assert_eq!(seen, PRODUCERS * BOXES_PER_PRODUCER);
    sum
}

fn ephemeral_threads() -> usize {
    let handles: Vec<_> = (0..EPHEMERAL)
        .map(|i| {
            thread::Builder::new()
                .name(format!("ephemeral-{i}"))
                .spawn(move || (0..100).map(|j| format!("{i}:{j}")).collect::<Vec<String>>())
                .expect("spawn")
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("join").len()).sum()
}

fn main() {
    let m = KMEM.machine().expect("the default machine was built on the first allocation");
    let before = kmalloc_allocs(m);

    let mut check = 0;
    for round in 0..ROUNDS {
        check += churn_collections(round);
    }
    let expected_sum: u64 = (0..PRODUCERS as u64)
        .map(|t| t * 1_000_000 * BOXES_PER_PRODUCER as u64 + (0..BOXES_PER_PRODUCER as u64).sum::<u64>())
        .sum();
    assert_eq!(producers_and_consumer(), expected_sum, "every box arrived intact");
    assert_eq!(ephemeral_threads(), EPHEMERAL * 100);
    assert!(check > 0);

    // Live allocations are kmem memory.
    let b = Box::new(42u64);
    let v: Vec<u8> = vec![1; 100_000];
    assert!(m.virt_to_pfn((&raw const *b).cast()).is_some(), "a Box is in the machine's direct map");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize((&raw const *b).cast()) }, 8, "from kmalloc-8");
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(v.as_ptr()) }, 128 << 10, "100 KB: a page-backed kmalloc of order 5");
    let huge: Vec<u8> = vec![7; 5 << 20];
    assert!(m.virt_to_pfn(huge.as_ptr()).is_none(), "above 4 MiB: the system allocator");
    assert_eq!(huge[(5 << 20) - 1], 7);
    drop((b, v, huge));

    let after = kmalloc_allocs(m);
    let boxes = (PRODUCERS * BOXES_PER_PRODUCER) as u64;
    // Each round allocates 2,000 words, 2,000 map keys and 2,990 non-empty tree values at least.
    let floor = boxes + (ROUNDS as u64) * 6_990;
    let through_kmem = after - before;
    let fallbacks = KmemAlloc::system_fallbacks();
    assert!(through_kmem >= floor, "{through_kmem} kmalloc allocations, expected at least {floor}");
    assert!(fallbacks.large >= 1, "the 5 MiB vector went to the system allocator: {fallbacks:?}");
    assert!(
        (fallbacks.bootstrap + fallbacks.nested + fallbacks.large) as u64 * 100 < through_kmem,
        "under 1% of allocations bypassed kmem: {fallbacks:?}"
    );
    let slabinfo = m.slabinfo();
    let kmalloc128 = slabinfo.lines().find(|l| l.starts_with("kmalloc-128 ")).expect("kmalloc-128 in /proc/slabinfo");
    println!("global_alloc: {through_kmem} kmalloc allocations (floor {floor}), fallbacks {fallbacks:?}");
    println!("{kmalloc128}");
    println!("test global_alloc ... ok");
}
