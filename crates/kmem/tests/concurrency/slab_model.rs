//! Model-based test of the slab allocator (STYLE §7, issue 3 "Must show"): a seeded generator
//! drives two worker threads in lock step with random create / alloc / free / kmalloc / kfree
//! / shrink / destroy operations. Objects allocated by one worker are often freed by the other
//! (the pointer travels through the channels), so frees land in the other CPU's array.
//!
//! After every step, with both workers idle, the coordinator compares the machine with a plain
//! model (SL-8..14, KM-1):
//! - no two live objects overlap, and each lies in allocated pages;
//! - every live object still holds the bytes written when it was allocated;
//! - per cache: `validate_slab_cache` passes and names `cache_info().slabs` slabs;
//!   `live <= active_objs <= live + objects parked in CPU arrays`, and `active_objs == live`
//!   right after a shrink (which flushes every CPU's array); a shrink returns 0 iff the model
//!   has no live object of the cache (SL-13);
//! - destroy succeeds exactly when the model says the cache is empty or still aliased (SL-6,
//!   SL-12).
//!
//! At the end everything is freed and destroyed and every page is back.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread;

use kmem::gfp::GFP_KERNEL;
use kmem::slab::flags::{SLAB_HWCACHE_ALIGN, SLAB_NO_MERGE, SLAB_RECLAIM_ACCOUNT, SlabFlags};
use kmem::slab::{CacheArgs, CacheRef};
use kmem::{Machine, Profile};

use crate::Rng;

const SEEDS: [u64; 3] = [0x9e37_79b9_7f4a_7c15, 0x2545_f491_4f6c_dd1d, 7];
const STEPS: usize = 1500;
/// Objects each CPU array may hold at most (the largest capacity of `cpu_array_cap`), times
/// the CPU slots in use.
const MAX_PARKED: usize = 128 * 4;
const SIZES: [usize; 8] = [8, 24, 60, 64, 100, 256, 700, 3000];
const FLAGS: [SlabFlags; 3] = [SlabFlags::empty(), SLAB_HWCACHE_ALIGN, SLAB_RECLAIM_ACCOUNT];

/// xorshift64*: a fixed-seed generator, so a failure names a seed that replays it.
#[derive(Clone, Copy, Debug)]
enum Op {
    Create { size: usize, flags: SlabFlags, name: usize },
    Alloc { cache: CacheRef, len: usize, tag: u8 },
    Kmalloc { len: usize, tag: u8 },
    Free { cache: Option<CacheRef>, addr: usize, len: usize, tag: u8 },
    Shrink { cache: CacheRef },
    Destroy { cache: CacheRef },
    Exit,
}

#[derive(Debug, PartialEq)]
enum Reply {
    Created(CacheRef),
    Allocated(usize),
    Freed,
    Shrunk(i32),
    Destroyed(Result<(), usize>),
}

fn nn(addr: usize) -> NonNull<u8> {
    NonNull::new(addr as *mut u8).expect("non-null object")
}

fn worker(m: Machine, ops: Receiver<Op>, replies: Sender<Reply>) {
    for op in ops {
        let reply = match op {
            Op::Create { size, flags, name } => {
                let c = m.kmem_cache_create(&format!("model-{name}"), size, &CacheArgs::default(), flags);
                Reply::Created(c.expect("create"))
            }
            Op::Alloc { cache, len, tag } => {
                let p = m.kmem_cache_alloc(cache, GFP_KERNEL).expect("kmem_cache_alloc");
                // SAFETY: The test's own allocation, used by nothing else meanwhile.
                unsafe { m.write_bytes(p, &vec![tag; len]) }.expect("object in allocated pages");
                Reply::Allocated(p.as_ptr() as usize)
            }
            Op::Kmalloc { len, tag } => {
                let p = m.kmalloc(len, GFP_KERNEL).expect("kmalloc");
                // SAFETY: The test's own allocation, used by nothing else meanwhile.
                unsafe { m.write_bytes(p, &vec![tag; len]) }.expect("object in allocated pages");
                Reply::Allocated(p.as_ptr() as usize)
            }
            Op::Free { cache, addr, len, tag } => {
                let mut buf = vec![0; len];
                // SAFETY: The test's own allocation, used by nothing else meanwhile.
                unsafe { m.read_bytes(nn(addr), &mut buf) }.expect("live object readable");
                assert!(buf.iter().all(|&b| b == tag), "object {addr:#x} changed before its free");
                // SAFETY: The model hands each live object to exactly one free, after which
                // no one touches it.
                unsafe {
                    match cache {
                        Some(c) => m.kmem_cache_free(c, addr as *mut u8),
                        None => m.kfree(addr as *const u8),
                    }
                }
                Reply::Freed
            }
            Op::Shrink { cache } => Reply::Shrunk(m.kmem_cache_shrink(cache)),
            Op::Destroy { cache } => {
                // SAFETY: The model never uses a cache after its last reference is dropped.
                Reply::Destroyed(unsafe { m.kmem_cache_destroy(cache) }.map_err(|e| e.live_objects))
            }
            Op::Exit => return,
        };
        replies.send(reply).expect("coordinator alive");
    }
}

/// One live object: its cache (None: kmalloc), length written and tag byte.
#[derive(Clone, Copy)]
struct Obj {
    cache: Option<CacheRef>,
    len: usize,
    tag: u8,
}

struct Model {
    m: Machine,
    to: Vec<Sender<Op>>,
    from: Vec<Receiver<Reply>>,
    /// Live objects by address.
    live: BTreeMap<usize, Obj>,
    /// Handles the model holds (one per successful create, aliases repeat a cache).
    handles: Vec<CacheRef>,
    names: usize,
}

impl Model {
    fn run(&mut self, thread: usize, op: Op) -> Reply {
        self.to[thread].send(op).expect("worker alive");
        self.from[thread].recv().expect("worker replied")
    }

    fn live_in(&self, c: CacheRef) -> usize {
        self.live.values().filter(|o| o.cache == Some(c)).count()
    }

    fn step(&mut self, rng: &mut Rng, step: usize) {
        let t = rng.index(2);
        let tag = (step as u8) | 1;
        let choice = rng.index(100);
        if self.handles.is_empty() || choice < 5 {
            let (size, flags) = (SIZES[rng.index(SIZES.len())], FLAGS[rng.index(FLAGS.len())]);
            let flags = if rng.index(4) == 0 { flags.union(SLAB_NO_MERGE) } else { flags };
            self.names += 1;
            let Reply::Created(c) = self.run(t, Op::Create { size, flags, name: self.names }) else { unreachable!() };
            assert!(self.m.cache(c).unwrap().object_size() >= size);
            self.handles.push(c);
        } else if choice < 45 {
            let c = self.handles[rng.index(self.handles.len())];
            let len = self.m.cache(c).unwrap().object_size();
            let Reply::Allocated(addr) = self.run(t, Op::Alloc { cache: c, len, tag }) else { unreachable!() };
            assert!(self.live.insert(addr, Obj { cache: Some(c), len, tag }).is_none(), "{addr:#x} handed out twice");
        } else if choice < 55 {
            let len = 1 + rng.index(9000);
            let Reply::Allocated(addr) = self.run(t, Op::Kmalloc { len, tag }) else { unreachable!() };
            assert!(self.live.insert(addr, Obj { cache: None, len, tag }).is_none(), "{addr:#x} handed out twice");
        } else if choice < 92 {
            if self.live.is_empty() {
                return;
            }
            let addr = *self.live.keys().nth(rng.index(self.live.len())).expect("index in range");
            let o = self.live.remove(&addr).expect("live");
            // The other worker frees it about half the time: a cross-CPU free.
            assert_eq!(self.run(t, Op::Free { cache: o.cache, addr, len: o.len, tag: o.tag }), Reply::Freed);
        } else if choice < 97 {
            let c = self.handles[rng.index(self.handles.len())];
            let Reply::Shrunk(r) = self.run(t, Op::Shrink { cache: c }) else { unreachable!() };
            let live = self.live_in(c);
            assert_eq!(r, i32::from(live != 0), "SL-13: shrink with {live} live objects");
            let info = self.m.cache_info(c);
            assert_eq!(info.active_objs, live, "after a shrink no object is parked");
            assert!(info.slabs <= live, "every empty slab was freed");
        } else {
            let i = rng.index(self.handles.len());
            let c = self.handles[i];
            let refs = self.handles.iter().filter(|&&h| h == c).count();
            if refs == 1 && self.live_in(c) > 0 {
                return; // Destroy with live objects is SL-12's rules test; it leaks on purpose.
            }
            assert_eq!(self.run(t, Op::Destroy { cache: c }), Reply::Destroyed(Ok(())));
            self.handles.swap_remove(i);
            if refs > 1 {
                assert_eq!(
                    self.m.cache(c).unwrap().refcount(),
                    refs as isize - 1,
                    "SL-6: an alias only drops a reference"
                );
            }
        }
    }

    fn check(&self, seed: u64, step: usize) {
        let mut end = 0;
        for (&addr, o) in &self.live {
            assert!(addr >= end, "seed {seed:#x} step {step}: object {addr:#x} overlaps the previous one");
            end = addr + o.len;
            let mut buf = vec![0; o.len];
            // SAFETY: The test's own allocation, used by nothing else meanwhile.
            unsafe { self.m.read_bytes(nn(addr), &mut buf) }.expect("live object in allocated pages");
            assert!(buf.iter().all(|&b| b == o.tag), "seed {seed:#x} step {step}: object {addr:#x} was overwritten");
        }
        let mut seen = Vec::new();
        for &c in &self.handles {
            if seen.contains(&c) {
                continue;
            }
            seen.push(c);
            let info = self.m.cache_info(c);
            let live = self.live_in(c);
            assert_eq!(self.m.validate_slab_cache(c), Ok(info.slabs), "seed {seed:#x} step {step}");
            assert!(
                live <= info.active_objs && info.active_objs <= live + MAX_PARKED,
                "seed {seed:#x} step {step}: {} live, {info:?}",
                live
            );
            assert!(
                info.active_objs <= info.num_objs
                    && info.num_objs <= info.slabs * self.m.cache(c).unwrap().objects_per_slab()
            );
        }
    }
}

#[test]
fn slab_model_two_threads_cross_frees() {
    for seed in SEEDS {
        let m = crate::machine(Profile::X86_64, 64, 4, false);
        let free0 = m.total_free();
        let (mut to, mut from, mut workers) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..2 {
            let (op_tx, op_rx) = channel();
            let (reply_tx, reply_rx) = channel();
            let wm = m.clone();
            workers.push(thread::spawn(move || worker(wm, op_rx, reply_tx)));
            to.push(op_tx);
            from.push(reply_rx);
        }
        let mut model = Model { m: m.clone(), to, from, live: BTreeMap::new(), handles: Vec::new(), names: 0 };
        let mut rng = Rng(seed);
        for step in 0..STEPS {
            model.step(&mut rng, step);
            model.check(seed, step);
        }
        // Free everything (alternating threads), then drop every handle.
        let objs: Vec<(usize, Obj)> = model.live.iter().map(|(&a, &o)| (a, o)).collect();
        for (i, (addr, o)) in objs.into_iter().enumerate() {
            model.live.remove(&addr);
            let op = Op::Free { cache: o.cache, addr, len: o.len, tag: o.tag };
            assert_eq!(model.run(i % 2, op), Reply::Freed);
        }
        while let Some(c) = model.handles.pop() {
            assert_eq!(model.run(0, Op::Destroy { cache: c }), Reply::Destroyed(Ok(())), "seed {seed:#x}");
        }
        for tx in &model.to {
            tx.send(Op::Exit).unwrap();
        }
        for w in workers {
            w.join().expect("worker");
        }
        // The kmalloc caches stay; shrinking them gives their slabs back.
        m.for_each_cache(|c| assert!(m.cache(c).unwrap().name().contains("kmalloc"), "only kmalloc caches are left"));
        let mut kmalloc = Vec::new();
        m.for_each_cache(|c| kmalloc.push(c));
        for c in kmalloc {
            assert_eq!(m.kmem_cache_shrink(c), 0, "seed {seed:#x}: {} still has slabs", m.cache(c).unwrap().name());
        }
        assert_eq!(m.total_free() + m.slab_pages().1, free0, "seed {seed:#x}: every slab page back");
    }
}
