//! `kmem demo`: the book's examples (seed 000, chapter 5; seed 003), run on the machine and
//! printed from its kernel log exactly as the books show them, then `/proc` excerpts.
//!
//! Each example is the Rust transcription of a C module: what `insmod` runs (`init`) and, where
//! the book shows the output after `rmmod` too, the `exit` function. Text the C code writes with
//! `sprintf` into allocated memory is written into that memory and printed back from it.
#![allow(unsafe_code)] // Freeing the examples' own allocations; the mempool callbacks.

use std::ffi::c_void;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, Ordering};

use kmem::gfp::GFP_KERNEL;
use kmem::mempool::RawMempool;
use kmem::{Gfp, Level, Machine, PAGE_SIZE, get_order};

use crate::scull::Scull;

/// Every example: name and one line about it.
pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "basicmem",
        "seed 000, 2.6/basicmem: kmalloc 1024 and 32*PAGE_SIZE, vmalloc 33*PAGE_SIZE, __get_free_pages order 5",
    ),
    ("mempool", "seed 000, 2.6/mempool: a 4-element mempool over kmalloc, 4 allocs, frees, destroy"),
    ("mc", "seed 003, mc.c: cache \"MyselfCache\" (10240 bytes, SLAB_HWCACHE_ALIGN) and a 6-element slab mempool"),
    ("scullc", "seed 002, scullc: a scull device whose 4000-byte quanta come from the slab cache \"scullc\""),
    ("scullp", "seed 002 (LDD3 ch. 8), scullp: quanta of whole pages (order 0) from __get_free_pages"),
    ("scullv", "seed 002 (LDD3 ch. 8), scullv: quanta of 16 pages (order 4) from vmalloc"),
];

/// What `kmem demo` printed, and how it ended.
pub struct Outcome {
    /// The examples' logs, in order, up to and including a failing example's log so far, then
    /// the `/proc` excerpts (after a failure too: they show the state it left).
    pub text: String,
    /// The failing example's error, if one failed; the examples after it did not run.
    pub error: Option<String>,
}

/// Runs one example or all of them; nothing an example logged is lost when it fails.
pub fn run(m: &Machine, only: Option<&str>) -> Outcome {
    let mut text = String::new();
    let mut error = None;
    for (name, _) in EXAMPLES {
        if only.is_some_and(|o| o != *name) {
            continue;
        }
        m.log().clear();
        let result = match *name {
            "basicmem" => basicmem(m),
            "mempool" => mempool_example(m),
            "mc" => mc_example(m),
            "scullc" => Scull::scullc(m, 4000, 1000).and_then(|dev| scull_example(m, "scullc", dev, 10_000)),
            "scullp" => Scull::scullp(m, 0, 1000).and_then(|dev| scull_example(m, "scullp", dev, 10_000)),
            "scullv" => Scull::scullv(m, 4, 1000).and_then(|dev| scull_example(m, "scullv", dev, 200_000)),
            _ => unreachable!("every example is listed in EXAMPLES"),
        };
        text.push_str(&m.log().messages());
        if let Err(e) = result {
            error = Some(e);
            break;
        }
    }
    text.push('\n');
    proc_excerpts(m, &mut text);
    Outcome { text, error }
}

fn proc_excerpts(m: &Machine, out: &mut String) {
    out.push_str("# /proc/buddyinfo\n");
    out.push_str(&m.buddyinfo());
    out.push_str("# /proc/slabinfo (caches in use)\n");
    for (i, line) in m.slabinfo().lines().enumerate() {
        // The two header lines, then caches that hold slabs.
        if i < 2 || line.split_whitespace().nth(2).is_some_and(|num| num != "0") {
            let _ = writeln!(out, "{line}");
        }
    }
    out.push_str("# /proc/meminfo (excerpt)\n");
    const KEEP: [&str; 12] = [
        "MemTotal:",
        "MemFree:",
        "MemAvailable:",
        "HighTotal:",
        "HighFree:",
        "LowTotal:",
        "LowFree:",
        "Slab:",
        "SReclaimable:",
        "SUnreclaim:",
        "VmallocTotal:",
        "VmallocUsed:",
    ];
    for line in m.meminfo().lines().filter(|l| KEEP.iter().any(|p| l.starts_with(p))) {
        let _ = writeln!(out, "{line}");
    }
}

/// `sprintf(buff, text); printk(buff);`: the text goes into the allocation and is printed
/// from there.
fn sprintf_printk(m: &Machine, buff: std::ptr::NonNull<u8>, text: &str) -> Result<(), String> {
    // SAFETY: The demo's own buffer, used by nothing else meanwhile.
    unsafe { m.write_bytes(buff, text.as_bytes()) }.map_err(|e| format!("sprintf: {e}"))?;
    let mut back = vec![0u8; text.len()];
    // SAFETY: The demo's own buffer, used by nothing else meanwhile.
    unsafe { m.read_bytes(buff, &mut back) }.map_err(|e| format!("printk: {e}"))?;
    m.printk(Level::Warning, &String::from_utf8_lossy(&back));
    Ok(())
}

/// basicmem.c (2.6): `memtest_init`.
fn basicmem(m: &Machine) -> Result<(), String> {
    m.printk(Level::Warning, "Module Memory Test\n");
    // kmalloc_test
    m.printk(Level::Warning, "kmalloc test\n");
    if let Ok(buff) = m.kmalloc(1024, GFP_KERNEL) {
        sprintf_printk(m, buff, "test memory\n")?;
        // SAFETY: From kmalloc above, freed once.
        unsafe { m.kfree(buff.as_ptr()) };
    }
    if let Ok(buff) = m.kmalloc(32 * PAGE_SIZE, GFP_KERNEL) {
        m.printk(Level::Warning, "Big Memory Ok\n");
        // SAFETY: As above.
        unsafe { m.kfree(buff.as_ptr()) };
    }
    // vmalloc_test: vmalloc memory is mapped for real, so the text is written through the
    // vmalloc address itself.
    m.printk(Level::Warning, "vmalloc test\n");
    if let Ok(buff) = m.vmalloc(33 * PAGE_SIZE) {
        let text = b"vmalloc test ok\n";
        // SAFETY: `buff` maps 33 pages of ours; the text fits.
        let back = unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buff.as_ptr(), text.len());
            std::slice::from_raw_parts(buff.as_ptr(), text.len()).to_vec()
        };
        m.printk(Level::Warning, &String::from_utf8_lossy(&back));
        // SAFETY: The demo's own memory, freed once and unused afterwards.
        unsafe { m.vfree(buff.as_ptr()) };
    }
    // get_free_pages_test
    m.printk(Level::Warning, "get_free_pages test\n");
    let order = get_order(8192 * 10);
    if let Ok(buff) = m.get_free_pages(GFP_KERNEL, order) {
        sprintf_printk(m, buff, &format!("__get_free_pages test ok [{order}]\n"))?;
        // SAFETY: The demo's own memory, freed once and unused afterwards.
        unsafe { m.free_pages_addr(buff.as_ptr(), order) };
    }
    Ok(())
}

/// `TMemElement { int number; char string[128]; }`.
const ELEMENT_SIZE: usize = 4 + 128;

/// What the C example keeps in globals (`elementcount`), plus the machine.
struct PoolCtx {
    m: Machine,
    elementcount: AtomicI32,
}

/// `mempool_alloc_test`.
unsafe extern "C" fn mempool_alloc_test(gfp: Gfp, pool_data: *mut c_void) -> *mut c_void {
    // SAFETY: `pool_data` is the `PoolCtx` that outlives the pool (see `mempool_example`).
    let ctx = unsafe { &*pool_data.cast::<PoolCtx>() };
    ctx.m.printk(Level::Warning, "----> mempool_alloc_test\n");
    match ctx.m.kmalloc(ELEMENT_SIZE, gfp) {
        Ok(data) => {
            let number = ctx.elementcount.fetch_add(1, Ordering::Relaxed);
            // SAFETY: A fresh 132-byte object; `number` is its first field.
            unsafe { data.as_ptr().cast::<i32>().write_unaligned(number) };
            data.as_ptr().cast()
        }
        Err(_) => std::ptr::null_mut(),
    }
}

/// `mempool_free_test`.
unsafe extern "C" fn mempool_free_test(element: *mut c_void, pool_data: *mut c_void) {
    // SAFETY: As in `mempool_alloc_test`.
    let ctx = unsafe { &*pool_data.cast::<PoolCtx>() };
    ctx.m.printk(Level::Warning, "----> call mempool_free_test\n");
    if !element.is_null() {
        // SAFETY: Elements come from `mempool_alloc_test`'s kmalloc and are freed once.
        unsafe { ctx.m.kfree(element.cast()) };
    }
}

/// mempool.c (2.6): `mempool_init`, then `mempool_exit` (the book shows the output after
/// `rmmod` too).
fn mempool_example(m: &Machine) -> Result<(), String> {
    const MIN_ELEMENT: usize = 4;
    const TEST_ELEMENT: usize = 4;
    let ctx = PoolCtx { m: m.clone(), elementcount: AtomicI32::new(0) };
    m.printk(Level::Warning, "Module MEMPOOL Test\n");
    let mut element = [None; TEST_ELEMENT];
    m.printk(Level::Warning, "call mempool_create\n");
    // SAFETY: The callbacks only use `ctx`, which outlives the pool (dropped at the end of
    // this function, after the pool).
    let mp = unsafe {
        RawMempool::new(m, MIN_ELEMENT, mempool_alloc_test, mempool_free_test, (&raw const ctx).cast_mut().cast())
    }
    .map_err(|e| format!("mempool_create: {e}"))?;
    m.printk(Level::Warning, "mempool allocate\n");
    for slot in &mut element {
        *slot = mp.alloc(GFP_KERNEL);
        match *slot {
            None => m.printk(Level::Warning, "allocate fail\n"),
            Some(e) => {
                let e = e.cast::<u8>();
                let mut number = [0u8; 4];
                // SAFETY: The demo's own buffer, used by nothing else meanwhile.
                unsafe { m.read_bytes(e, &mut number) }.map_err(|err| format!("element: {err}"))?;
                // SAFETY: `string` is 4 bytes into the 132-byte element.
                let string = unsafe { e.add(4) };
                sprintf_printk(m, string, &format!("alloc data {}\n", i32::from_ne_bytes(number)))?;
            }
        }
    }
    m.printk(Level::Warning, "mempool free\n");
    for e in element.iter().flatten() {
        // SAFETY: Each element came from `mp` and is freed once.
        unsafe { mp.free(*e) };
    }
    m.printk(Level::Warning, "call mempool_destroy\n");
    drop(mp);
    // mempool_exit, at rmmod.
    m.printk(Level::Warning, "Module MEMPOOL Test End\n");
    Ok(())
}

/// A scull device in use: text written across quanta with `write`, read back whole and after
/// an `lseek`, the allocator's view of the quanta, then `scull_trim` and the module's cleanup.
fn scull_example(m: &Machine, name: &str, mut dev: Scull, bytes: usize) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let say = |text: String| m.printk(Level::Warning, &(text + "\n"));
    let line = b"scull: the quantum of data lives in kernel memory. ";
    let data: Vec<u8> = line.iter().copied().cycle().take(bytes).collect();
    say(format!("{name}: quantum {} bytes", dev.quantum()));
    dev.write_all(&data).map_err(|e| format!("{name} write: {e}"))?;
    say(format!("{name}: wrote {} bytes into {} quanta", dev.size(), dev.quanta));
    dev.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut back = Vec::new();
    dev.read_to_end(&mut back).map_err(|e| format!("{name} read: {e}"))?;
    say(format!("{name}: read back {} bytes: {}", back.len(), if back == data { "identical" } else { "DIFFERENT" }));
    let at = dev.quantum() as u64 - 8;
    dev.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    let mut piece = [0u8; 16];
    dev.read_exact(&mut piece).map_err(|e| format!("{name} read: {e}"))?;
    say(format!("{name}: lseek({at}) across a quantum boundary reads {:?}", String::from_utf8_lossy(&piece)));
    match dev.cache() {
        Some(c) => {
            let info = m.cache_info(c);
            let s = m.cache(c).ok_or_else(|| format!("{name}: its cache is gone"))?;
            say(format!(
                "{name}: cache {}: object size {}, stride {}, {} objects per slab of {} pages; slabinfo: {} active of {} objects ({} quanta in use, {} free in this CPU's array)",
                s.name(),
                s.object_size(),
                s.size(),
                s.objects_per_slab(),
                1u32 << s.order(),
                info.active_objs,
                info.num_objs,
                dev.quanta,
                info.active_objs - dev.quanta
            ));
        }
        None if name == "scullv" => {
            let areas = m.vmallocinfo().lines().filter(|l| l.contains(" vmalloc ") && !l.contains("unpurged")).count();
            say(format!("{name}: {areas} vmalloc areas of {} pages each", dev.quantum() / PAGE_SIZE));
        }
        None => {
            say(format!("{name}: {} blocks of {} pages from the page allocator", dev.quanta, dev.quantum() / PAGE_SIZE))
        }
    }
    dev.trim();
    drop(dev);
    say(format!("{name}: trimmed and released"));
    Ok(())
}

/// mc.c (seed 003): `mempool_create_InitFunc`, then `mempool_create_ExitFunc`, with the
/// module's own (Chinese) messages. `mempool_create(6, mempool_alloc_slab, mempool_free_slab,
/// pmycache)` is `RawMempool::slab_pool`. As in the module, a failure in init is logged and
/// init still returns 0, so the exit runs too: it destroys whatever init made.
fn mc_example(m: &Machine) -> Result<(), String> {
    use kmem::slab::{CacheArgs, flags::SLAB_HWCACHE_ALIGN};
    const MEMSIZE: usize = 10240;
    let say = |text: &str| m.printk(Level::Warning, &format!("{text}\n"));
    // Module init.
    let pmycache = m.kmem_cache_create("MyselfCache", MEMSIZE, &CacheArgs::default(), SLAB_HWCACHE_ALIGN).ok();
    let mut mypool = None;
    match pmycache {
        None => say("执行:kmem_cache_create(...)函数失败,请重新检查?"),
        Some(cache) => {
            say("创建slab缓存成功!");
            say(&format!("MyselfCache Cache大小为: {}", m.kmem_cache_size(cache)));
            match RawMempool::slab_pool(m, 6, cache) {
                Err(_) => say("执行:mempool_create()函数失败,请重新检查?"),
                Ok(pool) => {
                    say("创建内存池成功!");
                    say(&format!("内存池中元素最大个数,min_nr = {}", pool.min_nr()));
                    mypool = Some(pool);
                }
            }
        }
    }
    // Module exit.
    if let Some(pool) = mypool {
        drop(pool);
        say("执行:mempool_destroy()函数释放内存池成功!");
    }
    if let Some(cache) = pmycache {
        // SAFETY: The pool, the cache's only user, is gone; every element went back to the
        // cache. (A destroy that finds objects reports them itself; the module prints its
        // line either way, as `kmem_cache_destroy` returns nothing.)
        let _ = unsafe { m.kmem_cache_destroy(cache) };
        say("执行:kmem_cache_destroy()函数释放slab缓存成功!");
    }
    say("内核模块退出成功!");
    Ok(())
}
