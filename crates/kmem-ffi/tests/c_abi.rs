//! The C test suite: kernel-style C compiled with the system `gcc` against `include/` and
//! linked with libkmem (built by the `libkmem` dev-dependency into this test's `deps`
//! directory), run, and judged by its exit status; plus header-level checks (every header
//! compiles alone, the flag values equal kmem-core's, `GEP_KERNEL` does not compile, the
//! book's legacy forms do).
//!
//! `KMEM_C_TEST_WRAPPER` (e.g. `valgrind --error-exitcode=99`) runs each C program under a
//! wrapper; `.ci/valgrind-c` uses it for memcheck.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use kmem_core::gfp::{self, GFPFLAG_NAMES};
use kmem_core::slab::flags::{self as sf, SLAB_FLAG_NAMES};

mod support;

use support::{Link, build_linked, gcc as gcc_with, manifest, out_dir, run_suite_linked, run_with, show};

fn gcc(args: &[&str]) -> Output {
    gcc_with(&[], args)
}

/// Compiles `source` (written to `name.c` in the test's directory) to an object file only.
fn compile_only(name: &str, source: &str) -> Output {
    let src = out_dir().join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    gcc(&["-c", &src.display().to_string(), "-o", &src.with_extension("o").display().to_string()])
}

fn build(name: &str, link: Link) -> PathBuf {
    build_linked(name, link, &[])
}

/// Runs a C program on a fresh default machine (i386, 1 GiB sparse).
fn run(exe: &Path) -> Output {
    run_with(exe, &[])
}

fn run_suite(name: &str, link: Link) {
    run_suite_linked(name, link, &[], &[]);
}

fn run_suite_with(name: &str, link: Link, settings: &[(&str, &str)]) {
    run_suite_linked(name, link, &[], settings);
}

#[test]
fn pages() {
    run_suite("pages", Link::Shared);
}

/// `virt_to_head_page` finds a compound block's head from any address in it.
#[test]
fn head_page() {
    run_suite("head_page", Link::Shared);
}

/// `put_page` of a plain multi-page block still held elsewhere drops one reference.
#[test]
fn put_page_refs() {
    run_suite("put_page_refs", Link::Shared);
}

/// `alloc_pages_bulk` with a count of 0 and one too large to copy.
#[test]
fn pages_bulk_edges() {
    run_suite("pages_bulk_edges", Link::Shared);
}

#[test]
fn pages_with_the_static_library() {
    run_suite("pages", Link::Static);
}

#[test]
fn printk() {
    run_suite("printk", Link::Shared);
}

#[test]
fn misuse() {
    run_suite("misuse", Link::Shared);
}

#[test]
fn misuse_of_the_allocators() {
    run_suite("misuse_alloc", Link::Shared);
}

#[test]
fn bad_input_to_calls_that_take_a_live_object() {
    run_suite("live_objects", Link::Shared);
}

#[test]
fn atomic() {
    run_suite("atomic", Link::Shared);
}

#[test]
fn kmalloc() {
    run_suite("kmalloc", Link::Shared);
}

#[test]
fn slab() {
    run_suite("slab", Link::Shared);
}

#[test]
fn buckets_and_memcg_calls() {
    run_suite("buckets", Link::Shared);
}

#[test]
fn mempool() {
    run_suite("mempool", Link::Shared);
}

/// §6.1, §6.2 from C: `mempool_alloc_bulk`/`mempool_free_bulk`; run again with
/// `KMEM_FAIL_MEMPOOL_ALLOC` armed (times 1), where the program also checks that the first
/// `mempool_alloc` skipped `alloc_fn`. One test, so the executable is built once.
#[test]
fn mempool_bulk_and_fail_mempool_alloc() {
    let exe = build("mempool_bulk", Link::Shared);
    for settings in [&[][..], &[("KMEM_FAIL_MEMPOOL_ALLOC", "1,100,0,1")]] {
        let o = run_with(&exe, settings);
        assert!(o.status.success(), "mempool_bulk with {settings:?} failed:\n{}", show(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("mempool_bulk: ") && out.contains(" checks, 0 failed"), "{}", show(&o));
    }
}

/// MP-13, TST-16 from C: with mempool debugging, pools made with the kernel's helper pairs
/// poison their reserve and check their frees as the Rust API's helper pools do; custom pools
/// and mixed pairs stay custom.
#[test]
fn mempool_debugging_of_helper_pools() {
    run_suite_with("mempool_debug", Link::Shared, &[("KMEM_MEMPOOL_DEBUG", "1")]);
}

/// The same from a position-dependent executable and with the static library: the helper
/// pairs are recognised by address however C takes their addresses.
#[test]
fn mempool_debugging_of_helper_pools_without_pie_and_with_the_static_library() {
    run_suite_with("mempool_debug", Link::SharedNoPie, &[("KMEM_MEMPOOL_DEBUG", "1")]);
    run_suite_with("mempool_debug", Link::Static, &[("KMEM_MEMPOOL_DEBUG", "1")]);
}

#[test]
fn kernel_names() {
    run_suite("kernel_names", Link::Shared);
}

#[test]
fn vmalloc() {
    run_suite("vmalloc", Link::Shared);
}

/// VM-11 from C: `/proc/vmallocinfo` names the C function that made an area
/// (`make_area+0x…/0x… [vmallocinfo_caller-so]`), as the kernel's `vm->caller`; an area made
/// bypassing the macro, or by kvmalloc's fallback, names kmem's own code. (Every C area named
/// `crates/kmem-ffi/src/vmalloc.rs:…` before.)
#[test]
fn vmallocinfo_names_the_c_caller() {
    let o = run_suite_linked("vmallocinfo_caller", Link::Shared, &["-rdynamic"], &[]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(" make_area+0x") && out.contains("/0x"), "{out}");
}

/// VM-9, VM-13 from C: `vmap(..., VM_ALLOC, ...)` leaves the pages to the caller, and flags a
/// caller may not set (bit 31, the high half of the `unsigned long`) are dropped with a
/// warning instead of making the area impossible to unmap.
#[test]
fn vmap_flags() {
    run_suite("vmap_flags", Link::Shared);
}

/// SEMANTICS §5.4 from C: `vm_map_ram`/`vm_unmap_ram` (vmap blocks, a large standalone area,
/// aliasing with `page_address`, misuse reported and ignored), `vm_unmap_aliases`,
/// `vfree_atomic`.
#[test]
fn vm_map_ram() {
    run_suite("vm_map_ram", Link::Shared);
}

/// SEMANTICS §5.4 from C: `vread_iter` over `linux/uio.h`'s iterator (`iov_iter_ubuf`,
/// `iov_iter_kvec`): area bytes, zeros for guard pages, freed and `VM_IOREMAP` areas, the
/// overflow clamp, at most `iov_iter_count` bytes with the iterator advanced, and misuse
/// (source iterator, unknown type, NULL) reported.
/// RCU from C (`tests/c/rcu.c`), without kswapd: its once-a-second pass runs a grace period
/// whenever one can complete, which would free a `kfree_rcu` object at any moment between the
/// queueing and the checks that it is still allocated.
#[test]
fn rcu() {
    run_suite_with("rcu", Link::Shared, &[("KMEM_KSWAPD", "0")]);
}

/// `call_rcu` callbacks from C with kswapd on (`tests/c/rcu_softirq.c`): run without a
/// barrier after kswapd's grace period, oldest first, in softirq context (`in_softirq()`), held
/// back by an old reader.
#[test]
fn rcu_softirq() {
    run_suite("rcu_softirq", Link::Shared);
}

/// A forked child of a program using kmem (`tests/c/fork_child.c`): every kmem call in it
/// fails, with one message naming why, and the parent's objects, areas and allocator are as
/// they were (before, the child's `kfree` handed the parent's object out again, and its exit
/// drained the per-CPU lists of the parent's thread, after which the parent's page
/// allocations failed).
#[test]
fn a_forked_child_leaves_the_parents_machine_alone() {
    for link in [Link::Shared, Link::Static] {
        let exe = build("fork_child", link);
        let o = run_with(&exe, &[]);
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains(" checks, 0 failed"), "{}", show(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.matches("is a fork of the one that built the machine").count(), 1, "{err}");
    }
}

#[test]
fn vread() {
    run_suite("vread", Link::Shared);
}

/// SEMANTICS §5.4 from C: `struct vm_struct` from `get_vm_area`/`find_vm_area`,
/// `get_vm_area_size`, `remove_vm_area` (the caller `kfree`s the struct), `free_vm_area`; no
/// struct outlives its area over 200 rounds.
#[test]
fn vm_area() {
    run_suite("vm_area", Link::Shared);
}

/// VM-9 from C: `vmap(..., VM_MAP_PUT_PAGES, ...)` hands the pages and the kmalloc'd or
/// vmalloc'd array to the area, which `vfree` frees (the pages put, the array `kvfree`d) and
/// `vunmap` leaves to the caller; an array `kvfree` could not free is refused with a warning.
#[test]
fn vmap_put_pages() {
    run_suite("vmap_put_pages", Link::Shared);
}

/// VM-7 on a 32 MiB machine: a `vfree` under a spin lock completes by kswapd, and without
/// kswapd by direct reclaim. One test, so the executable is built once before both runs.
#[test]
fn vfree_atomic_completes_by_kswapd_or_direct_reclaim() {
    let exe = build("vfree_atomic", Link::Shared);
    for kswapd in ["1", "0"] {
        let o = run_with(&exe, &[("KMEM_MEM", "32M"), ("KMEM_KSWAPD", kswapd)]);
        assert!(o.status.success(), "vfree_atomic with KMEM_KSWAPD={kswapd} failed:\n{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains(" checks, 0 failed"), "{}", show(&o));
    }
}

#[test]
fn byteorder() {
    run_suite("byteorder", Link::None);
}

/// Every header compiles on its own (includes what it uses).
#[test]
fn every_header_compiles_alone() {
    let headers = support::headers();
    assert!(headers.len() >= 30, "{headers:?}");
    for h in headers {
        let src = out_dir().join(format!("alone-{}.c", h.replace('/', "-")));
        std::fs::write(&src, format!("#include <{h}>\n")).unwrap();
        let obj = src.with_extension("o");
        let o = gcc(&["-c", &src.display().to_string(), "-o", &obj.display().to_string()]);
        assert!(o.status.success(), "<{h}> alone:\n{}", show(&o));
    }
}

/// The header's flag values are kmem-core's: every name of the GFP and slab name tables, the
/// legacy names and the page geometry.
#[test]
fn constants_match_kmem_core() {
    let o = run(&build("constants", Link::None));
    assert!(o.status.success(), "{}", show(&o));
    let c: BTreeMap<String, u64> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("NAME=value");
            let v = v.strip_prefix("0x").map_or_else(|| v.parse().unwrap(), |h| u64::from_str_radix(h, 16).unwrap());
            (k.to_owned(), v)
        })
        .collect();
    let mut want: BTreeMap<&str, u64> = BTreeMap::new();
    for (flag, name) in GFPFLAG_NAMES {
        want.insert(name, flag.bits().into());
    }
    for (flag, name) in SLAB_FLAG_NAMES {
        want.insert(name, flag.bits().into());
    }
    for (name, flag) in [
        ("__GFP_WAIT", gfp::__GFP_WAIT),
        ("__GFP_REPEAT", gfp::__GFP_REPEAT),
        ("__GFP_NOTRACK", gfp::__GFP_NOTRACK),
        ("__GFP_SKIP_ZERO", gfp::__GFP_SKIP_ZERO),
        ("__GFP_SKIP_KASAN", gfp::__GFP_SKIP_KASAN),
        ("__GFP_NOLOCKDEP", gfp::__GFP_NOLOCKDEP),
        ("__GFP_NO_OBJ_EXT", gfp::__GFP_NO_OBJ_EXT),
        ("__GFP_BITS_MASK", gfp::__GFP_BITS_MASK),
        ("GFP_ZONEMASK", gfp::GFP_ZONEMASK),
    ] {
        want.insert(name, flag.bits().into());
    }
    for (name, flag) in [
        ("SLAB_DEBUG_OBJECTS", sf::SLAB_DEBUG_OBJECTS),
        ("SLAB_KASAN", sf::SLAB_KASAN),
        ("SLAB_SKIP_KFENCE", sf::SLAB_SKIP_KFENCE),
        ("SLAB_NO_OBJ_EXT", sf::SLAB_NO_OBJ_EXT),
        ("SLAB_TEMPORARY", sf::SLAB_TEMPORARY),
        ("SLAB_DESTROY_BY_RCU", sf::SLAB_DESTROY_BY_RCU),
    ] {
        want.insert(name, flag.bits().into());
    }
    use kmem_core::vmalloc as vm;
    for (name, flag) in [
        ("VM_IOREMAP", vm::VM_IOREMAP),
        ("VM_ALLOC", vm::VM_ALLOC),
        ("VM_MAP", vm::VM_MAP),
        ("VM_USERMAP", vm::VM_USERMAP),
        ("VM_DMA_COHERENT", vm::VM_DMA_COHERENT),
        ("VM_UNINITIALIZED", vm::VM_UNINITIALIZED),
        ("VM_NO_GUARD", vm::VM_NO_GUARD),
        ("VM_FLUSH_RESET_PERMS", vm::VM_FLUSH_RESET_PERMS),
        ("VM_MAP_PUT_PAGES", vm::VM_MAP_PUT_PAGES),
        ("VM_SPARSE", vm::VM_SPARSE),
    ] {
        want.insert(name, flag.into());
    }
    want.insert("SLAB_CTOR_CONSTRUCTOR", sf::SLAB_CTOR_CONSTRUCTOR);
    want.insert("SLAB_CTOR_ATOMIC", sf::SLAB_CTOR_ATOMIC);
    want.insert("__GFP_BITS_SHIFT", gfp::__GFP_BITS_SHIFT.into());
    want.insert("PAGE_SHIFT", kmem_core::PAGE_SHIFT.into());
    want.insert("PAGE_SIZE", kmem_core::PAGE_SIZE as u64);
    want.insert("MAX_PAGE_ORDER", kmem_core::MAX_PAGE_ORDER.into());
    want.insert("MAX_ORDER", kmem_core::order::MAX_ORDER.into());
    want.insert("NR_PAGE_ORDERS", kmem_core::order::NR_PAGE_ORDERS as u64);
    want.insert("PAGE_ALLOC_COSTLY_ORDER", kmem_core::order::PAGE_ALLOC_COSTLY_ORDER.into());
    want.insert("MAX_ORDER_NR_PAGES", kmem_core::order::MAX_ORDER_NR_PAGES as u64);
    want.insert("sizeof(gfp_t)", 4);
    want.insert("sizeof(slab_flags_t)", 4);
    for (name, value) in &want {
        assert_eq!(
            c.get(*name),
            Some(value),
            "{name}: header {:?}, kmem-core {value:#x}",
            c.get(*name).map(|v| format!("{v:#x}"))
        );
    }
    assert_eq!(
        c.len(),
        want.len(),
        "names only in the C program: {:?}",
        c.keys().filter(|k| !want.contains_key(k.as_str())).collect::<Vec<_>>()
    );
}

/// `GEP_KERNEL` is the book's typo: it must not compile, while the same code with
/// `GFP_KERNEL` does.
#[test]
fn gep_kernel_does_not_compile() {
    for (spelling, ok) in [("GFP_KERNEL", true), ("GEP_KERNEL", false)] {
        let o = compile_only(
            &format!("typo-{spelling}"),
            &format!("#include <linux/gfp.h>\nunsigned long f(void) {{ return __get_free_pages({spelling}, 0); }}\n"),
        );
        assert_eq!(o.status.success(), ok, "{spelling}:\n{}", show(&o));
        if !ok {
            assert!(String::from_utf8_lossy(&o.stderr).contains("'GEP_KERNEL' undeclared"), "{}", show(&o));
        }
    }
}

/// `kunmap_local` and `kunmap_atomic` take the address `kmap_local_page`/`kmap_atomic` gave,
/// never the page: as the kernel's macros (`BUILD_BUG_ON(__same_type((__addr), struct page
/// *))`, include/linux/highmem-internal.h), passing the page (the `kunmap(page)` habit) does
/// not compile. kmem's plain functions took it and, at run time, leaked the local mapping.
#[test]
fn kunmap_local_of_a_page_does_not_compile() {
    for (arg, ok) in [("addr", true), ("page", false)] {
        for f in ["kunmap_local", "kunmap_atomic"] {
            let o = compile_only(
                &format!("{f}-{arg}"),
                &format!(
                    "#include <linux/highmem.h>\nvoid f(struct page *page)\n{{\n\tvoid *addr = kmap_atomic(page);\n\n\t(void)addr;\n\t{f}({arg});\n}}\n"
                ),
            );
            assert_eq!(o.status.success(), ok, "{f}({arg}):\n{}", show(&o));
            if !ok {
                assert!(String::from_utf8_lossy(&o.stderr).contains("BUILD_BUG_ON failed"), "{}", show(&o));
            }
        }
    }
}

/// `kunmap_atomic` takes a `const void *`, as `kunmap_local` does (the kernel made both
/// `__kunmap_local` and `__kunmap_atomic` take const pointers in one change): a read-only view of
/// a page, `const char *p = kmap_atomic(page)`, is released without a cast. kmem's
/// `kunmap_atomic(void *)` made that a discarded-qualifier warning (an error under -Werror).
#[test]
fn kunmap_atomic_takes_a_const_address() {
    for (f, map) in [("kunmap_local", "kmap_local_page"), ("kunmap_atomic", "kmap_atomic")] {
        let o = compile_only(
            &format!("{f}-const"),
            &format!(
                "#include <linux/highmem.h>\nchar f(struct page *page)\n{{\n\tconst char *p = {map}(page);\n\tchar c = p[0];\n\n\t{f}(p);\n\treturn c;\n}}\n"
            ),
        );
        assert!(o.status.success(), "{f}(const char *):\n{}", show(&o));
    }
}

/// `kfree_rcu(ptr, rhf)` requires `rhf` to be a `struct rcu_head` member of `*ptr`, as the
/// kernel's macro does: another member does not compile.
#[test]
fn kfree_rcu_with_a_member_that_is_no_rcu_head_does_not_compile() {
    for (member, ok) in [("rcu", true), ("value", false)] {
        let o = compile_only(
            &format!("kfree-rcu-{member}"),
            &format!(
                "#include <linux/slab.h>\nstruct obj {{ int value; struct rcu_head rcu; }};\nvoid f(struct obj *o) {{ kfree_rcu(o, {member}); }}\n"
            ),
        );
        assert_eq!(o.status.success(), ok, "{member}:\n{}", show(&o));
        if !ok {
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("kfree_rcu: value is not a struct rcu_head member"),
                "{}",
                show(&o)
            );
        }
    }
}

/// `<linux/minmax.h>` (through `<linux/kernel.h>`): `min`, `max`, `min3`, `max3`, `umin`, `umax`,
/// `min_not_zero`, `clamp`, `min_t`, `max_t`, `clamp_t`, `clamp_val`, `MIN_T`, `MAX_T` and
/// `swap` give the kernel's values and result types, constants give constant expressions,
/// every argument is evaluated once, and the mixes the signedness check allows compile
/// without a warning.
#[test]
fn minmax_h() {
    run_suite("minmax", Link::Shared);
}

/// The kernel's minmax.h signedness check: `min(int, unsigned)` does not compile, with the
/// kernel's message, and neither do a signed value against an unsigned constant, an unsigned
/// one against a negative constant, `clamp`'s limits of the other signedness or in the wrong
/// order, nor `min3`/`max3`/`min_not_zero` of such a mix; what the kernel allows (a
/// non-negative constant, promoted small types, two unsigned widths, `umin`, `min_t`)
/// compiles under the suite's `-Werror`.
#[test]
fn min_and_max_of_mixed_signedness_do_not_compile() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("int-uint", "min(i, u)", Some("min(i, u) signedness error, fix types or consider umin() before min_t()")),
        ("max-int-uint", "max(u, i)", Some("max(u, i) signedness error, fix types or consider umax() before max_t()")),
        ("int-uconst", "min(i, 5u)", Some("min(i, 5u) signedness error")),
        ("uint-negative", "max(u, -1)", Some("max(u, -1) signedness error")),
        ("long-uint", "min(l, u)", Some("min(l, u) signedness error")),
        ("clamp-lo", "clamp(i, 0u, 10)", Some("clamp() 'lo' signedness error")),
        ("clamp-hi", "clamp(i, 0, 10u)", Some("clamp() 'hi' signedness error")),
        ("clamp-order", "clamp(i, 10, 5)", Some("clamp() low limit 10 greater than high limit 5")),
        ("min3", "min3(c, i, u)", Some("min3(c, i, u) signedness error")),
        ("max3", "max3(u, 1u, i)", Some("max3(u, 1u, i) signedness error")),
        ("min-not-zero", "min_not_zero(i, u)", Some("min_not_zero(i, u) signedness error")),
        ("uint-const", "min(u, 5) + max(5, u)", None),
        ("promoted", "min(c, i) + max(i, c)", None),
        ("widths", "(int)min(u, (unsigned long)l)", None),
        ("clamp-ok", "clamp(u, 0, 10) + clamp(i, -1, 1) + clamp(c, 0, 100u)", None),
        ("three-ok", "min3(c, i, 4) + max3(u, 3, 4u)", None),
        ("unchecked", "(int)umin(i, u) + min_t(int, i, u) + clamp_t(int, u, 0, 9) + clamp_val(u, 0, 9)", None),
    ];
    for &(tag, expr, error) in cases {
        let o = compile_only(
            &format!("minmax-{tag}"),
            &format!(
                "#include <linux/kernel.h>\nint f(int i, unsigned int u, u8 c, long l);\nint f(int i, unsigned int u, u8 c, long l) {{ (void)i; (void)u; (void)c; (void)l; return {expr}; }}\n"
            ),
        );
        // gcc writes the message as a C string: the quotes around 'lo' come escaped.
        let stderr = String::from_utf8_lossy(&o.stderr).replace("\\'", "'");
        match error {
            None => assert!(o.status.success() && stderr.is_empty(), "{expr}:\n{}", show(&o)),
            Some(msg) => {
                assert!(!o.status.success(), "{expr} compiled:\n{}", show(&o));
                assert!(stderr.contains(&format!("static assertion failed: \"{msg}")), "{expr}:\n{}", show(&o));
                assert!(!stderr.contains("warning:") && !stderr.contains("[-Werror"), "{expr}: noise:\n{}", show(&o));
            }
        }
    }
}

/// The seeds' legacy forms (6-argument `kmem_cache_create`, `kmem_cache_t`, 3-argument
/// `mempool_resize`, `SLAB_NO_REAP`, `SLAB_CTOR_*`, `__GFP_WAIT`/`REPEAT`/`COLD`, `MAX_ORDER`,
/// 2.4-style `init_module`) compile next to today's forms. Compile only: the `slab`, `mempool`
/// and `kmalloc` suites run these forms, and `examples/c` runs the book's modules.
#[test]
fn legacy_forms_compile() {
    for name in ["legacy", "legacy_mempool", "modern_mempool"] {
        let src = manifest().join(format!("tests/c/{name}.c"));
        let obj = out_dir().join(format!("{name}.o"));
        let o = gcc(&["-fPIC", "-c", &src.display().to_string(), "-o", &obj.display().to_string()]);
        assert!(o.status.success(), "{name}.c:\n{}", show(&o));
    }
}

/// Today's forms compile as C2x too (C23, where `()` means `(void)`: `linux/mempool.h` then
/// declares the kernel's `mempool_init`/`mempool_exit` prototypes), with `-Wstrict-prototypes`.
#[test]
fn modern_forms_compile_as_c2x() {
    let src = manifest().join("tests/c/modern_mempool.c");
    let obj = out_dir().join("modern_mempool-c2x.o");
    let o = gcc(&["-std=c2x", "-fPIC", "-c", &src.display().to_string(), "-o", &obj.display().to_string()]);
    assert!(o.status.success(), "modern_mempool.c as C2x:\n{}", show(&o));
}

/// `mempool_create` accepts today's callback type and the book's `int gfp_mask` one, nothing else.
#[test]
fn mempool_create_rejects_other_callback_types() {
    for (param, ok) in [("gfp_t", true), ("int", true), ("long", false)] {
        let o = compile_only(
            &format!("mempool-cb-{param}"),
            &format!(
                "#include <linux/mempool.h>\nstatic void *a({param} g, void *d) {{ (void)g; return d; }}\nstatic void f(void *e, void *d) {{ (void)e; (void)d; }}\nmempool_t *make(void) {{ return mempool_create(1, a, f, NULL); }}\n"
            ),
        );
        assert_eq!(o.status.success(), ok, "{param}:\n{}", show(&o));
    }
}

/// Audit: huge `kmem_cache_create_dtor` alignments are an error, not an internal panic.
#[test]
fn ovf_kmem_cache_create_huge_alignment() {
    run_suite("ovf", Link::Shared);
}

/// VM-2 and `vmap`'s `count > totalram_pages()` from C: sizes and counts no allocation can
/// have fail cleanly (NULL, the kernel's report or none), with kmemleak off and on (its
/// bookkeeping of a failed vmalloc of `SIZE_MAX` overflowed), and a page count above the
/// machine's memory is refused before the caller's array is copied (it aborted the process).
#[test]
fn abi_edges_huge_sizes_and_counts() {
    let exe = build("abi_edges", Link::Shared);
    for settings in [&[][..], &[("KMEM_KMEMLEAK", "1")]] {
        let o = run_with(&exe, settings);
        assert!(o.status.success(), "abi_edges with {settings:?} failed:\n{}", show(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("abi_edges: "), "{}", show(&o));
    }
}

/// Code that includes only `<linux/slab.h>` (or only `<linux/kernel.h>`) has the limits the
/// kernel's headers give it through `<linux/overflow.h>` and `<linux/limits.h>`: `INT_MAX`,
/// `UINT_MAX`, `LONG_MAX`, `ULONG_MAX`, `SIZE_MAX`, `SSIZE_MAX` and the fixed-size
/// `U8_MAX` .. `S64_MIN`, with the kernel's values and types; `INT_MAX` did not compile.
#[test]
fn the_kernels_limits_come_with_slab_h_and_kernel_h() {
    let body = "\
_Static_assert(INT_MAX == 2147483647 && INT_MIN == -INT_MAX - 1, \"int\");
_Static_assert(UINT_MAX == 4294967295U && ULONG_MAX == (unsigned long)-1, \"unsigned\");
_Static_assert(LONG_MAX == (long)(ULONG_MAX >> 1) && LLONG_MAX == 9223372036854775807LL, \"long\");
_Static_assert(USHRT_MAX == 65535 && SHRT_MIN == -32768, \"short\");
_Static_assert(SIZE_MAX == (size_t)-1 && SSIZE_MAX == (ssize_t)(SIZE_MAX >> 1), \"size\");
_Static_assert(U8_MAX == 255 && S8_MAX == 127 && S8_MIN == -128, \"8\");
_Static_assert(U16_MAX == 65535 && S16_MAX == 32767 && S16_MIN == -32768, \"16\");
_Static_assert(U32_MAX == 4294967295U && U32_MIN == 0 && S32_MAX == 2147483647 && S32_MIN == -S32_MAX - 1, \"32\");
_Static_assert(U64_MAX == 18446744073709551615ULL && S64_MAX == 9223372036854775807LL, \"64\");
_Static_assert(S64_MIN == -S64_MAX - 1 && PHYS_ADDR_MAX == (phys_addr_t)-1, \"s64\");
_Static_assert(_Generic(U8_MAX, u8: 1, default: 0) && _Generic(S16_MIN, s16: 1, default: 0), \"types\");
_Static_assert(_Generic(U32_MAX, u32: 1, default: 0) && _Generic(S64_MIN, s64: 1, default: 0), \"types\");
";
    for (tag, header, std) in [
        ("slab", "linux/slab.h", "-std=gnu11"),
        ("kernel", "linux/kernel.h", "-std=gnu11"),
        ("slab-c11", "linux/slab.h", "-std=c11"),
    ] {
        let o = support::compile_text(&format!("limits-{tag}"), &format!("#include <{header}>\n{body}"), &[std]);
        assert!(o.status.success(), "<{header}> {std}:\n{}", show(&o));
    }
}

/// `<linux/list.h>` (it was missing: kernel-style code with lists did not compile): a queue
/// and a stack of kmalloc'd entries, moves, splices, replace, `list_del`'s poison and deletion
/// while iterating; with `KMEM_KMEMLEAK=1` nothing is left (every entry was `kfree`'d).
#[test]
fn list_h() {
    run_suite("list", Link::Shared);
    let o = run_with(&build("list", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// `<linux/list.h>`'s hlist and `<linux/log2.h>` (they were missing: hash-bucket code did not
/// compile): adds at the head, before and behind a node, every iterator, `hlist_del`'s poison,
/// `hlist_del_init`, fake nodes, `hlist_move_list` and `hlist_splice_init` with each node's
/// `pprev` checked; with `KMEM_KMEMLEAK=1` nothing is left.
#[test]
fn hlist_h() {
    run_suite("hlist", Link::Shared);
    let o = run_with(&build("hlist", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// `<linux/hash.h>` and `<linux/hashtable.h>` (they were missing): `hash_32`/`hash_64` against
/// the documented multiplication and known values, objects in the bucket `hash_min` picks,
/// `hash_for_each_possible` visiting that bucket only, deletion while iterating; with
/// `KMEM_KMEMLEAK=1` nothing is left.
#[test]
fn hashtable_h() {
    run_suite("hashtable", Link::Shared);
    let o = run_with(&build("hashtable", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// `<linux/rculist.h>` and `<linux/hashtable.h>`'s `_rcu` forms (they were missing: RCU list
/// code did not compile): every add, delete, replace and splice with exact traversal orders and
/// each node's back links checked, `list_del_rcu`/`hlist_del_rcu` poisoning only `prev`/`pprev`
/// (a reader on a deleted entry walks on), the `_continue`/`_from` walks, the lockdep argument
/// never evaluated; then a writer thread adding and deleting while a reader walks under
/// `rcu_read_lock` and finds every entry live. With `KMEM_KMEMLEAK=1` nothing is left.
#[test]
fn rculist_h() {
    run_suite("rculist", Link::Shared);
    let o = run_with(&build("rculist", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// `<linux/list_nulls.h>` and `<linux/rculist_nulls.h>` (they were missing: the kernel's lookup
/// pattern for `SLAB_TYPESAFE_BY_RCU` caches did not compile): the end markers and their
/// values, every add and delete with each node's links checked (`pprev` poisoned, `next`
/// intact, `del_init_rcu` unhashed, `add_tail_rcu` order and marker, `add_fake`), every walk
/// ending on its list's own marker, and a reader whose node is moved to another chain ending on
/// that chain's marker, which the documented lookup notices. With `KMEM_KMEMLEAK=1` nothing is
/// left.
#[test]
fn list_nulls_h() {
    run_suite("list_nulls", Link::Shared);
    let o = run_with(&build("list_nulls", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// Documentation/RCU/rculist_nulls.rst over a `SLAB_TYPESAFE_BY_RCU` cache: a writer thread
/// moves objects between the chains of a hash table (unlink, `kmem_cache_free` without a grace
/// period, allocate again, insert under a new key in another chain) while reader threads look
/// keys up with the documented algorithm (reference taken with an increment unless zero, key
/// checked again, restart on a foreign nulls value). No lookup returns an object with another
/// key, no lookup misses a key that never moves, every reference is dropped and the cache is
/// empty at the end. With `KMEM_KMEMLEAK=1` nothing is left.
#[test]
fn rculist_nulls_typesafe_by_rcu_lookup() {
    run_suite("rculist_nulls", Link::Shared);
    let o = run_with(&build("rculist_nulls", Link::Shared), &[("KMEM_KMEMLEAK", "1")]);
    assert!(o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("unreferenced"), "{}", show(&o));
}

/// `kasprintf`/`kvasprintf`/`kvasprintf_const` (lib/kasprintf.c) from `<linux/kernel.h>`, as
/// driver code uses them: kmalloc objects of the text's exact size, freed with `kfree`; NULL
/// when kmalloc refuses the size. They were missing: such code did not compile.
#[test]
fn kasprintf() {
    run_suite("kasprintf", Link::Shared);
}

/// A flexible-array structure as 6.x drivers write it, with only `<linux/slab.h>`:
/// `__counted_by` on the array that `kzalloc(struct_size(...))` sizes, `fallthrough;` under
/// `-Wimplicit-fallthrough`, `sizeof_field`/`offsetofend` and `DECLARE_FLEX_ARRAY` (which the
/// kernel's `<linux/types.h>` brings through the uapi `<linux/stddef.h>`). None of them was
/// defined: such code did not compile.
#[test]
fn flexible_array_structures_as_drivers_write_them() {
    let source = "\
#include <linux/slab.h>
struct blob { size_t n; int tag; u32 data[] __counted_by(n); };
union pkt { DECLARE_FLEX_ARRAY(u8, raw); struct { u16 len; u16 kind; } hdr; };
_Static_assert(sizeof_field(struct blob, tag) == 4, \"sizeof_field\");
_Static_assert(offsetofend(struct blob, tag) == 12, \"offsetofend\");
_Static_assert(sizeof(union pkt) == 4, \"a flexible array in a union\");
struct blob *mk(size_t n, int k);
struct blob *mk(size_t n, int k)
{
	struct blob *b = kzalloc(struct_size(b, data, n), GFP_KERNEL);
	if (!b)
		return NULL;
	b->n = n;
	switch (k) {
	case 0:
		b->tag = 1;
		fallthrough;
	case 1:
		b->tag++;
		break;
	default:
		break;
	}
	return b;
}
";
    for std in ["-std=gnu11", "-std=c11"] {
        let o = support::compile_text(
            &format!("flex-{}", std.trim_start_matches("-std=")),
            source,
            &[std, "-Wimplicit-fallthrough"],
        );
        assert!(o.status.success(), "{std}:\n{}", show(&o));
    }
}

/// `kvmalloc_array_node`, `kvcalloc_node`, `kmalloc_node_track_caller` and `kvmemdup`, as
/// driver code calls them; they were missing (such code did not compile).
#[test]
fn node_and_dup_forms() {
    run_suite("node_and_dup_forms", Link::Shared);
}

/// `alloc_pages_exact(0)` gets the page allocator's order warning (`get_order(0)` is order 52),
/// and `free_pages_exact(NULL, size)` of at most a page is the kernel's silent `free_page(0)`.
#[test]
fn pages_exact_edges() {
    run_suite("pages_exact_edges", Link::Shared);
}

/// `<linux/cleanup.h>` with kmem's allocators: `__free(kfree)`, `__free(kvfree)`,
/// `__free(vfree)`, `no_free_ptr`, `return_ptr` and `retain_and_null_ptr`, as 6.5+ drivers use
/// them; they were missing (such code did not compile).
#[test]
fn scope_based_freeing() {
    run_suite("cleanup", Link::Shared);
}

/// `strscpy(dest, src)` (6.8+: the size of the array `dest`) next to the three-argument form;
/// it did not compile. Given a pointer, the two-argument form does not compile either, as the
/// kernel's `__must_be_array` makes it.
#[test]
fn strscpy_with_two_and_three_arguments() {
    run_suite("string_forms", Link::Shared);
    let o = compile_only(
        "strscpy-pointer",
        "#include <linux/string.h>\nssize_t f(char *p);\nssize_t f(char *p) { return strscpy(p, \"x\"); }\n",
    );
    assert!(!o.status.success(), "strscpy(pointer, src) compiled:\n{}", show(&o));
}
