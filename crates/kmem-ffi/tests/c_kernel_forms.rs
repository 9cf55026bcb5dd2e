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
