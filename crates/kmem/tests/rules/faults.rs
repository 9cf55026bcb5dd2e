//! Fault injection reports (`lib/fault-inject.c`'s `fail_dump`): every point prints the same
//! two lines at `KERN_NOTICE` — `FAULT_INJECTION: forcing a failure.` and
//! `name <point>, interval …, probability …, space …, times …` — and with `verbose` above 1 the
//! stack after them.

use kmem::Level;
use kmem::gfp::GFP_ATOMIC;

use crate::*;

/// `should_failslab` → `should_fail_ex(&failslab.attr, …)` → `fail_dump`: the kernel's words,
/// not a line of kmem's own naming the cache.
#[test]
fn failslab_reports_as_fail_dump_does() {
    let m = builder(Profile::X86_64, 64).failslab("1,100,0,2").build().expect("machine");
    m.log().clear();
    assert!(m.kmalloc(64, GFP_ATOMIC).is_err(), "injected");
    let records = m.log().records();
    let lines: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(lines[0], "FAULT_INJECTION: forcing a failure.", "{lines:#?}");
    assert_eq!(lines[1], "name failslab, interval 1, probability 100, space 0, times 2", "{lines:#?}");
    assert_eq!(records[0].level, Level::Notice);
    assert!(lines.contains(&"Call Trace:"), "verbose 2 (the default) dumps the stack: {lines:#?}");
    m.slabs().failslab().set_verbose(1);
    m.log().clear();
    assert!(m.kmalloc(64, GFP_ATOMIC).is_err(), "injected");
    let lines = log_lines(&m);
    assert_eq!(
        lines,
        ["FAULT_INJECTION: forcing a failure.", "name failslab, interval 1, probability 100, space 0, times 1"]
    );
}

/// `mm/failslab.c`'s knobs are `ignore-gfp-wait` and `cache-filter` (besides the common ones):
/// `fail_page_alloc`'s `min-order` and `ignore-gfp-highmem` mean nothing to it, and used to be
/// taken and ignored; they are refused, naming the variable, and `cache-filter` is taken.
#[test]
fn failslab_takes_its_own_keys_only() {
    for key in ["min-order=3", "ignore-gfp-highmem=0"] {
        let spec = format!("1,100,0,-1,{key}");
        let e = kmem::env::apply(Machine::builder(), |k| (k == "KMEM_FAILSLAB").then(|| spec.clone()))
            .expect_err("a fail_page_alloc key for failslab");
        assert_eq!(e.var, "KMEM_FAILSLAB");
        assert!(e.to_string().contains("unknown option (ignore-gfp-wait, cache-filter, verbose)"), "{e}");
        let e = builder(Profile::X86_64, 64).failslab(spec).build().expect_err("the builder too");
        assert!(e.to_string().starts_with("failslab: unknown option"), "{e}");
    }
    let m = builder(Profile::X86_64, 64).failslab("1,100,0,-1,cache-filter=1,ignore-gfp-wait=0").build().unwrap();
    assert!(m.slabs().failslab().cache_filter.load(SEQ), "cache-filter=1 taken");
    let p = m.kmalloc(64, GFP_ATOMIC).expect("no cache is marked SLAB_FAILSLAB: nothing fails");
    // SAFETY: Just allocated, unused afterwards.
    unsafe { m.kfree(p.as_ptr()) };
}
