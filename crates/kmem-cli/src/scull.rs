//! The scull family of LDD3 chapter 8 (seed 002) as in-memory devices: data kept in quanta,
//! `qset` quanta per set, allocated on first write. `scullc` takes its quanta from a slab cache
//! (`kmem_cache_create("scullc", quantum, 0, SLAB_HWCACHE_ALIGN, NULL)`), `scullp` from whole
//! pages (`__get_free_pages(GFP_KERNEL, order)`), `scullv` from vmalloc. Reads and writes
//! follow `scull_read`/`scull_write`: one call moves at most to the end of the current quantum,
//! reads stop at the device size; `std::io::{Read, Write, Seek}` give the file semantics.
#![allow(unsafe_code)] // Copies into and out of the quanta, and freeing them.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ptr::NonNull;

use kmem::gfp::GFP_KERNEL;
use kmem::slab::{CacheArgs, CacheRef, flags::SLAB_HWCACHE_ALIGN};
use kmem::{Machine, PAGE_SIZE};

/// Where a device's quanta come from.
pub enum Store {
    /// A slab cache of quantum-sized objects (`scullc`).
    Cache(CacheRef),
    /// Blocks of `1 << order` pages (`scullp`).
    Pages(u32),
    /// vmalloc areas of `PAGE_SIZE << order` bytes (`scullv`).
    Vmalloc(u32),
}

/// The most quanta per set: a set's array of quantum pointers is at most 8 MiB.
pub const SCULL_MAX_QSET: usize = 1 << 20;

/// `scullv`'s orders are below this: a quantum is under 4 GiB (`PAGE_SIZE << 20`).
pub const SCULLV_MAX_ORDER: u32 = 20;

/// One scull device.
pub struct Scull {
    m: Machine,
    store: Store,
    quantum: usize,
    qset: usize,
    /// `data[set][i]`: the quanta, allocated on first write.
    data: Vec<Vec<Option<NonNull<u8>>>>,
    size: u64,
    pos: u64,
    /// Quanta allocated so far.
    pub quanta: usize,
}

impl Scull {
    /// `scullc` with its cache; the quantum is the cache's object size.
    pub fn scullc(m: &Machine, quantum: usize, qset: usize) -> Result<Scull, String> {
        Self::check_qset(qset)?;
        let cache = m
            .kmem_cache_create("scullc", quantum, &CacheArgs::default(), SLAB_HWCACHE_ALIGN)
            .map_err(|e| format!("kmem_cache_create(scullc): {e}"))?;
        Ok(Self::new(m, Store::Cache(cache), quantum, qset))
    }

    /// `scullp` with quanta of `1 << order` pages (`order` at most `MAX_PAGE_ORDER`, as
    /// `__get_free_pages` takes).
    pub fn scullp(m: &Machine, order: u32, qset: usize) -> Result<Scull, String> {
        Self::check_qset(qset)?;
        if order > kmem::MAX_PAGE_ORDER {
            return Err(format!("scullp: order {order} is above MAX_PAGE_ORDER ({})", kmem::MAX_PAGE_ORDER));
        }
        Ok(Self::new(m, Store::Pages(order), PAGE_SIZE << order, qset))
    }

    /// `scullv` with vmalloc quanta of `PAGE_SIZE << order` bytes (`order` below
    /// [`SCULLV_MAX_ORDER`]).
    pub fn scullv(m: &Machine, order: u32, qset: usize) -> Result<Scull, String> {
        Self::check_qset(qset)?;
        if order >= SCULLV_MAX_ORDER {
            return Err(format!("scullv: order {order} is not below {SCULLV_MAX_ORDER} (quanta of 4 GiB or more)"));
        }
        Ok(Self::new(m, Store::Vmalloc(order), PAGE_SIZE << order, qset))
    }

    /// A device needs at least one quantum per set (LDD3's `scull_qset` is never 0), and at
    /// most [`SCULL_MAX_QSET`] (a set's pointer array is allocated whole).
    fn check_qset(qset: usize) -> Result<(), String> {
        match qset {
            0 => Err("scull: qset must be at least 1".into()),
            q if q > SCULL_MAX_QSET => Err(format!("scull: qset {q} is above {SCULL_MAX_QSET}")),
            _ => Ok(()),
        }
    }

    fn new(m: &Machine, store: Store, quantum: usize, qset: usize) -> Scull {
        Scull { m: m.clone(), store, quantum, qset, data: Vec::new(), size: 0, pos: 0, quanta: 0 }
    }

    /// The quantum size.
    pub fn quantum(&self) -> usize {
        self.quantum
    }

    /// The slab cache of a `scullc` device.
    pub fn cache(&self) -> Option<CacheRef> {
        match self.store {
            Store::Cache(c) => Some(c),
            _ => None,
        }
    }

    /// Bytes stored.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn alloc_quantum(&self) -> io::Result<NonNull<u8>> {
        let p = match self.store {
            Store::Cache(c) => self.m.kmem_cache_alloc(c, GFP_KERNEL),
            Store::Pages(order) => self.m.get_free_pages(GFP_KERNEL, order),
            Store::Vmalloc(order) => self.m.vmalloc(PAGE_SIZE << order),
        }
        .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: A fresh quantum of `self.quantum` bytes (`memset(.., 0, quantum)`).
        unsafe { p.as_ptr().write_bytes(0, self.quantum) };
        Ok(p)
    }

    fn free_quantum(&self, p: NonNull<u8>) {
        match self.store {
            // SAFETY: Quanta come from this cache and are freed once (by `trim`).
            Store::Cache(c) => unsafe { self.m.kmem_cache_free(c, p.as_ptr()) },
            // SAFETY: The demo's own memory, freed once and unused afterwards.
            Store::Pages(order) => unsafe { self.m.free_pages_addr(p.as_ptr(), order) },
            // SAFETY: The demo's own memory, freed once and unused afterwards.
            Store::Vmalloc(_) => unsafe { self.m.vfree(p.as_ptr()) },
        }
    }

    /// `scull_trim`: frees every quantum; the device is empty afterwards.
    pub fn trim(&mut self) {
        for set in std::mem::take(&mut self.data) {
            for p in set.into_iter().flatten() {
                self.free_quantum(p);
            }
        }
        self.size = 0;
        self.pos = 0;
        self.quanta = 0;
    }

    /// `(set, quantum index, offset in quantum)` of a position.
    fn locate(&self, pos: u64) -> (usize, usize, usize) {
        let item = self.quantum as u64 * self.qset as u64;
        let rest = (pos % item) as usize;
        ((pos / item) as usize, rest / self.quantum, rest % self.quantum)
    }
}

impl Drop for Scull {
    fn drop(&mut self) {
        self.trim();
        if let Store::Cache(c) = self.store {
            // SAFETY: Every quantum went back in `trim`; the cache is not used again.
            let _ = unsafe { self.m.kmem_cache_destroy(c) };
        }
    }
}

impl Write for Scull {
    /// `scull_write`: up to the end of the current quantum.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (set, q, off) = self.locate(self.pos);
        while self.data.len() <= set {
            self.data.push(vec![None; self.qset]);
        }
        let quantum = match self.data[set][q] {
            Some(p) => p,
            None => {
                let p = self.alloc_quantum()?;
                self.data[set][q] = Some(p);
                self.quanta += 1;
                p
            }
        };
        let n = buf.len().min(self.quantum - off);
        // SAFETY: `off + n <= quantum` bytes of this quantum are ours.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), quantum.as_ptr().add(off), n) };
        self.pos += n as u64;
        self.size = self.size.max(self.pos);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Scull {
    /// `scull_read`: up to the end of the current quantum and of the data; a hole reads as 0
    /// bytes (end of file), as in scull.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size {
            return Ok(0);
        }
        let (set, q, off) = self.locate(self.pos);
        let Some(quantum) = self.data.get(set).and_then(|s| s[q]) else { return Ok(0) };
        let n = buf.len().min(self.quantum - off).min((self.size - self.pos) as usize);
        // SAFETY: `off + n <= quantum` bytes of this quantum are ours.
        unsafe { std::ptr::copy_nonoverlapping(quantum.as_ptr().add(off), buf.as_mut_ptr(), n) };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Scull {
    /// `scull_llseek`: SEEK_SET, SEEK_CUR, SEEK_END; a negative position is `EINVAL`.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "EINVAL: negative position"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmem::Profile;

    fn machine() -> Machine {
        Machine::builder().profile(Profile::I386).mem_bytes(64 << 20).kswapd(false).build().unwrap()
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn every_store_keeps_data_across_quanta_and_seeks() {
        let m = machine();
        let free0 = m.total_free();
        for mut dev in
            [Scull::scullc(&m, 4000, 4).unwrap(), Scull::scullp(&m, 0, 4).unwrap(), Scull::scullv(&m, 1, 4).unwrap()]
        {
            let data = pattern(3 * dev.quantum() * 4 + 123); // spans several qsets
            assert_eq!(dev.write(&data).unwrap(), dev.quantum(), "one write stops at the quantum end");
            dev.write_all(&data[dev.quantum()..]).unwrap();
            assert_eq!(dev.size(), data.len() as u64);
            dev.seek(SeekFrom::Start(0)).unwrap();
            let mut back = Vec::new();
            dev.read_to_end(&mut back).unwrap();
            assert_eq!(back, data);
            // Seek into the middle, overwrite across a quantum boundary, read it back.
            let at = dev.quantum() as u64 - 5;
            dev.seek(SeekFrom::Start(at)).unwrap();
            dev.write_all(b"0123456789").unwrap();
            dev.seek(SeekFrom::Current(-10)).unwrap();
            let mut ten = [0u8; 10];
            dev.read_exact(&mut ten).unwrap();
            assert_eq!(&ten, b"0123456789");
            assert_eq!(dev.seek(SeekFrom::End(-1)).unwrap(), data.len() as u64 - 1);
            assert!(dev.seek(SeekFrom::Current(-(data.len() as i64) - 5)).is_err(), "negative: EINVAL");
            assert!(dev.quanta >= 12);
        }
        // scullv's areas wait in vmalloc's frame cache until reclaimed.
        m.vm_reclaim_and_purge();
        m.drain_local_pages();
        // Every quantum went back; what stays is the slab descriptor page (counted in the slab
        // metadata) and vmalloc's first 16 KiB block of tree nodes, both kept for reuse.
        let (_, slab_meta) = m.slab_pages();
        assert_eq!(m.total_free() + slab_meta + 4, free0);
    }

    /// Bad device parameters are refused with a clear error, never a panic.
    #[test]
    fn bad_parameters_are_refused() {
        let m = machine();
        for err in [Scull::scullc(&m, 4000, 0).err(), Scull::scullp(&m, 0, 0).err(), Scull::scullv(&m, 0, 0).err()] {
            assert_eq!(err.as_deref(), Some("scull: qset must be at least 1"));
        }
        assert!(Scull::scullp(&m, 0, SCULL_MAX_QSET + 1).err().expect("refused").contains("is above"));
        assert!(Scull::scullv(&m, 0, usize::MAX).is_err());
        assert!(
            Scull::scullp(&m, kmem::MAX_PAGE_ORDER + 1, 4).err().expect("refused").contains("above MAX_PAGE_ORDER")
        );
        assert!(Scull::scullp(&m, u32::MAX, 4).is_err());
        assert!(Scull::scullv(&m, SCULLV_MAX_ORDER, 4).err().expect("refused").contains("not below 20"));
        assert!(Scull::scullv(&m, u32::MAX, 4).is_err());
        assert!(Scull::scullc(&m, 0, 4).err().expect("refused").starts_with("kmem_cache_create(scullc)"));
        // The largest accepted scullp order works.
        let mut dev = Scull::scullp(&m, kmem::MAX_PAGE_ORDER, 1).unwrap();
        dev.write_all(b"x").unwrap();
        assert_eq!(dev.quanta, 1);
    }

    #[test]
    fn scullc_quanta_come_from_its_cache_and_trim_returns_them() {
        let m = machine();
        let mut dev = Scull::scullc(&m, 4000, 8).unwrap();
        dev.write_all(&pattern(40_000)).unwrap();
        let info = m.cache_info(dev.cache().unwrap());
        assert_eq!(dev.quanta, 10);
        assert!(info.active_objs >= 10 && info.num_objs >= info.active_objs);
        dev.trim();
        assert_eq!(m.kmem_cache_shrink(dev.cache().unwrap()), 0, "all quanta back: no slab left");
    }
}
