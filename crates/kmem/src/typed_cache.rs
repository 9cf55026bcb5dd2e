//! Typed slab caches: [`KmemCache<T>`], a `kmem_cache_create` whose objects are `T`s built by
//! a constructor closure, and [`CacheBox<T>`], the owning handle of one object.
//!
//! An object is a `Slot<T>`: the value and a state byte. The core's constructor hook builds a
//! `T` in every slot of a new slab (once per slot per slab lifetime, SL-7); a handle gives the
//! object out and, when dropped, frees it back *without* dropping the `T`, so the next
//! allocation may get it back as it was left (the kernel's constructed-object contract). The
//! core's destructor hook drops the `T` in place when the slab's pages go back to the page
//! allocator (shrink, reclaim, a thread's exit, destroy).
//!
//! # Lifetime
//! The cache structure lives in an `Arc` shared by every [`KmemCache`] clone and every handle:
//! the cache cannot go while an object is out. When the last reference goes, the cache is
//! destroyed, and since no handle is left no object is out: destroy has nothing to report
//! (objects allocated through the raw handle and never freed are reported, SL-12, and the
//! cache and its hooks are then kept). A handle passed to `mem::forget` keeps its reference
//! forever, so its cache is leaked (never destroyed) rather than destroyed under the object.
//!
//! The last reference may go *inside* a slab operation of the cache itself: a `T` whose `Drop`
//! drops a handle (`struct Node { next: Option<CacheBox<Node>> }`) runs in the destructor hook
//! while the core frees one of the cache's slabs — in reclaim, at a thread's exit, in a grace
//! period, in a shrink or free through the raw handle — and a constructor closure may drop the
//! last handle while a slab is being filled (an allocation through the raw handle from the
//! `unsafe` [`KmemCache::cache_ref`]: typed caches are unlisted, so `Kmem::find_cache` and
//! `for_each_cache` never hand one out). The destroy then must not free the cache under the
//! operation, whose loop still uses the cache, its hooks and its slabs. The core handles it (`kmem_core`'s
//! `slab/lifetime.rs`): operations that may run hooks hold the cache; `kmem_cache_destroy`
//! drops the last reference at once (the name disappears from `slabinfo`) and
//! leaves the teardown to the last operation holding the cache when it ends — or, for an
//! allocation or free, to the next maintenance pass (cache creation or destroy, shrink,
//! reclaim). Why there and not here: the hook may have been entered from reclaim triggered by
//! an unrelated allocation, from a thread's exit or from a raw-handle call, with no typed
//! operation up the stack to hand the destroy to, and the operations that must end first are
//! the core's. The hooks' context (`Hooks`: the constructor closure) must live until the
//! teardown has run every destructor, so the drop asks the core to free it once the cache is
//! gone (`release_hooks`, through `kmem_cache_destroy_notify`) — at once or later, from
//! whichever thread ends the teardown; never if the cache is kept for leaked objects.
//!
//! The raw handle ([`KmemCache::cache_ref`]) is `unsafe`: a call through it in progress on
//! another thread when the last handle goes is a use the core cannot see.
//!
//! # Panics in the constructor and destructor
//! Hooks run inside the slab allocator, where unwinding must not go. A constructor panic
//! during slab population is caught and leaves that slot *unconstructed* (state byte 0); the
//! allocation that gets such a slot runs the constructor itself, outside the allocator, and a
//! panic there frees the object back and propagates to the caller of [`KmemCache::alloc`]. A
//! panic in `T`'s `Drop` inside the destructor hook is caught, logged (`kmem_cache <name>:
//! destructor panicked`) and the value counts as dropped.
//!
//! # Re-entry
//! The constructor runs while a slab is being made (no slab lock held) and may allocate, but
//! not from the same cache: such an allocation is refused (`Err`, reported once per cache), as it
//! would need a new slab whose constructor allocates again, until the stack overflows. It may
//! drop handles, the last one included. `T`'s `Drop` runs with
//! no slab lock held (the core releases the cache list lock around every cache it flushes or
//! shrinks): it may allocate, free, and create or destroy caches — drop the last handle of
//! this cache or of another. Both may run on any thread, in reclaim or at a thread's exit.
//!
//! # Invariants and locks
//! - `Shared` is dropped exactly once, when no clone and no handle is left; it then gives the
//!   cache up (`kmem_cache_destroy_notify`) and never touches it again.
//! - `Hooks` lives from creation until the core's `release_hooks` call after the cache's
//!   memory is gone (forever if the cache is kept): every hook call finds it.
//! - A `Slot` is touched only by its owner (see `Slot`).
//!
//! This layer takes no lock of its own; the hooks run under none of the slab allocator's.

use std::any::type_name;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use kmem_core::gfp::__GFP_ZERO;
use kmem_core::platform::Level;
use kmem_core::slab::flags::SlabFlags;
use kmem_core::slab::{CacheArgs, CacheInfo, CacheRef, CreateError, ObjFn};
use kmem_core::{AllocError, Gfp};

use crate::Machine;
use crate::machine::Inner;

/// `Slot::state` when `value` holds no `T` (its constructor panicked).
const EMPTY: u8 = 0;
/// `Slot::state` when `value` holds a `T`.
const FULL: u8 = 1;

/// One object of a typed cache.
///
/// # Invariants
/// `value` holds a `T` exactly when `state == FULL`. Only the object's owner touches the slot:
/// the constructor hook (new slab, nobody else sees it), the handle (allocated), the
/// destructor hook (slab being freed).
#[repr(C)]
struct Slot<T> {
    value: MaybeUninit<T>,
    state: u8,
}

/// What the hooks' `ctx` points to. Lives until the core has torn the cache down and calls
/// [`release_hooks`] (forever if the teardown keeps the cache for leaked objects).
struct Hooks<T> {
    ctor: Box<dyn Fn() -> T + Send + Sync>,
    /// The refusal of an allocation from inside this cache's own constructor was reported.
    self_alloc_reported: AtomicBool,
    /// For reports only. Weak: a teardown still owed (an orphan, RCU slabs waiting for a grace
    /// period) must not keep the whole machine alive after its last user handle is gone.
    machine: Weak<Inner>,
    name: String,
}

/// The core's constructor: builds a `T` in `obj`, or marks it empty if the closure panics.
///
/// # Safety
/// `ctx` is the cache's live `Hooks<T>` and `obj` a new object of the cache (a `Slot<T>`,
/// aligned, unshared).
unsafe fn ctor_hook<T>(ctx: *const (), obj: *mut u8) {
    // SAFETY: The cache was created with this `ctx`, which lives until the core releases it
    // once the cache is gone (`release_hooks`), after every hook has run.
    let hooks = unsafe { &*ctx.cast::<Hooks<T>>() };
    let slot = obj.cast::<Slot<T>>();
    let made = panic::catch_unwind(AssertUnwindSafe(|| in_ctor_of(ctx, || (hooks.ctor)())));
    // SAFETY: `obj` is an unshared, aligned `Slot<T>` (caller); writing needs no prior value.
    unsafe {
        match made {
            Ok(value) => {
                (&raw mut (*slot).value).cast::<T>().write(value);
                // INVARIANT: A `T` was just written.
                (&raw mut (*slot).state).write(FULL);
            }
            Err(payload) => {
                // INVARIANT: No `T`; the allocation that gets this slot constructs one.
                (&raw mut (*slot).state).write(EMPTY);
                crate::panics::discard(payload);
            }
        }
    }
}

/// One constructor call in progress on this thread: the cache's `Hooks` address, and the
/// frame of the call it is nested in (a constructor may allocate from other typed caches).
struct CtorFrame {
    hooks: usize,
    outer: *const CtorFrame,
}

thread_local! {
    /// The innermost constructor call running on this thread (null: none). Frames live on the
    /// stack of [`in_ctor_of`], which unlinks its own before it returns or unwinds: no
    /// allocation, as this runs inside the slab allocator (which may be the global allocator).
    static IN_CTOR: Cell<*const CtorFrame> = const { Cell::new(ptr::null()) };
}

/// Runs the constructor `f` of the cache whose hooks are at `ctx`, marked as running on this
/// thread for [`in_own_ctor`].
fn in_ctor_of<R>(ctx: *const (), f: impl FnOnce() -> R) -> R {
    struct Unlink(*const CtorFrame);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = IN_CTOR.try_with(|c| c.set(self.0));
        }
    }
    let outer = IN_CTOR.try_with(Cell::get).unwrap_or(ptr::null());
    let frame = CtorFrame { hooks: ctx as usize, outer };
    let _unlink = Unlink(outer);
    let _ = IN_CTOR.try_with(|c| c.set(&raw const frame));
    f()
}

/// Whether this thread is inside a constructor call of the cache whose hooks are at `hooks`.
fn in_own_ctor(hooks: usize) -> bool {
    let mut frame = IN_CTOR.try_with(Cell::get).unwrap_or(ptr::null());
    while !frame.is_null() {
        // SAFETY: Linked frames live on this thread's stack until `in_ctor_of` unlinks them,
        // which it does before its frame goes (also on unwind).
        let f = unsafe { &*frame };
        if f.hooks == hooks {
            return true;
        }
        frame = f.outer;
    }
    false
}

/// The core's destructor: drops the `T` of `obj`, if it holds one.
///
/// # Safety
/// `ctx` is the cache's live `Hooks<T>` and `obj` an object of the cache whose slab is being
/// freed (constructed by [`ctor_hook`], unshared).
unsafe fn dtor_hook<T>(ctx: *const (), obj: *mut u8) {
    // SAFETY: As in `ctor_hook`.
    let hooks = unsafe { &*ctx.cast::<Hooks<T>>() };
    let slot = obj.cast::<Slot<T>>();
    // SAFETY: The slot is ours (caller) and its state byte was written by `ctor_hook`.
    if unsafe { (*slot).state } != FULL {
        return;
    }
    // SAFETY: As above; the slot is marked empty before the value goes.
    let value = unsafe {
        (&raw mut (*slot).state).write(EMPTY);
        (&raw mut (*slot).value).cast::<T>()
    };
    // SAFETY: The slot held a `T` (state was `FULL`), dropped exactly once here.
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| unsafe { value.drop_in_place() }));
    if let Err(payload) = dropped {
        crate::panics::discard(payload);
        // The machine is alive: a hook runs inside one of its operations, whose caller holds it.
        if let Some(inner) = hooks.machine.upgrade() {
            Machine { inner }.printk(
                Level::Err,
                &format!(
                    "kmem_cache {}: destructor of {} panicked; the value counts as dropped\n",
                    hooks.name,
                    type_name::<T>()
                ),
            );
        }
    }
}

/// The core's release of a destroyed cache: frees its hooks once no hook can run any more.
///
/// # Safety
/// `ctx` is the `Box::leak`ed `Hooks<T>` of a cache whose memory the core has just freed; the
/// core calls this once.
unsafe fn release_hooks<T>(ctx: *const (), _obj: *mut u8) {
    // SAFETY: The cache is gone (caller), so nothing else uses `ctx`, which came from a `Box`.
    let hooks = unsafe { Box::from_raw(ctx.cast::<Hooks<T>>().cast_mut()) };
    // The constructor closure's captures run arbitrary `Drop`s; the core must not unwind.
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(hooks))) {
        crate::panics::discard(payload);
    }
}

/// The cache and what it needs; destroyed when the last [`KmemCache`] or [`CacheBox`] goes.
struct Shared<T> {
    machine: Machine,
    cache: CacheRef,
    hooks: NonNull<Hooks<T>>,
    _owns: PhantomData<T>,
}

// SAFETY: The cache hands `T`s to whichever thread allocates and drops them on whichever
// thread frees a slab, so `T: Send` is all the sharing needs; `Hooks` holds `Send + Sync`
// parts only and is read-only after creation.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: As above: `&Shared` only allocates and frees, which the slab allocator synchronises.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: `release_hooks` frees `hooks` (made by `Box::leak`) once, from any thread:
        // `Hooks` is `Send`; the core calls it once, with a null object (see below).
        let release = unsafe { ObjFn::new(release_hooks::<T>, self.hooks.as_ptr().cast_const().cast::<()>()) };
        // SAFETY: This is the last reference: every handle holds one, so no object is out, and
        // nothing of ours uses `cache` afterwards (raw-handle users promised, `cache_ref`). If a
        // hook of this cache is running up the stack (this drop comes from a `T`'s `Drop` or
        // from the constructor), the core leaves the teardown to the operation running it.
        // `release_hooks` frees `hooks` once the cache is gone, from any thread: `Hooks` is
        // `Send`. Objects allocated through the raw handle and never freed make the teardown
        // keep the cache (SL-12); `release` then never runs and the hooks stay with it.
        let _ = unsafe { self.machine.kmem_cache_destroy_notify(self.cache, release) };
    }
}

/// A slab cache of `T`s on a [`Machine`]: `kmem_cache_create` with a constructor closure.
/// Clones share the cache; it is destroyed when the last clone and the last [`CacheBox`] go.
///
/// # Examples
/// ```
/// use kmem::gfp::GFP_KERNEL;
/// use kmem::slab::flags::SLAB_HWCACHE_ALIGN;
/// use kmem::KmemCache;
///
/// let m = kmem::Machine::builder().mem_bytes(16 << 20).kswapd(false).build()?;
/// let cache = KmemCache::new(&m, "inode_cache", SLAB_HWCACHE_ALIGN, || vec![0u32; 4])?;
/// let mut a = cache.alloc(GFP_KERNEL)?;
/// a[1] = 7;
/// assert_eq!(a.len(), 4);
/// drop(a); // Freed, still holding `[0, 7, 0, 0]` for the next allocation that gets it.
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KmemCache<T: Send + 'static> {
    shared: Arc<Shared<T>>,
}

impl<T: Send + 'static> Clone for KmemCache<T> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<T: Send + 'static> KmemCache<T> {
    /// `kmem_cache_create(name, size_of::<T>(), align_of::<T>(), flags, ctor)`: `ctor` runs once
    /// per object slot each time a slab is made.
    ///
    /// # Errors
    /// As [`kmem_core::Kmem::kmem_cache_create`]: invalid flags, a `T` too large or too aligned
    /// for a slab, or no memory.
    ///
    /// # Panics
    /// With `SLAB_PANIC`, when creation fails.
    #[track_caller]
    pub fn new(
        machine: &Machine,
        name: &str,
        flags: SlabFlags,
        ctor: impl Fn() -> T + Send + Sync + 'static,
    ) -> Result<Self, CreateError> {
        let hooks = Box::new(Hooks {
            ctor: Box::new(ctor),
            self_alloc_reported: AtomicBool::new(false),
            machine: Arc::downgrade(&machine.inner),
            name: name.to_owned(),
        });
        let hooks = NonNull::from(Box::leak(hooks));
        let ctx = hooks.as_ptr().cast_const().cast::<()>();
        let args = CacheArgs {
            align: align_of::<Slot<T>>(),
            // SAFETY: The hooks run the closures in `Hooks` (`Send + Sync`, kept until the cache
            // is gone: `release_hooks`) on objects of this cache, from any thread; a panic in the
            // closure is caught there and never unwinds into the allocator.
            ctor: Some(unsafe { ObjFn::new(ctor_hook::<T>, ctx) }),
            // SAFETY: As above.
            dtor: Some(unsafe { ObjFn::new(dtor_hook::<T>, ctx) }),
            // Dropping the last handle destroys the cache from safe code: no lookup may hand a
            // raw handle to it that another thread could be using then.
            unlisted: true,
            ..CacheArgs::default()
        };
        match machine.kmem_cache_create(name, size_of::<Slot<T>>(), &args, flags) {
            Ok(cache) => {
                Ok(Self { shared: Arc::new(Shared { machine: machine.clone(), cache, hooks, _owns: PhantomData }) })
            }
            Err(e) => {
                // SAFETY: No cache was made, so nothing holds `ctx`; it came from `Box::leak`.
                drop(unsafe { Box::from_raw(hooks.as_ptr()) });
                Err(e)
            }
        }
    }

    /// A cache whose constructor is `T::default`.
    ///
    /// # Errors
    /// As [`Self::new`].
    #[track_caller]
    pub fn new_default(machine: &Machine, name: &str, flags: SlabFlags) -> Result<Self, CreateError>
    where
        T: Default,
    {
        Self::new(machine, name, flags, T::default)
    }

    /// `kmem_cache_alloc`: an object holding a `T` — new from the constructor, or as the last
    /// holder left it. `__GFP_ZERO` is ignored (it would overwrite a live `T`).
    ///
    /// # Errors
    /// No memory for a new slab within what `gfp` allows, or `failslab`; or a call from inside
    /// this cache's own constructor on this thread (reported once per cache).
    ///
    /// # Panics
    /// If the object's constructor had panicked while its slab was made and panics again now
    /// (the object goes back to the cache first).
    #[track_caller]
    pub fn alloc(&self, gfp: Gfp) -> Result<CacheBox<T>, AllocError> {
        if in_own_ctor(self.shared.hooks.as_ptr() as usize) {
            self.refuse_self_alloc();
            return Err(AllocError);
        }
        // SAFETY: `shared` keeps the cache alive (destroyed only when it goes), and it is a
        // cache of `shared.machine`, which made it.
        let obj =
            unsafe { self.shared.machine.kmem_cache_alloc_unchecked(self.shared.cache, gfp.difference(__GFP_ZERO)) }?;
        // Dropped by the unwind if the constructor panics below: the object goes back.
        let handle = CacheBox { cache: self.clone(), slot: obj.cast::<Slot<T>>() };
        // SAFETY: The object is ours; its state byte was written by `ctor_hook`.
        if unsafe { (*handle.slot.as_ptr()).state } != FULL {
            self.construct_late(handle.slot);
        }
        Ok(handle)
    }

    /// An allocation from inside this cache's own constructor: it would need a slab while one
    /// is being populated, and the constructor of that slab would allocate again, without end.
    /// Reported once per cache.
    #[cold]
    #[track_caller]
    fn refuse_self_alloc(&self) {
        // SAFETY: `hooks` lives as long as `shared`.
        let hooks = unsafe { self.shared.hooks.as_ref() };
        if !hooks.self_alloc_reported.swap(true, Relaxed) {
            self.shared.machine.printk(
                Level::Err,
                &format!(
                    "kmem_cache {}: the constructor allocates from its own cache (at {}); refused\n",
                    hooks.name,
                    std::panic::Location::caller()
                ),
            );
        }
    }

    /// Builds the `T` of a slot whose constructor panicked during slab population.
    #[cold]
    fn construct_late(&self, slot: NonNull<Slot<T>>) {
        // SAFETY: `hooks` lives as long as `shared`.
        let hooks = unsafe { self.shared.hooks.as_ref() };
        let value = in_ctor_of(ptr::from_ref(hooks).cast(), || (hooks.ctor)());
        // SAFETY: The slot is ours (allocated, not yet handed out) and holds no `T`.
        unsafe {
            (&raw mut (*slot.as_ptr()).value).cast::<T>().write(value);
            // INVARIANT: A `T` was just written.
            (&raw mut (*slot.as_ptr()).state).write(FULL);
        }
    }

    /// `kmem_cache_shrink`: frees every empty slab (dropping its `T`s); 0 if the cache holds
    /// no slab any more.
    pub fn shrink(&self) -> i32 {
        self.shared.machine.kmem_cache_shrink(self.shared.cache)
    }

    /// The cache's statistics.
    pub fn info(&self) -> CacheInfo {
        self.shared.machine.cache_info(self.shared.cache)
    }

    /// Objects per slab.
    pub fn objects_per_slab(&self) -> usize {
        // A cache `self` keeps alive is live.
        self.shared.machine.cache(self.shared.cache).map_or(0, |c| c.objects_per_slab())
    }

    /// The raw cache (for `slabinfo`, validation, …). Objects allocated through it directly
    /// are `Slot`s, not `T`s.
    ///
    /// # Safety
    /// The cache is destroyed when the last [`KmemCache`] clone and [`CacheBox`] go, and the
    /// slab allocator cannot see a call through the raw handle that is in progress then. So no
    /// call through it may be running on another thread when they go; and a `&Cache` from
    /// [`kmem_core::Kmem::cache`] must not be used after they are gone. (A constructor or `T`'s
    /// `Drop` may drop the last of them inside a call through the handle on this thread: the
    /// teardown waits for that call.) After they are gone the handle is dead: calls that check
    /// it report and refuse it, and objects allocated through it must not be freed to it.
    pub unsafe fn cache_ref(&self) -> CacheRef {
        self.shared.cache
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        // A cache `self` keeps alive is live.
        self.shared.machine.cache_name(self.shared.cache).unwrap_or_default()
    }

    /// The machine the cache lives on.
    pub fn machine(&self) -> &Machine {
        &self.shared.machine
    }
}

impl<T: Send + 'static> fmt::Debug for KmemCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmemCache").field("name", &self.name()).field("type", &type_name::<T>()).finish()
    }
}

/// One object of a [`KmemCache`]: derefs to its `T`; dropping it frees the object to the cache
/// (the `T` stays constructed in it; the cache's destructor drops it with the slab).
pub struct CacheBox<T: Send + 'static> {
    cache: KmemCache<T>,
    slot: NonNull<Slot<T>>,
}

// SAFETY: A handle owns its object like a `Box` owns its value; the cache is `Send + Sync`.
unsafe impl<T: Send + 'static> Send for CacheBox<T> {}
// SAFETY: Shared access to the handle only gives `&T`.
unsafe impl<T: Send + Sync + 'static> Sync for CacheBox<T> {}

impl<T: Send + 'static> CacheBox<T> {
    /// The cache the object belongs to.
    pub fn cache(this: &Self) -> &KmemCache<T> {
        &this.cache
    }

    /// The object's address (a direct-map address of the machine).
    pub fn as_ptr(this: &Self) -> NonNull<T> {
        this.slot.cast()
    }
}

impl<T: Send + 'static> Deref for CacheBox<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: A handed-out slot holds a `T` (`alloc` checked `FULL`), owned by this handle.
        unsafe { (*self.slot.as_ptr()).value.assume_init_ref() }
    }
}

impl<T: Send + 'static> DerefMut for CacheBox<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: As in `deref`, and `&mut self` is exclusive.
        unsafe { (*self.slot.as_ptr()).value.assume_init_mut() }
    }
}

impl<T: Send + 'static> Drop for CacheBox<T> {
    #[inline]
    fn drop(&mut self) {
        let shared = &self.cache.shared;
        // SAFETY: The object came from this cache and this handle was its only user.
        unsafe { shared.machine.kmem_cache_free(shared.cache, self.slot.as_ptr().cast()) };
    }
}

impl<T: Send + fmt::Debug + 'static> fmt::Debug for CacheBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
