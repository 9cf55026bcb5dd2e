//! `/proc/vmallocinfo` (`vmalloc_info_show`, VM-11) and the meminfo counters (VM-13).

use core::fmt::{self, Write};

use super::{Mmu, VM_ALLOC, VM_DMA_COHERENT, VM_IOREMAP, VM_MAP, VM_SPARSE, VM_UNINITIALIZED, VM_USERMAP, Vmalloc};
use crate::proc::MeminfoExtra;

impl<M: Mmu> Vmalloc<M> {
    /// `/proc/vmallocinfo`: each live area in address order as
    /// `0x<start>-0x<end> <size> <caller> pages=<n> <kinds> N0=<n>` (the size includes the guard
    /// page; the caller is the `file:line` that created the area), or
    /// `0x<start>-0x<end> <size> vm_map_ram` for a `vm_map_ram` area or vmap block, then every lazily freed area
    /// as `0x<start>-0x<end> <size> unpurged vm_area`, and so is every area of the frame cache
    /// (freed, not yet unmapped). Areas being set up, pooled address space and ranges kept
    /// out of use after a failed unmap are skipped.
    ///
    /// `w` is written under the vmap lock: it must not allocate from this machine's kmalloc
    /// (reclaim would run the vmalloc shrinker, which takes the vmap lock: a self-deadlock).
    pub fn vmallocinfo(&self, w: &mut dyn Write) -> fmt::Result {
        self.vmallocinfo_naming(w, &|w, ip| write!(w, "0x{ip:x}"))
    }

    /// [`Self::vmallocinfo`], with `name` writing the foreign (C) code address an area was
    /// made from (`Platform::foreign_caller`) as the kernel's `%pS` does (`func+0x4c/0x90
    /// [module]`); it runs under the vmap lock, as `w` does.
    pub fn vmallocinfo_naming(
        &self,
        w: &mut dyn Write,
        name: &dyn Fn(&mut dyn Write, usize) -> fmt::Result,
    ) -> fmt::Result {
        let space = self.space.lock();
        let mut result = Ok(());
        space.busy.for_each(&space.pool, &mut |i| {
            let n = space.pool.get(i);
            if n.flags & (VM_UNINITIALIZED | super::VM_PARKED) != 0 {
                return true;
            }
            if n.flags & super::VM_RAM != 0 {
                // No `vm_struct`: the `VMAP_RAM` line (a standalone area or a vmap block).
                result = writeln!(w, "0x{:016x}-0x{:016x} {:>7} vm_map_ram", n.start, n.end, n.size());
                return result.is_ok();
            }
            result = (|| {
                write!(w, "0x{:016x}-0x{:016x} {:>7}", n.start, n.end, n.size())?;
                if n.caller_ip != 0 {
                    w.write_char(' ')?;
                    name(w, n.caller_ip)?;
                } else if let Some(caller) = n.caller {
                    write!(w, " {caller}")?;
                }
                // `nr_pages` is set for vmalloc areas (and vmap areas that own their pages), not
                // for a `vmap` or `get_vm_area` whose caller passed `VM_ALLOC` (a label only).
                let owned = n.flags & (super::VM_VMALLOC | super::VM_MAP_PUT_PAGES) != 0;
                let nr = if owned { n.nr_pages() } else { 0 };
                if nr > 0 {
                    write!(w, " pages={nr}")?;
                }
                for (flag, word) in [
                    (VM_IOREMAP, " ioremap"),
                    (VM_SPARSE, " sparse"),
                    (VM_ALLOC, " vmalloc"),
                    (VM_MAP, " vmap"),
                    (VM_USERMAP, " user"),
                    (VM_DMA_COHERENT, " dma-coherent"),
                ] {
                    if n.flags & flag != 0 {
                        w.write_str(word)?;
                    }
                }
                if nr > 0 {
                    write!(w, " N0={nr}")?;
                }
                w.write_char('\n')
            })();
            result.is_ok()
        });
        result?;
        space.lazy.for_each(&space.pool, &mut |i| {
            let n = space.pool.get(i);
            result = writeln!(w, "0x{:016x}-0x{:016x} {:>7} unpurged vm_area", n.start, n.end, n.size());
            result.is_ok()
        });
        result?;
        // Cached areas are freed areas whose purge (unmap, page frees) is still pending too.
        space.busy.for_each(&space.pool, &mut |i| {
            let n = space.pool.get(i);
            if n.flags & super::VM_CACHED != 0 {
                result = writeln!(w, "0x{:016x}-0x{:016x} {:>7} unpurged vm_area", n.start, n.end, n.size());
            }
            result.is_ok()
        });
        result
    }

    /// Fills the vmalloc lines of `/proc/meminfo`: `VmallocTotal` (the range in kB) and
    /// `VmallocUsed` (pages backing vmalloc areas). `VmallocChunk` is 0, as since Linux 5.3.
    pub fn fill_meminfo(&self, extra: &mut MeminfoExtra) {
        extra.vmalloc_total_kb = self.total_bytes() / 1024;
        extra.vmalloc_used = self.nr_vmalloc_pages();
    }
}
