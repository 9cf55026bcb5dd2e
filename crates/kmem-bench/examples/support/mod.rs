//! What the callgrind loop examples share (each includes this file with `#[path]`): the
//! machine they run on and the iteration count from `N`.

/// An x86_64 machine of `mem_bytes` with two CPU slots and no kswapd, so nothing but the loop
/// runs allocator code.
pub fn machine(mem_bytes: u64) -> kmem::Machine {
    kmem::Machine::builder()
        .profile(kmem::Profile::X86_64)
        .mem_bytes(mem_bytes)
        .cpus(2)
        .kswapd(false)
        .build()
        .expect("machine")
}

/// Iterations: `N` from the environment, else `default` (`N=0` measures the setup alone).
pub fn iterations(default: u64) -> u64 {
    std::env::var("N").map_or(default, |s| s.parse().expect("N"))
}
