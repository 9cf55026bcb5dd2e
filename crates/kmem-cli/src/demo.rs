//! `kmem demo`: the book's examples (seed 000, chapter 5), run on the machine and printed
//! from its kernel log exactly as the book shows them, then `/proc` excerpts.

use std::fmt::Write as _;

use kmem::gfp::GFP_KERNEL;
use kmem::{Level, Machine, get_order};

/// Every example: name and one line about it.
pub const EXAMPLES: &[(&str, &str)] =
    &[("get_free_pages", "basicmem's get_free_pages_test: __get_free_pages(GFP_KERNEL, get_order(8192*10))")];

/// Runs one example or all of them and returns what to print.
pub fn run(m: &Machine, only: Option<&str>) -> Result<String, String> {
    let mut out = String::new();
    for (name, _) in EXAMPLES {
        if only.is_some_and(|o| o != *name) {
            continue;
        }
        m.log().clear();
        match *name {
            "get_free_pages" => get_free_pages_test(m)?,
            _ => unreachable!("every example is listed in EXAMPLES"),
        }
        out.push_str(&m.log().messages());
    }
    out.push('\n');
    out.push_str("# /proc/buddyinfo\n");
    out.push_str(&m.buddyinfo());
    out.push_str("# /proc/meminfo (excerpt)\n");
    for line in m.meminfo().lines().filter(|l| {
        ["MemTotal:", "MemFree:", "MemAvailable:", "HighTotal:", "HighFree:", "LowTotal:", "LowFree:"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
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
