//! Reports of slab misuse in the kernel's words (SEMANTICS §3.8): `slab_bug` headers, the
//! wrong-cache warning (SL-18), double frees (SL-16), pointers that are not objects.
//!
//! Every report goes to the machine's log, each time (the kernel rate-limits none of them: a
//! misuse in a loop is reported in a loop), and counts in [`super::Slabs::errors`] so tests
//! can expect an exact number of reports (the `slab_errors` counter of `slub_kunit`). The
//! operation that was reported is never carried out.

use core::fmt;
use core::panic::Location;
use core::sync::atomic::Ordering::Relaxed;

use super::cache::Cache;
use crate::kmem::Kmem;
use crate::platform::{Level, Platform};

impl<P: Platform> Kmem<P> {
    /// Counts one report (each is printed: the kernel's `slab_bug`, `slab_err`, `object_err`
    /// and `slab_fix` are not rate-limited).
    pub(crate) fn count_slab_report(&self) {
        self.slabs.errors.fetch_add(1, Relaxed);
    }

    /// `slab_bug`: the `BUG <cache> (Not tainted): <message>` header block.
    pub(crate) fn slab_bug(&self, s: &Cache, msg: fmt::Arguments<'_>) {
        let eq = "=============================================================================";
        let dash = "-----------------------------------------------------------------------------";
        // `pr_err("---…---\n\n")`: the dashes, then a blank line.
        self.platform().log(Level::Err, format_args!("{eq}\nBUG {} (Not tainted): {msg}\n{dash}\n\n", s.name()));
    }

    /// `kmem_cache_free(s, p)` with `p` from another cache (`cache_from_obj`).
    #[cold]
    pub(crate) fn report_wrong_cache(&self, given: &Cache, real: &Cache, caller: &Location<'_>) {
        self.count_slab_report();
        self.platform().log(
            Level::Warning,
            format_args!(
                "WARNING: at {caller} cache_from_obj\ncache_from_obj: Wrong slab cache. {} but object is from {}",
                given.name(),
                real.name()
            ),
        );
        self.platform().dump_stack(caller);
    }

    /// A free of a pointer inside a slab that is not the start of an object.
    #[cold]
    pub(crate) fn report_invalid_object(&self, s: &Cache, obj: *mut u8, caller: &Location<'_>) {
        self.count_slab_report();
        self.slab_bug(s, format_args!("Invalid object pointer 0x{:x}", obj as usize));
        self.platform().log(Level::Err, format_args!("FIX {}: Object at 0x{:x} not freed", s.name(), obj as usize));
        self.platform().dump_stack(caller);
    }

    /// A call that uses `obj` as a live object of `s` (`what`: `krealloc`, `ksize`,
    /// `kfree_sensitive`) when it is not one: not the start of an object, or just freed. The
    /// call does nothing to it.
    #[cold]
    pub(crate) fn report_not_live(&self, s: &Cache, obj: *const u8, freed: bool, what: &str, caller: &Location<'_>) {
        self.count_slab_report();
        if freed {
            self.slab_bug(s, format_args!("Object 0x{:x} already free", obj as usize));
        } else {
            self.slab_bug(s, format_args!("Invalid object pointer 0x{:x}", obj as usize));
        }
        self.platform()
            .log(Level::Err, format_args!("FIX {}: {what} of 0x{:x} ignored, nothing written", s.name(), obj as usize));
        self.platform().dump_stack(caller);
    }

    /// A free of the object that is already the first free object (`BUG_ON(object == fp)` in
    /// `set_freepointer`). kmem reports it and keeps the object out, instead of crashing.
    #[cold]
    pub(crate) fn report_double_free(&self, s: &Cache, obj: *mut u8, caller: &Location<'_>) {
        self.count_slab_report();
        self.platform().log(
            Level::Emerg,
            format_args!(
                "kernel BUG at mm/slub.c: set_freepointer: object == fp\ndouble free of object 0x{:x} in cache {}; the free is ignored\n  at {caller}",
                obj as usize,
                s.name()
            ),
        );
        self.platform().dump_stack(caller);
    }

    /// A free of an address that is in no slab (and is not a large kmalloc).
    #[cold]
    pub(crate) fn report_not_slab(&self, obj: *const u8, what: &str, caller: &Location<'_>) {
        self.count_slab_report();
        let pfn = self.virt_to_pfn(obj);
        let detail = match pfn {
            Some(_) if let Some((start, order)) = self.large_kmalloc_containing(obj) => {
                if start == obj as usize {
                    Detail::Large { order }
                } else {
                    Detail::InsideLarge { start, order }
                }
            }
            Some(pfn) => {
                let page = self.memmap().get(pfn);
                let (flags, refs) = page.map_or((0, 0), |p| (p.flags(), p.refcount()));
                Detail::Page { pfn, flags, refs }
            }
            None if self.slabs.vmalloc.contains(&(obj as usize)) => Detail::Vmalloc,
            None => Detail::Outside,
        };
        self.platform().log(
            Level::Warning,
            format_args!(
                "WARNING: at {caller} {what}\n{what}: object pointer: 0x{:x}: {detail}; ignored",
                obj as usize
            ),
        );
        self.platform().dump_stack(caller);
    }
}

/// Why a pointer is not an object, for [`Kmem::report_not_slab`].
enum Detail {
    /// Neither the direct map nor the vmalloc range.
    Outside,
    /// In the vmalloc range: memory from `vmalloc`/`kvmalloc`, which `vfree`/`kvfree` free.
    Vmalloc,
    /// The start of a live large kmalloc of this order: whole pages, no slab (only
    /// `kmem_cache_free` reports it; `virt_to_cache`'s `Object is not a Slab page!`).
    Large {
        order: u32,
    },
    /// Inside (not at the start of) the live large kmalloc at `start` of this order.
    InsideLarge {
        start: usize,
        order: u32,
    },
    Page {
        pfn: usize,
        flags: u32,
        refs: i32,
    },
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Detail::Outside => f.write_str("not a kmem address (outside the direct map)"),
            Detail::Vmalloc => {
                f.write_str("Not a kmalloc allocation (a vmalloc address: free it with vfree() or kvfree())")
            }
            Detail::Large { order } => write!(
                f,
                "Object is not a Slab page! (a large kmalloc, order {order}, {} bytes: free it with kfree())",
                crate::order::PAGE_SIZE << order
            ),
            Detail::InsideLarge { start, order } => write!(
                f,
                "Not the start of a kmalloc allocation: inside the large kmalloc at 0x{start:x} (order {order}, {} bytes)",
                crate::order::PAGE_SIZE << order
            ),
            Detail::Page { pfn, flags, refs } if *refs <= 0 => {
                write!(f, "Not a kmalloc allocation (page:pfn:{pfn:05x} is free, flags:{flags:#x})")
            }
            Detail::Page { pfn, flags, refs } => {
                write!(f, "Not a kmalloc allocation (page:pfn:{pfn:05x} refcount:{refs} flags:{flags:#x})")
            }
        }
    }
}
