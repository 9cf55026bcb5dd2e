//! Exports the C ABI (crate `kmem-ffi`, linked into the binary) in the dynamic symbol table,
//! so the modules `kmem insmod` loads resolve `printk`'s backend, `__get_free_pages` and the
//! rest against this process, as kernel modules resolve against the kernel's exports.
fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic");
}
