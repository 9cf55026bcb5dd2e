//! `kmem demo`: the book's examples (seed 000, chapter 5), run on the machine and printed
//! from its kernel log exactly as the book shows them, then `/proc` excerpts.

#![allow(unsafe_code)] // kfree of the demo's own kmalloc objects.

use std::fmt::Write as _;

use kmem::gfp::GFP_KERNEL;
use kmem::{Level, Machine, get_order};

/// Every example: name and one line about it.
pub const EXAMPLES: &[(&str, &str)] = &[
    ("kmalloc", "basicmem's kmalloc_test (2.6 text): kmalloc(1024) and kmalloc(32 * PAGE_SIZE)"),
    ("get_free_pages", "basicmem's get_free_pages_test: __get_free_pages(GFP_KERNEL, get_order(8192*10))"),
];

/// Runs one example or all of them and returns what to print.
pub fn run(m: &Machine, only: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    for (name, _) in EXAMPLES {
        if only.is_some_and(|o| o != *name) {
            continue;
        }
        m.log().clear();
        match *name {
            "kmalloc" => kmalloc_test(m)?,
            "get_free_pages" => get_free_pages_test(m)?,
            _ => unreachable!("every example is listed in EXAMPLES"),
        }
        out.push_str(&m.log().messages());
    }
    out.push('\n');
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
    for line in m.meminfo().lines().filter(|l| {
        [
            "MemTotal:",
            "MemFree:",
            "MemAvailable:",
            "Slab:",
            "SReclaimable:",
            "SUnreclaim:",
            "HighTotal:",
            "HighFree:",
            "LowTotal:",
            "LowFree:",
        ]
        .iter()
        .any(|p| l.starts_with(p))
    }) {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

/// `kmalloc_test` of basicmem.c (the 2.6 variant): the first message is written into the
/// 1024-byte object with `sprintf` and printed from there.
fn kmalloc_test(m: &Machine) -> Result<(), String> {
    m.printk(Level::Warning, "kmalloc test\n");
    if let Ok(buff) = m.kmalloc(1024, GFP_KERNEL) {
        let text = "test memory\n";
        m.write_bytes(buff, text.as_bytes()).map_err(|e| format!("sprintf into the object: {e}"))?;
        let mut back = vec![0u8; text.len()];
        m.read_bytes(buff, &mut back).map_err(|e| format!("reading the object: {e}"))?;
        m.printk(Level::Warning, &String::from_utf8_lossy(&back));
        // SAFETY: `buff` came from kmalloc above and is not used again.
        unsafe { m.kfree(buff.as_ptr()) };
    }
    if let Ok(buff) = m.kmalloc(32 * kmem::PAGE_SIZE, GFP_KERNEL) {
        m.printk(Level::Warning, "Big Memory Ok\n");
        // SAFETY: As above.
        unsafe { m.kfree(buff.as_ptr()) };
    }
    Ok(())
}

/// `get_free_pages_test` of basicmem.c: the message is written into the allocated pages with
/// `sprintf` and printed from there, as the book does.
fn get_free_pages_test(m: &Machine) -> Result<(), String> {
    m.printk(Level::Warning, "get_free_pages test\n");
    let order = get_order(8192 * 10);
    let buff = m.get_free_pages(GFP_KERNEL, order).map_err(|e| format!("__get_free_pages: {e}"))?;
    let text = format!("__get_free_pages test ok [{order}]\n");
    m.write_bytes(buff, text.as_bytes()).map_err(|e| format!("sprintf into the pages: {e}"))?;
    let mut back = vec![0u8; text.len()];
    m.read_bytes(buff, &mut back).map_err(|e| format!("reading the pages: {e}"))?;
    m.printk(Level::Warning, &String::from_utf8_lossy(&back));
    m.free_pages_addr(buff.as_ptr(), order);
    Ok(())
}
