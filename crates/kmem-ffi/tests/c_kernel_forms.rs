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
