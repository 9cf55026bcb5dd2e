//! C code written as for the kernel compiles and behaves as there: the kernel's type widths
//! and macro forms, strict ISO C modes, glibc headers next to kmem's, and the failure paths of
//! the C ABI that the Rust side already tests (DESIGN §6; rule ids in each test).

mod support;

use support::{compile_text, run_suite_with, show};

/// asm-generic/int-ll64.h: `u64`/`s64` are `unsigned long long`/`long long` on every arch, so
/// `printk("%llu", (u64)x)` is clean under `-Wall -Werror` (DESIGN §6: kernel-style C compiles
/// unchanged).
#[test]
fn u64_and_friends_are_long_long() {
    run_suite_with("types_printf", &[], &[]);
}

/// The kernel's `virt_to_page`/`virt_to_pfn`/`virt_addr_valid` are macros over
/// `__pa((unsigned long)(x))`: `virt_to_page(__get_free_page(GFP_KERNEL))` compiles cleanly and
/// pointers still work (DESIGN §6; PA rules §2.10 for the answers).
#[test]
fn virt_to_page_takes_an_unsigned_long_or_a_pointer() {
    run_suite_with("virt_forms", &[], &[]);
}

/// SL-2 from C: `SLAB_PANIC` makes a failed `kmem_cache_create` the kernel's `panic()`: the
/// panic line (kernel/panic.c's prefix, `__kmem_cache_create_args`' message) in the log and
/// on stderr, then `abort()`; no Rust panic message, no "kmem internal error".
#[test]
fn slab_panic_aborts_with_the_kernels_panic_line() {
    use std::os::unix::process::ExitStatusExt as _;
    let exe = support::build("slab_panic", &[]);
    for (arg, name, err) in [("size0", "p", -22), ("flags", "pflags", -22)] {
        let o = support::run_with_args(&exe, &[arg], &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.signal(), Some(libc::SIGABRT), "{arg}: not aborted:\n{}", show(&o));
        let line = format!(
            "Kernel panic - not syncing: __kmem_cache_create_args: Failed to create slab '{name}'. Error {err}"
        );
        assert_eq!(stderr.lines().filter(|l| l.starts_with(&line)).count(), 1, "{arg}:\n{}", show(&o));
        assert!(stderr.contains(&format!("---[ end {line} ]---")), "{arg}:\n{}", show(&o));
        for noise in ["panicked at", "internal error", "RUST_BACKTRACE", "stack backtrace"] {
            assert!(!stderr.contains(noise), "{arg}: {noise:?} on stderr:\n{}", show(&o));
        }
    }
    let o = support::run_with(&exe, &[]);
    assert!(o.status.success(), "a cache that can be made:\n{}", show(&o));
}

/// Strict ISO C (`-std=c99`/`-std=c11`, no `_POSIX_C_SOURCE`): the headers use only what ISO C
/// declares (`memchr`, not POSIX's `strnlen` or `usleep`), so each compiles alone, and the
/// inline `strscpy` and the delays are used and link (DESIGN §6: kernel-style C compiles).
#[test]
fn headers_compile_as_strict_iso_c() {
    for std in ["-std=c99", "-std=c11"] {
        for h in support::headers() {
            let tag = format!("strict-{}-{}", &std[5..], h.replace('/', "-"));
            let o = compile_text(&tag, &format!("#include <{h}>\nint kmem_strict_unit;\n"), &[std]);
            assert!(o.status.success(), "<{h}> with {std}:\n{}", show(&o));
        }
        let o = run_suite_with("strict_iso", &[std], &[]);
        assert!(o.status.success(), "{std}: {}", show(&o));
    }
}

/// SL-9 edge from C: size 0 makes `kmem_cache_alloc_bulk` return 0 and `kmem_cache_free_bulk`
/// return, silently, even with a NULL array (mm/slub.c returns before looking at anything).
#[test]
fn bulk_calls_of_size_zero_are_silent() {
    run_suite_with("bulk_zero", &[], &[]);
}

/// Unbalanced `kunmap_local`/`kunmap_atomic` (NULL, a stack address) are mm/highmem.c's
/// `WARN_ON_ONCE(addr < PAGE_OFFSET)` and a `preempt_enable` below zero is
/// `DEBUG_LOCKS_WARN_ON(val > preempt_count())` (CONFIG_DEBUG_PREEMPT), each once; the count
/// stays 0 (DESIGN §6: misuse is reported in the kernel's words).
#[test]
fn unbalanced_kunmap_and_preempt_enable_warn_once() {
    run_suite_with("unbalanced", &[], &[]);
}

/// glibc defines some of the kernel's names too: `roundup` (<sys/param.h>) and `PAGE_MASK`
/// (<sys/user.h>) with the same meaning, and <sys/sysinfo.h> includes <linux/kernel.h> for the
/// uapi `struct sysinfo`. Either include order compiles under `-Werror` and computes the same
/// (DESIGN §6: kernel-style C compiles unchanged).
#[test]
fn glibc_headers_mix_with_kmems_in_either_order() {
    run_suite_with("glibc_mix", &[], &[]);
    run_suite_with("glibc_mix", &["-DKMEM_GLIBC_FIRST"], &[]);
}

/// `__stringify` is ISO C (`__VA_ARGS__`, not GNU's named `x...`): <linux/compiler.h> is
/// clean under `-pedantic -Werror`.
#[test]
fn compiler_h_is_clean_under_pedantic() {
    let text = "#include <linux/compiler.h>\nconst char *kmem_s = __stringify(a, b) __stringify(1);\n";
    for std in ["-std=c11", "-std=gnu11"] {
        let o = compile_text(&format!("pedantic-compiler-{}", &std[5..]), text, &[std, "-pedantic"]);
        assert!(o.status.success(), "{std} -pedantic:\n{}", show(&o));
    }
}

/// KM-4/KM-7 from C: `kfree` inside a live large kmalloc is refused and the report names the
/// allocation (start, order, size); `ksize` there is reported and 0, as inside a slab object.
#[test]
fn pointers_inside_a_large_kmalloc_name_the_allocation() {
    run_suite_with("large_interior", &[], &[]);
}

/// Failure paths from C that the Rust side already tests: a bad zone mask (GFP-2), the
/// `__GFP_NOFAIL` misuse warnings (§2.8 step 5, the Rust side's `pa14_nofail_...`; on a 32 MiB
/// machine), a double `vfree` (§5.4: `Trying to vfree() nonexistent vm area`), `kfree` inside
/// a small object (§3.8, SL-15 wording). Without kswapd: its reclaim, running while the
/// program holds every `GFP_ATOMIC` page (it has time to under valgrind), would free the
/// order-2 block the `__GFP_NOFAIL` request must not find.
#[test]
fn failure_paths_from_c() {
    run_suite_with("failure_paths", &[], &[("KMEM_MEM", "32M"), ("KMEM_KSWAPD", "0")]);
}

/// DESIGN §3: a bad `KMEM_*` value when the C ABI starts the machine: stderr names it once,
/// every allocation fails, the program does not crash.
#[test]
fn a_bad_kmem_variable_fails_every_call_with_one_message() {
    let exe = support::build("no_machine", &[]);
    let o = support::run_with(&exe, &[("KMEM_MEM", "lots")]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("every allocation failed"), "{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = "kmem: cannot start the machine behind the C ABI: invalid KMEM_MEM=\"lots\"";
    assert_eq!(stderr.matches(line).count(), 1, "{}", show(&o));
    assert_eq!(stderr.matches("cannot start the machine").count(), 1, "{}", show(&o));
}

/// Kernel functions the headers lacked, with the kernel's semantics (include/linux/slab.h,
/// string.h, vmalloc.h, mm.h, mm/util.c; SL-6 for usercopy caches never merging).
#[test]
fn more_kernel_names() {
    run_suite_with("more_kernel_names", &[], &[]);
}

/// GFP-7 from C: `linux/sched/mm.h`'s scopes nest, `current_gfp_context` shows what they do to
/// a mask, and `memalloc_noreclaim_save` saves and restores `PF_MEMALLOC`.
#[test]
fn memalloc_scopes_nest_and_shape_the_mask() {
    run_suite_with("scopes", &[], &[]);
}

/// Prefilled sheaves from C (SEMANTICS §3.1, 6.18): `sheaf_capacity`, prefill, allocations
/// up to the size and NULL after, refill's cases, return, and every sheaf pointer kmem refuses.
#[test]
fn prefilled_sheaves() {
    run_suite_with("sheaf", &[], &[]);
}

/// The userspace test shim's hooks from C (SEMANTICS §8.6): the opt-in `non_kernel` budget,
/// the failure callback, bulk under a short budget, the counters, TST-17's sequence, and the
/// cache pointers kmem refuses.
#[test]
fn userspace_shim_hooks() {
    run_suite_with("shim", &[], &[]);
}

/// printk's `_once`/`_ratelimited` forms, `WARN_ONCE`, `printk_ratelimit`,
/// `printk_timed_ratelimit` and `struct ratelimit_state` with lib/ratelimit.c's rules, on the
/// machine's jiffies (`HZ` 1000).
#[test]
fn printk_once_ratelimited_and_ratelimit_states() {
    run_suite_with("ratelimit", &[], &[]);
}

/// The kernel's function-like macros evaluate a non-constant argument once (include/linux/
/// log2.h's `ilog2`, `roundup_pow_of_two`, `rounddown_pow_of_two`, `order_base_2` go through
/// a function; list.h's `list_first_entry_or_null` keeps `ptr` in a local), so `ilog2(n++)`
/// increments once; of constants the log2 forms stay constant expressions (DESIGN §6).
#[test]
fn macros_evaluate_their_arguments_once() {
    for std in ["-std=gnu11", "-std=c99"] {
        run_suite_with("eval_once", &[std], &[]);
    }
}

/// `BUG_ON` from a program: lib/bug.c's `kernel BUG at <file>:<line>!` in the log and on
/// stderr (before, it reached only the log, which a program without `KMEM_LOG_ECHO` never
/// shows: the process just died of `SIGABRT`), then `abort()`; a false condition does nothing.
#[test]
fn bug_on_reports_on_stderr_then_aborts() {
    use std::os::unix::process::ExitStatusExt as _;
    let exe = support::build("bug_on", &[]);
    let o = support::run_with_args(&exe, &["die"], &[]);
    assert_eq!(o.status.signal(), Some(libc::SIGABRT), "not aborted:\n{}", show(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("kernel BUG at ").count(), 1, "{}", show(&o));
    assert!(stderr.contains("bug_on.c:15!\n"), "{}", show(&o));
    let o = support::run_with_args(&exe, &["die"], &[("KMEM_LOG_ECHO", "on")]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stderr.matches("kernel BUG at ").count(), 1, "echoed once:\n{}", show(&o));
    assert!(stderr.contains("bug_on: before"), "{}", show(&o));
    let o = support::run_with(&exe, &[]);
    assert!(o.status.success(), "{}", show(&o));
}

/// include/linux/highmem.h's helpers kernel code uses on pages of any zone (`clear_highpage`,
/// `copy_highpage`, `zero_user_segments`, `memcpy_{from,to}_page`, `memset_page`,
/// `memzero_page`) and asm/page.h's `clear_page`/`copy_page` compile and work on a HighMem
/// page, through `kmap_local_page` (DESIGN §6: kernel-style C compiles unchanged).
#[test]
fn highmem_helpers() {
    run_suite_with("highmem_helpers", &[], &[]);
}

/// `__vmalloc(size, gfp, prot)`, the 2.6 .. 5.7 form (the book's kernels), compiles and
/// allocates next to today's `__vmalloc(size, gfp)`, as the headers do for the book's other
/// legacy forms (DESIGN §6).
#[test]
fn vmalloc_with_a_pgprot_argument() {
    run_suite_with("legacy_vmalloc", &[], &[]);
}

/// `container_of(ptr, type, member)` checks, as the kernel's does, that `ptr` points to the
/// member's type or is a `void *` (qualifiers aside): another pointer is a compile error
/// ("pointer type mismatch in container_of()") instead of a silently wrong address.
#[test]
fn container_of_refuses_a_pointer_of_another_type() {
    let text = |p: &str| {
        format!(
            "#include <linux/kernel.h>\n#include <linux/list.h>\n\
             struct s {{ int a; struct list_head node; long b; }};\n\
             struct s *kmem_co(struct s *x);\n\
             struct s *kmem_co(struct s *x) {{ {p} return container_of(q, struct s, node); }}\n"
        )
    };
    for (tag, p) in [
        ("list", "struct list_head *q = &x->node;"),
        ("void", "void *q = &x->node;"),
        ("const", "const struct list_head *q = &x->node;"),
    ] {
        let o = compile_text(&format!("container-of-{tag}"), &text(p), &["-std=gnu11"]);
        assert!(o.status.success(), "{tag}:\n{}", show(&o));
    }
    let o = compile_text("container-of-mismatch", &text("long *q = &x->b;"), &["-std=gnu11"]);
    assert!(!o.status.success(), "a long * compiled");
    assert!(String::from_utf8_lossy(&o.stderr).contains("pointer type mismatch in container_of()"), "{}", show(&o));
}

/// `struct_size`/`struct_size_t`/`flex_array_size` of a constant count are constant
/// expressions, as the kernel's `__is_constexpr(count)` forms: a file-scope array bound,
/// `BUILD_BUG_ON` and a static initializer compile (they did not: the helpers always called
/// `size_mul`); a constant that overflows still gives `SIZE_MAX` (DESIGN §6).
#[test]
fn struct_size_of_a_constant_count_is_a_constant_expression() {
    for std in ["-std=gnu11", "-std=c99"] {
        run_suite_with("struct_size_const", &[std], &[]);
    }
}

/// `BUILD_BUG_ON` is a statement, as the kernel's `compiletime_assert` (a do-while): it may be
/// the body of an `if` (it was a `_Static_assert`, a declaration, and did not compile there),
/// and a condition that is no constant expression but that the optimizer folds (a `const`
/// variable, an inline function's constant argument) is checked as in the kernel; a true
/// condition of either kind still fails the build with `BUILD_BUG_ON failed: <cond>`.
#[test]
fn build_bug_on_is_a_statement_checked_after_folding() {
    for std in ["-std=gnu11", "-std=c99"] {
        run_suite_with("build_bug_on", &[std], &[]);
    }
    let text = |cond: &str| {
        format!(
            "#include <linux/kernel.h>\nint kmem_bbo(int x);\n\
             int kmem_bbo(int x) {{ const int four = 4; (void)four; if (x) BUILD_BUG_ON({cond}); return x; }}\n"
        )
    };
    for (tag, cond) in [("const", "sizeof(int) != 4 + 1"), ("folded", "four != 5")] {
        let o = compile_text(&format!("build-bug-on-{tag}"), &text(cond), &["-std=gnu11"]);
        assert!(!o.status.success(), "{tag}: a true BUILD_BUG_ON compiled");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&format!("BUILD_BUG_ON failed: {cond}")),
            "{tag}:\n{}",
            show(&o)
        );
    }
}

/// `READ_ONCE(x)` is a value of `x`'s unqualified type, as the kernel's statement expression
/// around `__READ_ONCE`: `typeof(READ_ONCE(x)) v = READ_ONCE(x); v++;` compiles (it was the
/// volatile const lvalue itself, so `v` was read-only), and its address cannot be taken.
#[test]
fn read_once_gives_an_unqualified_value() {
    let text = |body: &str| {
        format!(
            "#include <linux/compiler.h>\nstruct s {{ int a; unsigned long b; }};\n\
             int kmem_ro(struct s *x);\nint kmem_ro(struct s *x) {{ {body} }}\n"
        )
    };
    let o = compile_text(
        "read-once-typeof",
        &text("__typeof__(READ_ONCE(x->a)) v = READ_ONCE(x->a); v++; WRITE_ONCE(x->b, READ_ONCE(x->b) + 1); return v;"),
        &["-std=gnu11"],
    );
    assert!(o.status.success(), "{}", show(&o));
    let o = compile_text("read-once-address", &text("return *&READ_ONCE(x->a);"), &["-std=gnu11"]);
    assert!(!o.status.success(), "the address of READ_ONCE's value was taken");
}

/// `pr_debug`, `pr_devel` and their `_once`/`_ratelimited` forms without `DEBUG`, and
/// `no_printk` itself, never evaluate their arguments: the kernel's `no_printk` is a statement
/// expression around `if (0) printk(...)` (it was an inline function here, so `pr_debug("%d",
/// n++)` incremented `n`); the format is still checked against the arguments.
#[test]
fn disabled_pr_debug_does_not_evaluate_its_arguments() {
    for std in ["-std=gnu11", "-std=c99"] {
        run_suite_with("pr_debug_args", &[std], &[]);
    }
    let o = compile_text(
        "pr-debug-format",
        "#include <linux/printk.h>\nvoid kmem_pd(void);\nvoid kmem_pd(void) { pr_debug(\"%s\\n\", 5); }\n",
        &["-std=gnu11"],
    );
    assert!(!o.status.success(), "a bad pr_debug format compiled");
    assert!(String::from_utf8_lossy(&o.stderr).contains("format '%s' expects"), "{}", show(&o));
}

/// The kernel's small common headers (`linux/bits.h`, `sizes.h`, `math.h`, `build_bug.h`,
/// `cache.h`, `kconfig.h`, `mmdebug.h`) exist and give the kernel's values: `BIT`/`GENMASK` and
/// `SZ_*` as constant expressions (file-scope `static_assert`, array bounds, `#if
/// IS_ENABLED(...)`), the rounding helpers (`DIV_ROUND_CLOSEST` halves away from zero, each
/// argument once), `BUILD_BUG()` in dead code compiles, `VM_WARN_ON` reports as `WARN_ON`.
#[test]
fn common_kernel_headers_give_the_kernels_values() {
    for std in ["-std=gnu11", "-std=c99"] {
        run_suite_with("common_headers", &[std, "-DCONFIG_KMEM_ON=1", "-DCONFIG_KMEM_MOD_MODULE=1"], &[]);
    }
}

/// `GENMASK` with reversed constant bounds and `BUILD_BUG()` left in reachable code do not
/// compile, as in the kernel.
#[test]
fn genmask_reversed_and_reachable_build_bug_do_not_compile() {
    let o = compile_text(
        "genmask-reversed",
        "#include <linux/bits.h>\nunsigned long kmem_bad_mask(void);\nunsigned long kmem_bad_mask(void) { return GENMASK(2, 5); }\n",
        &["-std=gnu11"],
    );
    assert!(!o.status.success(), "GENMASK(2, 5) compiled:\n{}", show(&o));
    let o = compile_text(
        "build-bug-reachable",
        "#include <linux/build_bug.h>\nvoid kmem_bad(void);\nvoid kmem_bad(void) { BUILD_BUG(); }\n",
        &["-std=gnu11", "-O2"],
    );
    assert!(!o.status.success(), "a reachable BUILD_BUG() compiled:\n{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("BUILD_BUG failed"), "{}", show(&o));
}
