//! SL-10 with `init_on_alloc` (SEMANTICS §3.7 "Zeroing"): which allocations of a cache are
//! zeroed, the kernel's `slab_want_init_on_alloc(flags, s)` (mm/slab.h, mm/slub.c). The
//! zeroing on each path, under both settings, is `slab_init.rs`.
//!
//! | `init_on_alloc` | cache                              | zeroed                  |
//! |-----------------|------------------------------------|-------------------------|
//! | off             | any                                | iff `__GFP_ZERO`        |
//! | on              | plain                              | always                  |
//! | on              | `SLAB_TYPESAFE_BY_RCU`/`SLAB_POISON` | iff `__GFP_ZERO`      |
//! | on              | with a constructor                 | never, not even with `__GFP_ZERO` |
//!
//! Each case dirties an object, frees it and allocates it again (LIFO reuse, SL-8), then looks
//! at its bytes.

use std::ptr::NonNull;

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL, Gfp};
use kmem::slab::flags::{SLAB_NO_MERGE, SLAB_POISON, SLAB_TYPESAFE_BY_RCU, SlabFlags};
use kmem::slab::{CacheArgs, ObjFn};
use kmem::{Machine, Profile};

use crate::builder;

const SIZE: usize = 64;
const DIRT: u8 = 0xa7;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Plain,
    Ctor,
    Rcu,
    Poison,
}

/// A constructor that leaves the object as it finds it (the test looks at the bytes).
fn ctor() -> ObjFn {
    unsafe fn nothing(_ctx: *const (), _obj: *mut u8) {}
    // SAFETY: Does nothing, from any thread.
    unsafe { ObjFn::new(nothing, std::ptr::null()) }
}

fn machine(init_on_alloc: bool) -> Machine {
    builder(Profile::X86_64, 64).pcp(false).init_on_alloc(init_on_alloc).build().expect("build machine")
}

/// Whether an object reallocated with `gfp` from a cache of `kind` comes back all zero.
fn zeroed(m: &Machine, kind: Kind, gfp: Gfp) -> bool {
    let (args, flags) = match kind {
        Kind::Plain => (CacheArgs::default(), SlabFlags::empty()),
        Kind::Ctor => (CacheArgs { ctor: Some(ctor()), ..CacheArgs::default() }, SlabFlags::empty()),
        Kind::Rcu => (CacheArgs::default(), SLAB_TYPESAFE_BY_RCU),
        Kind::Poison => (CacheArgs::default(), SLAB_POISON),
    };
    let c = m.kmem_cache_create("init_case", SIZE, &args, flags | SLAB_NO_MERGE).expect("create");
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).expect("alloc");
    // SAFETY: The test's own object.
    unsafe { m.write_bytes(p, &[DIRT; SIZE]) }.expect("object in allocated pages");
    // SAFETY: Allocated from `c` above, not used again.
    unsafe { m.kmem_cache_free(c, p.as_ptr()) };
    let q: NonNull<u8> = m.kmem_cache_alloc(c, gfp).expect("alloc");
    assert_eq!(q, p, "{kind:?}: LIFO reuse (SL-8)");
    let mut bytes = [0u8; SIZE];
    // SAFETY: The test's own object.
    unsafe { m.read_bytes(q, &mut bytes) }.expect("object in allocated pages");
    // SAFETY: Allocated from `c`, not used again.
    unsafe { m.kmem_cache_free(c, q.as_ptr()) };
    // SAFETY: The cache is empty and not used again.
    unsafe { m.kmem_cache_destroy(c) }.expect("destroy");
    bytes.iter().all(|&b| b == 0)
}

/// SL-10: `slab_want_init_on_alloc` for every kind of cache, with and without `__GFP_ZERO`,
/// with `init_on_alloc` off and on.
#[test]
fn sl10_slab_want_init_on_alloc_table() {
    use Kind::*;
    for init_on_alloc in [false, true] {
        let m = machine(init_on_alloc);
        for kind in [Plain, Ctor, Rcu, Poison] {
            for zero in [false, true] {
                let want = match (init_on_alloc, kind) {
                    (false, _) | (true, Rcu | Poison) => zero,
                    (true, Plain) => true,
                    (true, Ctor) => false,
                };
                let gfp = if zero { GFP_KERNEL | __GFP_ZERO } else { GFP_KERNEL };
                assert_eq!(
                    zeroed(&m, kind, gfp),
                    want,
                    "init_on_alloc={init_on_alloc} {kind:?} __GFP_ZERO={zero}: zeroed should be {want}"
                );
            }
        }
    }
}
