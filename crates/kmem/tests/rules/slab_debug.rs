//! Slab debugging (SEMANTICS §3.8, SL-15): `slub_kunit`'s TST-1..9 with their report counts,
//! the fill bytes, the exact report lines, repairs, tracking, consistency checks on alloc and
//! free, `slab_debug=` specs and `init_on_alloc`/`init_on_free` on debug caches.
//!
//! As in `slub_kunit`, test caches carry `SLAB_NO_USER_FLAGS` and every expectation is a delta
//! of `m.slabs().errors()` (each report and each `FIX` line counts one).

use std::ptr::NonNull;
use std::time::Duration;

use kmem::gfp::{__GFP_ZERO, GFP_KERNEL};
use kmem::slab::debug::{POISON_END, POISON_FREE, POISON_INUSE, SLUB_RED_ACTIVE, SLUB_RED_INACTIVE};
use kmem::slab::flags::{
    SLAB_CONSISTENCY_CHECKS, SLAB_KMALLOC, SLAB_NO_MERGE, SLAB_NO_USER_FLAGS, SLAB_POISON, SLAB_RED_ZONE,
    SLAB_STORE_USER, SLAB_TRACE, SlabFlags,
};
use kmem::slab::{CacheArgs, CacheRef};
use kmem::{Machine, Profile};

use crate::{builder, count_log, log_lines};

const FZPU: SlabFlags = SLAB_CONSISTENCY_CHECKS.union(SLAB_RED_ZONE).union(SLAB_POISON).union(SLAB_STORE_USER);

fn machine() -> Machine {
    builder(Profile::I386, 64).build().expect("build machine")
}

/// A test cache as `slub_kunit` makes them: `slab_debug=` does not apply.
fn cache(m: &Machine, name: &str, size: usize, flags: SlabFlags) -> CacheRef {
    m.kmem_cache_create(name, size, &CacheArgs::default(), flags | SLAB_NO_USER_FLAGS).expect("create cache")
}

/// Reports `f` caused.
fn errors(m: &Machine, f: impl FnOnce()) -> usize {
    let before = m.slabs().errors();
    f();
    m.slabs().errors() - before
}

/// Reports one `validate_slab_cache` makes.
fn validate(m: &Machine, c: CacheRef) -> usize {
    errors(m, || {
        m.validate_slab_cache(c).expect("lists and counters consistent");
    })
}

fn peek(p: NonNull<u8>, off: isize) -> u8 {
    // SAFETY: Tests read bytes of an object's slot (red zones and metadata included), which
    // lie in slab pages of the test's machine.
    unsafe { p.as_ptr().offset(off).read() }
}

fn poke(p: NonNull<u8>, off: isize, val: u8) {
    // SAFETY: As in `peek`; the machine's memory is plain memory.
    unsafe { p.as_ptr().offset(off).write(val) }
}

fn bytes(p: NonNull<u8>, range: std::ops::Range<isize>) -> Vec<u8> {
    range.map(|i| peek(p, i)).collect()
}

fn free(m: &Machine, c: CacheRef, p: NonNull<u8>) {
    // SAFETY: `p` came from `c` and the test does not use it afterwards (unless it says why).
    unsafe { m.kmem_cache_free(c, p.as_ptr()) }
}

fn kfree(m: &Machine, p: NonNull<u8>) {
    // SAFETY: As in `free`.
    unsafe { m.kfree(p.as_ptr()) }
}

fn destroy(m: &Machine, c: CacheRef) {
    // SAFETY: The test never uses `c` again.
    unsafe { m.kmem_cache_destroy(c) }.expect("cache empty");
}

/// The start of the order-0 slab holding `p`.
fn slab_base(p: NonNull<u8>) -> usize {
    p.as_ptr() as usize & !4095
}

#[test]
fn tst1_clobber_zone() {
    let m = machine();
    let c = cache(&m, "TestSlub_RZ_alloc", 64, SLAB_RED_ZONE);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    poke(p, 64, 0x12);
    assert_eq!(validate(&m, c), 2);
    assert_eq!(peek(p, 64), SLUB_RED_ACTIVE, "restored");
    assert_eq!(validate(&m, c), 0, "nothing left to report");
    assert_eq!(errors(&m, || free(&m, c, p)), 0);
    destroy(&m, c);
}

#[test]
fn tst2_next_pointer() {
    let m = machine();
    let c = cache(&m, "TestSlub_next_ptr_free", 64, SLAB_POISON);
    let objects = m.cache(c).unwrap().objects_per_slab();
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    free(&m, c, p);
    let off = m.cache(c).unwrap().layout().offset as isize;
    let saved = bytes(p, off..off + 8);
    poke(p, off, !peek(p, off));
    // The corrupted free chain, the wrong count of objects in use, and its fix.
    assert_eq!(validate(&m, c), 3);
    assert_eq!(count_log(&m, "BUG TestSlub_next_ptr_free (Not tainted): Freechain corrupt"), 1);
    let counted = format!("Wrong object count. Counter is 0 but counted were {}", objects - 1);
    assert_eq!(count_log(&m, &counted), 1, "{:#?}", log_lines(&m));
    // Repairing the pointer leaves the count wrong the other way: report and fix.
    for (i, b) in saved.into_iter().enumerate() {
        poke(p, off + i as isize, b);
    }
    assert_eq!(validate(&m, c), 2);
    let recounted = format!("Wrong object count. Counter is {} but counted were 0", objects - 1);
    assert_eq!(count_log(&m, &recounted), 1);
    assert_eq!(count_log(&m, "FIX TestSlub_next_ptr_free: Object count adjusted"), 2);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn tst3_first_word() {
    let m = machine();
    let c = cache(&m, "TestSlub_1th_word_free", 64, SLAB_POISON);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    free(&m, c, p);
    poke(p, 0, 0x78);
    assert_eq!(validate(&m, c), 2);
    assert_eq!(peek(p, 0), POISON_FREE);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn tst4_clobber_50th_byte() {
    let m = machine();
    let c = cache(&m, "TestSlub_50th_word_free", 64, SLAB_POISON);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    free(&m, c, p);
    poke(p, 50, 0x9a);
    assert_eq!(validate(&m, c), 2);
    assert_eq!(count_log(&m, "[Poison overwritten]"), 1);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn tst5_clobber_redzone_free() {
    let m = machine();
    let c = cache(&m, "TestSlub_RZ_free", 64, SLAB_RED_ZONE);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    free(&m, c, p);
    poke(p, 64, 0xab);
    assert_eq!(validate(&m, c), 2);
    assert_eq!(peek(p, 64), SLUB_RED_INACTIVE);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn tst6_kmalloc_redzone_access() {
    let m = machine();
    let c = cache(&m, "TestSlub_RZ_kmalloc", 32, SLAB_KMALLOC | SLAB_STORE_USER | SLAB_RED_ZONE);
    let p = m.kmalloc_trace(c, GFP_KERNEL, 18).unwrap();
    assert_eq!(bytes(p, 18..40), vec![SLUB_RED_ACTIVE; 22], "request to object end, then right red zone");
    poke(p, 18, 0xab);
    poke(p, 19, 0xab);
    assert_eq!(validate(&m, c), 2);
    let at = p.as_ptr() as usize + 18;
    let line = format!(
        "[kmalloc Redzone overwritten] 0x{at:x}-0x{:x} @offset={}. First byte 0xab instead of 0xcc",
        at + 1,
        at - slab_base(p)
    );
    assert_eq!(count_log(&m, &line), 1, "{:#?}", log_lines(&m));
    let fix = format!("FIX TestSlub_RZ_kmalloc: Restoring kmalloc Redzone 0x{at:x}-0x{:x}=0xcc", at + 1);
    assert_eq!(count_log(&m, &fix), 1);
    assert_eq!(validate(&m, c), 0);
    assert_eq!(errors(&m, || kfree(&m, p)), 0);
    destroy(&m, c);
}

#[test]
fn tst7_kfree_rcu_then_destroy() {
    let m = machine();
    let n = errors(&m, || {
        let c = cache(&m, "TestSlub_kfree_rcu", 48, SLAB_NO_MERGE);
        let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        // SAFETY: `p` is not used again.
        unsafe { m.kfree_rcu(p.as_ptr()) };
        destroy(&m, c);
    });
    assert_eq!(n, 0, "destroy waits for pending kfree_rcu");
}

#[test]
fn tst7_kfree_rcu_wq_destroy() {
    let m = machine();
    let before = m.slabs().errors();
    let worker = m.clone();
    std::thread::spawn(move || {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for i in 0..10 {
            let c = cache(&worker, &format!("TestSlub_kfree_rcu_wq_destroy-{i}"), 48, SLAB_NO_MERGE);
            let p = worker.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
            // SAFETY: `p` is not used again.
            unsafe { worker.kfree_rcu(p.as_ptr()) };
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            std::thread::sleep(Duration::from_micros(seed % 500));
            destroy(&worker, c);
        }
    })
    .join()
    .unwrap();
    assert_eq!(m.slabs().errors() - before, 0);
}

#[test]
fn tst8_leak_destroy() {
    let m = machine();
    let c = cache(&m, "TestSlub_leak_destroy", 64, SLAB_KMALLOC);
    m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // SAFETY: The cache is not used again.
    let n = errors(&m, || assert!(unsafe { m.kmem_cache_destroy(c) }.is_err()));
    assert_eq!(n, 2);
}

#[test]
fn tst9_krealloc_redzone_zeroing() {
    let m = machine();
    let c = cache(&m, "TestSlub_krealloc", 64, SLAB_KMALLOC | SLAB_STORE_USER | SLAB_RED_ZONE);
    let p = m.kmalloc_trace(c, GFP_KERNEL, 48).unwrap();
    for i in 0..48 {
        poke(p, i, 0xff);
    }
    // SAFETY: `p` is ours; the same pointer comes back while the object holds the request.
    let p2 = unsafe { m.krealloc(p.as_ptr(), 40, GFP_KERNEL | __GFP_ZERO) }.unwrap();
    assert_eq!(p2, p, "shrinks in place");
    assert_eq!(bytes(p, 40..64), vec![SLUB_RED_ACTIVE; 24]);
    // SAFETY: As above.
    let p3 = unsafe { m.krealloc(p.as_ptr(), 56, GFP_KERNEL | __GFP_ZERO) }.unwrap();
    assert_eq!(p3, p, "grows within the 64-byte object");
    assert_eq!(bytes(p, 40..56), vec![0; 16]);
    assert_eq!(bytes(p, 56..64), vec![SLUB_RED_ACTIVE; 8]);
    assert_eq!(validate(&m, c), 0);
    for i in 0..56 {
        poke(p, i, 0xff);
    }
    // SAFETY: As above; `p` is freed by the move.
    let q = unsafe { m.krealloc(p.as_ptr(), 112, GFP_KERNEL | __GFP_ZERO) }.unwrap();
    assert_ne!(q, p, "a bigger object from kmalloc-128");
    assert_eq!(bytes(q, 0..56), vec![0xff; 56]);
    assert_eq!(bytes(q, 56..112), vec![0; 56]);
    kfree(&m, q);
    destroy(&m, c);
}

#[test]
fn sl15_fill_bytes_of_free_and_allocated_objects() {
    let m = machine();
    let c = cache(&m, "fills", 60, FZPU);
    let l = *m.cache(c).unwrap().layout();
    let (rz, inuse, pad, end) = (l.red_left_pad as isize, l.inuse as isize, l.pad_offset(), l.size_from_object());
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    // Allocated: red zones 0xcc, the object poisoned (init_object poisons in both states).
    assert_eq!(bytes(p, -rz..0), vec![SLUB_RED_ACTIVE; rz as usize]);
    assert_eq!(bytes(p, 60..inuse), vec![SLUB_RED_ACTIVE; inuse as usize - 60]);
    assert_eq!(bytes(p, 0..59), vec![POISON_FREE; 59]);
    assert_eq!(peek(p, 59), POISON_END);
    assert_eq!(bytes(p, pad as isize..end as isize), vec![POISON_INUSE; end - pad], "padding");
    free(&m, c, p);
    assert_eq!(bytes(p, -rz..0), vec![SLUB_RED_INACTIVE; rz as usize]);
    assert_eq!(bytes(p, 60..inuse), vec![SLUB_RED_INACTIVE; inuse as usize - 60]);
    assert_eq!(bytes(p, 0..59), vec![POISON_FREE; 59]);
    assert_eq!(peek(p, 59), POISON_END);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn sl15_report_lines_and_tracking() {
    let m = machine();
    let c = cache(&m, "TestSlub_lines", 64, SLAB_RED_ZONE | SLAB_STORE_USER);
    let (p, line) = (m.kmem_cache_alloc(c, GFP_KERNEL).unwrap(), line!());
    poke(p, 64, 0x12);
    assert_eq!(validate(&m, c), 2);
    let lines = log_lines(&m);
    let at = p.as_ptr() as usize;
    let base = slab_base(p);
    let find = |prefix: &str| {
        lines.iter().position(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix}\n{lines:#?}"))
    };
    let report = find("[Right Redzone overwritten]");
    assert_eq!(
        lines[report],
        format!(
            "[Right Redzone overwritten] 0x{:x}-0x{:x} @offset={}. First byte 0x12 instead of 0xcc",
            at + 64,
            at + 64,
            at + 64 - base
        )
    );
    assert_eq!(lines[report + 1], "=".repeat(77));
    assert_eq!(lines[report + 2], "BUG TestSlub_lines (Not tainted): Object corrupt");
    assert_eq!(lines[report + 3], "-".repeat(77));
    let alloc = find("Allocated in ");
    assert!(lines[alloc].starts_with(&format!("Allocated in {}:{line}:", file!())), "{}", lines[alloc]);
    assert!(lines[alloc].contains(" age=") && lines[alloc].contains(" cpu=") && lines[alloc].contains(" pid="));
    assert!(!lines.iter().any(|l| l.starts_with("Freed in ")), "never freed: an empty track prints nothing");
    let slab = find("Slab 0x");
    assert!(lines[slab].contains(" used=1 fp=0x") && lines[slab].contains(" flags=0x"), "{}", lines[slab]);
    let object = find("Object 0x");
    assert!(lines[object].starts_with(&format!("Object 0x{at:x} @offset={} fp=0x", at - base)), "{}", lines[object]);
    let left = find("Redzone  ");
    assert_eq!(
        lines[left],
        format!("Redzone  {:016x}: cc cc cc cc cc cc cc cc{}{}", at - 8, " ".repeat(26), "........")
    );
    let dump = find("Object   ");
    assert!(lines[dump].starts_with(&format!("Object   {at:016x}: ")));
    let right = lines.iter().rposition(|l| l.starts_with("Redzone  ")).unwrap();
    assert!(
        lines[right].starts_with(&format!("Redzone  {:016x}: 12 cc cc cc cc cc cc cc", at + 64)),
        "{}",
        lines[right]
    );
    assert!(lines.iter().any(|l| l.starts_with("Padding  ")));
    let fix = format!("FIX TestSlub_lines: Restoring Right Redzone 0x{:x}-0x{:x}=0xcc", at + 64, at + 64);
    assert!(lines.iter().position(|l| *l == fix).unwrap() > report);
    free(&m, c, p);
    destroy(&m, c);
}

#[test]
fn more_byte_checks_left_redzone_alignment_end_poison_object_and_slab_padding() {
    let m = machine();
    let z = cache(&m, "left", 64, SLAB_RED_ZONE);
    let p = m.kmem_cache_alloc(z, GFP_KERNEL).unwrap();
    poke(p, -1, 0);
    assert_eq!(validate(&m, z), 2);
    assert_eq!(count_log(&m, "[Left Redzone overwritten]"), 1);
    free(&m, z, p);
    destroy(&m, z);

    let a = cache(&m, "align", 60, SLAB_POISON);
    let p = m.kmem_cache_alloc(a, GFP_KERNEL).unwrap();
    poke(p, 62, 1);
    assert_eq!(validate(&m, a), 2);
    assert_eq!(count_log(&m, "[Alignment padding overwritten]"), 1);
    assert_eq!(count_log(&m, "First byte 0x1 instead of 0x5a"), 1);
    free(&m, a, p);
    poke(p, 59, 0);
    assert_eq!(validate(&m, a), 2);
    assert_eq!(count_log(&m, "[End Poison overwritten]"), 1);
    // The slab's tail after the last slot: 4096 % 72 = 64 bytes of 0x5a.
    poke(p, (slab_base(p) + 4095 - p.as_ptr() as usize) as isize, 7);
    assert_eq!(validate(&m, a), 1, "the Restoring line; the Padding header is not counted, as in the kernel");
    assert_eq!(count_log(&m, "BUG align (Not tainted): Padding overwritten. 0x"), 1);
    assert_eq!(count_log(&m, "FIX align: Restoring slab padding 0x"), 1);
    assert_eq!(validate(&m, a), 0);
    destroy(&m, a);

    let f = cache(&m, "pad", 64, FZPU);
    let p = m.kmem_cache_alloc(f, GFP_KERNEL).unwrap();
    let pad = m.cache(f).unwrap().layout().pad_offset() as isize;
    poke(p, pad, 0);
    assert_eq!(validate(&m, f), 2);
    assert_eq!(count_log(&m, "[Object padding overwritten]"), 1);
    free(&m, f, p);
    destroy(&m, f);
}

#[test]
fn freepointer_corrupt_in_an_allocated_object_is_cut() {
    let m = machine();
    let c = cache(&m, "fpc", 64, SLAB_POISON);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let off = m.cache(c).unwrap().layout().offset as isize;
    poke(p, off + 3, !peek(p, off + 3));
    assert_eq!(validate(&m, c), 1);
    assert_eq!(count_log(&m, "BUG fpc (Not tainted): Freepointer corrupt"), 1);
    assert_eq!(validate(&m, c), 0);
    free(&m, c, p);
    destroy(&m, c);
}

#[test]
fn double_free_on_a_debug_cache_is_refused_and_the_object_stays_usable() {
    for flags in [FZPU, SLAB_POISON] {
        let m = machine();
        let c = cache(&m, "dfree", 64, flags);
        // Another object keeps the slab in use: with none, the report would be `Slab has 0
        // allocated objects but 1 are to be freed` (checked first, as in the kernel).
        let keep = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        free(&m, c, p);
        assert_eq!(errors(&m, || free(&m, c, p)), 2, "{flags}: the report and its FIX");
        assert_eq!(count_log(&m, "BUG dfree (Not tainted): Object already free"), 1);
        assert_eq!(count_log(&m, &format!("FIX dfree: Object at 0x{:x} not freed", p.as_ptr() as usize)), 1);
        assert_eq!(validate(&m, c), 0, "the freelist is intact");
        let q = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        assert_eq!(q, p, "the free object comes back once");
        let r = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
        assert_ne!(r, p);
        poke(q, 0, 1);
        free(&m, c, q);
        free(&m, c, r);
        free(&m, c, keep);
        assert_eq!(validate(&m, c), 0);
        destroy(&m, c);
    }
    let m = machine();
    let c = cache(&m, "lone", 64, FZPU);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    free(&m, c, p);
    assert_eq!(errors(&m, || free(&m, c, p)), 2);
    assert_eq!(count_log(&m, "BUG lone (Not tainted): Slab has 0 allocated objects but 1 are to be freed"), 1);
    assert_eq!(validate(&m, c), 0);
    destroy(&m, c);
}

#[test]
fn consistency_checks_on_alloc_and_free() {
    let m = machine();
    let c = cache(&m, "fz", 64, SLAB_CONSISTENCY_CHECKS | SLAB_RED_ZONE);
    // A damaged allocated object is not freed; its bytes are restored.
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    poke(p, 64, 0x55);
    assert_eq!(errors(&m, || free(&m, c, p)), 3, "report, Restoring, not freed");
    assert_eq!(count_log(&m, &format!("FIX fz: Object at 0x{:x} not freed", p.as_ptr() as usize)), 1);
    let n = validate(&m, c);
    assert_eq!(n, 0, "still allocated, and intact again: {:#?}", log_lines(&m));
    assert_eq!(errors(&m, || free(&m, c, p)), 0);
    // A damaged free object is not handed out: its slab is taken out of use.
    poke(p, 64, 0x55);
    let mut q = None;
    assert_eq!(errors(&m, || q = Some(m.kmem_cache_alloc(c, GFP_KERNEL).unwrap())), 3);
    assert_eq!(count_log(&m, "FIX fz: Marking all objects used"), 1);
    let q = q.unwrap();
    assert_ne!(slab_base(q), slab_base(p), "from a new slab");
    assert_eq!(validate(&m, c), 0, "the slab taken out of use is not validated");
    free(&m, c, q);
    // Frees into it are refused: its objects were never handed out.
    assert_eq!(errors(&m, || free(&m, c, p)), 2);
    assert_eq!(count_log(&m, "BUG fz (Not tainted): Slab disabled since SLUB metadata consistency check failed"), 1);
    // It keeps the cache alive: destroy reports it and leaks the cache.
    // SAFETY: The cache is not used again.
    assert!(unsafe { m.kmem_cache_destroy(c) }.is_err());
}

#[test]
fn trace_lines() {
    let m = machine();
    let c = cache(&m, "traced", 32, SLAB_TRACE);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let at = p.as_ptr() as usize;
    assert_eq!(count_log(&m, &format!("TRACE traced alloc 0x{at:x} inuse=1 fp=0x")), 1, "{:#?}", log_lines(&m));
    free(&m, c, p);
    assert_eq!(count_log(&m, &format!("TRACE traced free 0x{at:x} inuse=1 fp=0x")), 1);
    assert_eq!(count_log(&m, &format!("Object {at:016x}: ")), 1, "the object's 32 bytes");
    assert_eq!(count_log(&m, &format!("Object {:016x}: ", at + 16)), 1);
    destroy(&m, c);
}

#[test]
fn slub_debug_spec_applies_to_the_named_caches_only() {
    let m = builder(Profile::I386, 64).slub_debug("ZU,dbg_*,kmalloc-64").build().unwrap();
    let named = m.kmem_cache_create("dbg_one", 64, &CacheArgs::default(), SlabFlags::empty()).unwrap();
    let other = m.kmem_cache_create("other", 72, &CacheArgs::default(), SLAB_NO_MERGE).unwrap();
    let opted_out = m.kmem_cache_create("dbg_two", 80, &CacheArgs::default(), SLAB_NO_USER_FLAGS).unwrap();
    assert!(m.cache(named).unwrap().flags().contains(SLAB_RED_ZONE | SLAB_STORE_USER));
    assert!(!m.cache(other).unwrap().flags().is_debug());
    assert!(!m.cache(opted_out).unwrap().flags().is_debug(), "SLAB_NO_USER_FLAGS ignores slab_debug=");
    assert!(!m.cache(m.kmalloc_cache(128, GFP_KERNEL).unwrap()).unwrap().flags().is_debug());
    // kmalloc-64 is a kmalloc debug cache: the request is recorded and red-zoned behind.
    let k = m.kmalloc_cache(64, GFP_KERNEL).unwrap();
    assert!(m.cache(k).unwrap().flags().contains(SLAB_KMALLOC | SLAB_RED_ZONE | SLAB_STORE_USER));
    let p = m.kzalloc(40, GFP_KERNEL).unwrap();
    assert_eq!(bytes(p, 0..40), vec![0; 40], "kzalloc zeroes the request");
    assert_eq!(bytes(p, 40..64), vec![SLUB_RED_ACTIVE; 24], "and red-zones the rest");
    poke(p, 41, 0);
    assert_eq!(validate(&m, k), 2);
    assert_eq!(count_log(&m, "[kmalloc Redzone overwritten]"), 1);
    // After ksize the whole object is the caller's: no kmalloc red zone any more (§4.2).
    // SAFETY: The test's own object (or none: reported).
    assert_eq!(unsafe { m.ksize(p.as_ptr()) }, 64, "slab_ksize: object_size with a red zone");
    for i in 40..64 {
        poke(p, i, 0x33);
    }
    assert_eq!(validate(&m, k), 0);
    assert_eq!(errors(&m, || kfree(&m, p)), 0);
    destroy(&m, named);
    destroy(&m, other);
    destroy(&m, opted_out);
}

#[test]
fn init_on_alloc_and_init_on_free_on_debug_caches() {
    let m =
        builder(Profile::I386, 64).init_on_alloc(true).init_on_free(true).slub_debug("ZU,kmalloc-64").build().unwrap();
    // Poisoning takes precedence: no zeroing either way.
    let pc = cache(&m, "poisoned", 64, SLAB_POISON);
    let p = m.kmem_cache_alloc(pc, GFP_KERNEL).unwrap();
    assert_eq!(bytes(p, 0..63), vec![POISON_FREE; 63]);
    free(&m, pc, p);
    assert_eq!(bytes(p, 0..63), vec![POISON_FREE; 63]);
    let z = m.kmem_cache_zalloc(pc, GFP_KERNEL).unwrap();
    assert_eq!(bytes(z, 0..64), vec![0; 64], "explicit __GFP_ZERO still zeroes");
    free(&m, pc, z);
    // A red-zone cache is zeroed on alloc and on free; its red zones keep their fills.
    let zc = cache(&m, "zoned", 64, SLAB_RED_ZONE);
    let q = m.kmem_cache_alloc(zc, GFP_KERNEL).unwrap();
    assert_eq!(bytes(q, 0..64), vec![0; 64]);
    poke(q, 0, 0x77);
    free(&m, zc, q);
    let fp = m.cache(zc).unwrap().layout().offset as isize;
    assert_eq!(bytes(q, 0..fp), vec![0; fp as usize], "wiped up to the free pointer");
    assert_eq!(bytes(q, 64..72), vec![SLUB_RED_INACTIVE; 8]);
    // A kmalloc debug cache zeroes only the request.
    let k = m.kmalloc(40, GFP_KERNEL).unwrap();
    assert_eq!(bytes(k, 0..40), vec![0; 40]);
    assert_eq!(bytes(k, 40..64), vec![SLUB_RED_ACTIVE; 24]);
    kfree(&m, k);
    assert_eq!(validate(&m, zc), 0);
    assert_eq!(validate(&m, pc), 0);
    destroy(&m, pc);
    destroy(&m, zc);
}

/// SL-15/SL-16: debug reports are not rate-limited (the kernel's `slab_bug`, `slab_err`,
/// `object_err` and `slab_fix` print every time): every double free of a loop is in the log.
#[test]
fn sl16_every_debug_report_is_printed() {
    let m = machine();
    let c = cache(&m, "dfree8", 64, FZPU);
    let keep = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    let ps: Vec<_> = (0..8).map(|_| m.kmem_cache_alloc(c, GFP_KERNEL).unwrap()).collect();
    for &p in &ps {
        free(&m, c, p);
    }
    let n = errors(&m, || {
        for &p in &ps {
            free(&m, c, p);
        }
    });
    assert_eq!(n, 16, "counted: 8 reports + 8 FIX lines");
    for &p in &ps {
        let fix = format!("FIX dfree8: Object at 0x{:x} not freed", p.as_ptr() as usize);
        assert_eq!(count_log(&m, &fix), 1, "missing from the log: {fix}");
    }
    assert_eq!(count_log(&m, "BUG dfree8 (Not tainted): Object already free"), 8);
    free(&m, c, keep);
    destroy(&m, c);
}

/// KM-9 with and without slub_debug: `krealloc` of an object just `kfree`d is refused and
/// reported (`Object 0x… already free`, nothing written); with debugging, kmem writing into
/// the free object would then show as `Poison overwritten` at the next allocation.
#[test]
fn krealloc_of_a_freed_object_is_refused_with_and_without_slub_debug() {
    for spec in [None, Some("FZPU,kmalloc-64")] {
        let mut b = builder(Profile::I386, 64);
        if let Some(s) = spec {
            b = b.slub_debug(s);
        }
        let m = b.build().unwrap();
        let keep = m.kmalloc(40, GFP_KERNEL).unwrap();
        let p = m.kmalloc(40, GFP_KERNEL).unwrap();
        kfree(&m, p);
        // SAFETY: Deliberate misuse: `p` was freed just above.
        let r = unsafe { m.krealloc(p.as_ptr(), 48, GFP_KERNEL) };
        assert!(r.is_err(), "{spec:?}: krealloc of a freed object returned {r:?}");
        assert_eq!(count_log(&m, &format!("Object 0x{:x} already free", p.as_ptr() as usize)), 1, "{spec:?}");
        // The next allocation finds nothing damaged (no `Poison overwritten` caused by kmem).
        let before = m.slabs().errors();
        let q = m.kmalloc(40, GFP_KERNEL).unwrap();
        assert_eq!(m.slabs().errors() - before, 0, "{spec:?}: {:#?}", log_lines(&m));
        kfree(&m, q);
        kfree(&m, keep);
    }
}

/// KM-12: `kfree_sensitive` of an object already free (a debug cache's) is refused without
/// zeroing it: the free object keeps its poison.
#[test]
fn kfree_sensitive_of_a_freed_debug_object_writes_nothing() {
    let m = builder(Profile::I386, 64).slub_debug("FZPU,kmalloc-64").build().unwrap();
    let keep = m.kmalloc(40, GFP_KERNEL).unwrap();
    let p = m.kmalloc(40, GFP_KERNEL).unwrap();
    kfree(&m, p);
    // SAFETY: Deliberate misuse.
    unsafe { m.kfree_sensitive(p.as_ptr()) };
    assert_eq!(bytes(p, 0..63), vec![POISON_FREE; 63], "kfree_sensitive wiped a free object");
    kfree(&m, keep);
}

/// SL-12 / §3.7: a `slab_bug` header, then `Object 0x%p @offset=%tu` and tracking for each
/// live object, then the slab's summary (`%pGp`: an order-0 slab is no compound `head`) and a
/// WARN, as `list_slab_objects` and `__slab_err` print them.
#[test]
fn sl12_destroy_report_lists_objects_then_the_slab_with_its_flags() {
    let m = machine();
    let c = cache(&m, "leaky", 64, SLAB_STORE_USER);
    let p = m.kmem_cache_alloc(c, GFP_KERNEL).unwrap();
    assert_eq!(m.cache(c).unwrap().order(), 0);
    // SAFETY: The cache is not used again.
    assert!(unsafe { m.kmem_cache_destroy(c) }.is_err());
    let lines = log_lines(&m);
    let slab = lines.iter().position(|l| l.starts_with("Slab 0x")).expect("slab line");
    let obj =
        lines.iter().position(|l| l.starts_with(&format!("Object 0x{:x} @offset=", p.as_ptr() as usize))).unwrap();
    assert!(lines[slab].ends_with("flags=0x8(slab)"), "{}", lines[slab]);
    assert!(slab > obj, "slab info comes after the objects: {lines:#?}");
}
