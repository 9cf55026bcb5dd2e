//! The `/proc` texts of a machine: buddyinfo, pagetypeinfo, zoneinfo, meminfo (with the slab
//! lines), vmstat and slabinfo.
//!
//! The texts are written while kmem holds its locks (zone locks, the cache list lock), so their
//! `String`s come from the system heap even when [`crate::KmemAlloc`] is the global allocator.

use kmem_core::proc;

use crate::Machine;

impl Machine {
    fn meminfo_extra(&self) -> proc::MeminfoExtra {
        let (slab_reclaimable, slab_unreclaimable) = self.slab_pages();
        let mut extra = proc::MeminfoExtra { slab_reclaimable, slab_unreclaimable, ..proc::MeminfoExtra::default() };
        self.inner.vm.fill_meminfo(&mut extra);
        extra
    }

    /// `/proc/buddyinfo`.
    pub fn buddyinfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = proc::buddyinfo(self.pages(), &mut s);
        s
    }

    /// `/proc/pagetypeinfo`.
    pub fn pagetypeinfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = proc::pagetypeinfo(self.pages(), &mut s);
        s
    }

    /// `/proc/zoneinfo`.
    pub fn zoneinfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = proc::zoneinfo(self.pages(), &self.meminfo_extra(), &mut s);
        s
    }

    /// `/proc/meminfo`, with `Slab`, `SReclaimable` and `SUnreclaim` from the slab allocator
    /// and `VmallocTotal`/`VmallocUsed` from vmalloc.
    pub fn meminfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = proc::meminfo(self.pages(), &self.meminfo_extra(), &mut s);
        s
    }

    /// `/proc/vmstat`: the counters kmem keeps, in the kernel's names and order
    /// (`kmem_core::proc::vmstat`).
    pub fn vmstat(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = proc::vmstat(self.pages(), &self.meminfo_extra(), &mut s);
        s
    }

    /// `/proc/slabinfo` (SL-17).
    pub fn slabinfo(&self) -> String {
        let _heap = crate::global_alloc::system_scope(); // Written under kmem locks.
        let mut s = String::new();
        let _ = kmem_core::Kmem::slabinfo(self, &mut s);
        s
    }

    /// A `/proc` text by name (`buddyinfo`, `zoneinfo`, `meminfo`, `pagetypeinfo`, `slabinfo`,
    /// `vmallocinfo`, `vmstat`).
    pub fn proc_read(&self, name: &str) -> Option<String> {
        Some(match name {
            "buddyinfo" => self.buddyinfo(),
            "zoneinfo" => self.zoneinfo(),
            "meminfo" => self.meminfo(),
            "pagetypeinfo" => self.pagetypeinfo(),
            "slabinfo" => self.slabinfo(),
            "vmallocinfo" => self.vmallocinfo(),
            "vmstat" => self.vmstat(),
            _ => return None,
        })
    }
}
