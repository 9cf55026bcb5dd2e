//! The preload's machine: the `KMEM_*` environment variables as for every default machine
//! (`kmem::env`), over the preload's defaults — x86_64, the host's RAM (sparse) but at most
//! [`DEFAULT_MAX`], a 64 KiB log — and two settings that are forced: private memory (so `fork` gives the child a copy) and no
//! kswapd (a thread of its own would be inside the machine at any moment, and every preloaded
//! program would get an extra thread). If the host refuses a mapping that large (strict
//! overcommit), the default size is halved until it fits, down to 64 MiB; a size `KMEM_MEM`
//! gave is built or refused (an error naming the variable), never halved.
//!
//! Why at most 4 GiB by default: building a machine writes the page-array entry of the head of
//! every free 4 MiB block, one host page of page array per block, so start-up costs 1 MiB of
//! resident memory per GiB of machine in every process (27 MB and about 60 ms per process on a
//! 23 GiB host, against 4 MB and a few ms at 4 GiB), and programs like `git` and `gcc` start
//! many processes. Allocations above 4 MiB do not use the machine at all (they are mapped
//! directly), so 4 GiB is 4 GiB of objects up to 4 MiB; `KMEM_MEM` sets any other size.

use kmem::{BuildError, Builder, Machine, Profile};

/// The largest i386 machine without HighMem, which private memory cannot have.
const I386_LOWMEM: u64 = 896 << 20;
const SMALLEST: u64 = 64 << 20;
/// The default size's ceiling (see the module documentation).
pub const DEFAULT_MAX: u64 = 4 << 30;

/// Whether `KMEM_STATS_ON_EXIT` asks for statistics at exit (`1`, `on`, `yes`, `true`; the
/// other `KMEM_*` booleans' values). A bad value is named on standard error, and means no.
pub fn stats_on_exit() -> bool {
    kmem::env::flag("KMEM_STATS_ON_EXIT").unwrap_or_else(|e| {
        crate::sys::write_stderr(format!("kmem_preload: {e}; no statistics at exit\n").as_bytes());
        false
    })
}

/// Builds the preload's machine.
///
/// # Errors
/// A bad `KMEM_*` value (naming the variable), or a machine the host cannot give memory to.
pub fn build() -> Result<Machine, String> {
    let b = Builder::new().profile(Profile::X86_64).log_capacity(64 << 10).from_env().map_err(|e| e.to_string())?;
    let mut b = b.private_memory(true).kswapd(false);
    // A size `KMEM_MEM` asked for is built or refused, never halved (DESIGN §3: no silent wrong
    // machine); only the preload's own default gives way.
    let explicit = b.settings().mem_bytes;
    let page = kmem::PAGE_SIZE as u64;
    if b.settings().profile == Profile::I386 && explicit.is_some_and(|m| m / page > I386_LOWMEM / page) {
        // Named as the variables the user set, not as the private memory the preload forces.
        let value = kmem::env::var("KMEM_MEM").ok().flatten().unwrap_or_default();
        let expected = "a size from 8M to 896M with KMEM_PROFILE=i386 (the preload's private memory has no HighMem)";
        return Err(kmem::env::EnvError { var: "KMEM_MEM", value, expected: expected.into() }.to_string());
    }
    if b.settings().profile == Profile::I386 && b.settings().mem_bytes.is_none() {
        b = b.mem_bytes(I386_LOWMEM);
    }
    let mut size = b.settings().mem_bytes.unwrap_or_else(|| kmem::sys::host_ram().min(DEFAULT_MAX));
    loop {
        match b.clone().mem_bytes(size).build() {
            Ok(m) => return Ok(m),
            Err(BuildError::Host(e)) if explicit.is_some() => {
                return Err(format!("{e} (a machine of KMEM_MEM's {size} bytes)"));
            }
            Err(BuildError::Host(_)) if size / 2 >= SMALLEST => size /= 2,
            Err(e) => return Err(e.to_string()),
        }
    }
}
