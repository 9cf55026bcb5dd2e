//! `slabtop`'s view of a `/proc/slabinfo` text (procps-ng 4's `slabtop` and its
//! `library/slabinfo.c`): the five summary lines, the heading, and one line per cache, sorted
//! by one of slabtop's keys. `kmem top` ([`crate::top`]) draws it from a machine or a file.
//!
//! What is slabtop's, kept to the byte (the tests compare with real slabtop's output over the
//! same files, `tests/slabtop/`):
//! - A cache's `USE` is `(unsigned)(100 * ((float)active / objs))`, in single precision, and 0
//!   for a cache with no objects; `CACHE SIZE` is `num_slabs * pagesperslab * page size`.
//! - The summary counts every cache; a cache is active when it has objects (`num_objs > 0`);
//!   the sizes are `objs * objsize` summed; the average object size is the total size divided
//!   (in integers) by the total objects; the minimum starts at `INT_MAX`, so a text with no
//!   cache prints `2097152.00K`, and a percentage of 0 / 0 prints `-nan`, as C's `printf` does.
//! - Sorting is stable (glibc's `qsort` is a merge sort for these sizes): caches with equal
//!   keys keep their order in the text. Every key sorts in descending order but the name,
//!   which sorts in ascending byte order (slabtop's `strcoll` in the C locale).
//!
//! Where kmem differs (decisions): counts are 64-bit (slabtop's 32-bit sums wrap above 4 G
//! objects), and sums and products that would pass `u64::MAX` stop there; blank lines are
//! skipped, and names are not limited to 128 bytes (slabtop fails on either); a malformed line
//! is an error that names the line and field (slabtop says only "Unable to create slabinfo
//! structure: Numerical result out of range").

use std::fmt::Write as _;

/// One cache line of `/proc/slabinfo`: the fields slabtop reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    pub name: String,
    pub active_objs: u64,
    pub num_objs: u64,
    pub obj_size: u64,
    pub objs_per_slab: u64,
    pub pages_per_slab: u64,
    pub active_slabs: u64,
    pub num_slabs: u64,
}

impl Cache {
    /// slabtop's `USE` column: the percentage of objects in use, computed in `float`.
    pub fn use_percent(&self) -> u32 {
        if self.num_objs == 0 {
            return 0;
        }
        // As slabtop computes it: single precision, truncated.
        (100.0_f32 * (self.active_objs as f32 / self.num_objs as f32)) as u32
    }

    /// slabtop's `CACHE SIZE` in bytes: every slab at `pagesperslab` pages (saturating).
    pub fn cache_size(&self, page_size: u64) -> u64 {
        self.num_slabs.saturating_mul(self.pages_per_slab).saturating_mul(page_size)
    }
}

/// A malformed `/proc/slabinfo` text: the line (1-based) and what is wrong with it.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// The caches of a `/proc/slabinfo` text (version 2.x, with or without statistics), in
/// text order.
pub fn parse(text: &str) -> Result<Vec<Cache>, ParseError> {
    let mut lines = text.lines().enumerate();
    let version = lines.next().map(|(_, l)| l).unwrap_or("");
    let major = version.strip_prefix("slabinfo - version: ").and_then(|v| v.split('.').next());
    if major.map(str::trim) != Some("2") {
        return Err(ParseError {
            line: 1,
            message: format!("not a /proc/slabinfo text of version 2.x (the first line is {version:?})"),
        });
    }
    let mut caches = Vec::new();
    for (i, line) in lines {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        caches.push(parse_line(line).map_err(|message| ParseError { line: i + 1, message })?);
    }
    Ok(caches)
}

/// `name active_objs num_objs objsize objperslab pagesperslab : tunables a b c : slabdata
/// active_slabs num_slabs sharedavail [...]`.
fn parse_line(line: &str) -> Result<Cache, String> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize, what: &str| -> Result<u64, String> {
        let word = t.get(i).ok_or_else(|| format!("no <{what}> (field {})", i + 1))?;
        word.parse().map_err(|_| format!("<{what}> is {word:?}, not a number"))
    };
    let word = |i: usize, want: &str| -> Result<(), String> {
        match t.get(i) {
            Some(&w) if w == want => Ok(()),
            Some(w) => Err(format!("{w:?} where `{want}` belongs (field {})", i + 1)),
            None => Err(format!("the line ends where `{want}` belongs (field {})", i + 1)),
        }
    };
    let cache = Cache {
        name: (*t.first().ok_or("an empty line")?).to_owned(),
        active_objs: num(1, "active_objs")?,
        num_objs: num(2, "num_objs")?,
        obj_size: num(3, "objsize")?,
        objs_per_slab: num(4, "objperslab")?,
        pages_per_slab: num(5, "pagesperslab")?,
        active_slabs: num(13, "active_slabs")?,
        num_slabs: num(14, "num_slabs")?,
    };
    word(6, ":")?;
    word(7, "tunables")?;
    word(11, ":")?;
    word(12, "slabdata")?;
    Ok(cache)
}

/// slabtop's sort criteria (`-s` and the keys of its live view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    /// `a`: active objects.
    ActiveObjs,
    /// `b`: objects per slab.
    ObjsPerSlab,
    /// `c`: cache size.
    CacheSize,
    /// `l`: slabs.
    Slabs,
    /// `v`: active slabs (not shown).
    ActiveSlabs,
    /// `n`: name, ascending.
    Name,
    /// `o`: objects (the default).
    Objs,
    /// `p`: pages per slab (not shown).
    PagesPerSlab,
    /// `s`: object size.
    ObjSize,
    /// `u`: cache utilization.
    Use,
}

/// The keys and what they sort by, for help texts.
pub const SORT_KEYS: &str = "a: active objects, b: objects per slab, c: cache size, l: slabs, v: active slabs, \
     n: name, o: objects (the default), p: pages per slab, s: object size, u: cache utilization";

impl SortKey {
    /// The key for slabtop's letter (either case), if it is one.
    pub fn from_char(c: char) -> Option<Self> {
        Some(match c.to_ascii_lowercase() {
            'a' => Self::ActiveObjs,
            'b' => Self::ObjsPerSlab,
            'c' => Self::CacheSize,
            'l' => Self::Slabs,
            'v' => Self::ActiveSlabs,
            'n' => Self::Name,
            'o' => Self::Objs,
            'p' => Self::PagesPerSlab,
            's' => Self::ObjSize,
            'u' => Self::Use,
            _ => return None,
        })
    }
}

/// Sorts `caches` by `key` as slabtop does (stable; descending but for the name).
pub fn sort(caches: &mut [Cache], key: SortKey, page_size: u64) {
    let number = |c: &Cache| match key {
        SortKey::ActiveObjs => c.active_objs,
        SortKey::ObjsPerSlab => c.objs_per_slab,
        SortKey::CacheSize => c.cache_size(page_size),
        SortKey::Slabs => c.num_slabs,
        SortKey::ActiveSlabs => c.active_slabs,
        SortKey::Objs | SortKey::Name => c.num_objs,
        SortKey::PagesPerSlab => c.pages_per_slab,
        SortKey::ObjSize => c.obj_size,
        SortKey::Use => u64::from(c.use_percent()),
    };
    if key == SortKey::Name {
        caches.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    } else {
        caches.sort_by_key(|c| std::cmp::Reverse(number(c)));
    }
}

/// `100.0 * part / whole` as C's `%.1f` prints it, NaN and infinity included.
fn percent(part: u64, whole: u64) -> String {
    match (part, whole) {
        (0, 0) => "-nan".to_owned(), // x86's default NaN has its sign bit set.
        (_, 0) => "inf".to_owned(),
        _ => format!("{:.1}", 100.0 * part as f64 / whole as f64),
    }
}

/// slabtop's five summary lines over every cache, and the blank line after them.
pub fn summary(caches: &[Cache]) -> String {
    let (mut objs, mut active, mut slabs, mut active_slabs, mut used) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut total_size, mut active_size) = (0u64, 0u64);
    // slabtop starts the minimum at `INT_MAX`.
    let (mut min, mut max) = (0x7fff_ffff_u64, 0u64);
    for c in caches {
        objs = objs.saturating_add(c.num_objs);
        active = active.saturating_add(c.active_objs);
        slabs = slabs.saturating_add(c.num_slabs);
        active_slabs = active_slabs.saturating_add(c.active_slabs);
        used += u64::from(c.num_objs > 0);
        total_size = total_size.saturating_add(c.num_objs.saturating_mul(c.obj_size));
        active_size = active_size.saturating_add(c.active_objs.saturating_mul(c.obj_size));
        min = min.min(c.obj_size);
        max = max.max(c.obj_size);
    }
    let avg = total_size.checked_div(objs).unwrap_or(0);
    let kib = |b: u64| b as f64 / 1024.0;
    let mut s = String::new();
    let mut line = |label: &str, rest: String| {
        let _ = writeln!(s, " {label:<35}: {rest}");
    };
    line("Active / Total Objects (% used)", format!("{active} / {objs} ({}%)", percent(active, objs)));
    line("Active / Total Slabs (% used)", format!("{active_slabs} / {slabs} ({}%)", percent(active_slabs, slabs)));
    let n = caches.len() as u64;
    line("Active / Total Caches (% used)", format!("{used} / {n} ({}%)", percent(used, n)));
    line(
        "Active / Total Size (% used)",
        format!("{:.2}K / {:.2}K ({}%)", kib(active_size), kib(total_size), percent(active_size, total_size)),
    );
    line("Minimum / Average / Maximum Object", format!("{:.2}K / {:.2}K / {:.2}K", kib(min), kib(avg), kib(max)));
    s.push('\n');
    s
}

/// The heading line, padded to 78 columns as slabtop pads it (no newline).
pub fn heading() -> String {
    format!("{:<78}", "  OBJS ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME")
}

/// One cache's line (no newline).
pub fn detail(c: &Cache, page_size: u64) -> String {
    format!(
        "{:>6} {:>6} {:>3}% {:>7.2}K {:>6} {:>8} {:>9}K {:<23}",
        c.num_objs,
        c.active_objs,
        c.use_percent(),
        c.obj_size as f64 / 1024.0,
        c.num_slabs,
        c.objs_per_slab,
        c.cache_size(page_size) / 1024,
        c.name
    )
}

/// `slabtop --once`: the summary, the heading and every cache, in `caches`' order.
pub fn once(caches: &[Cache], page_size: u64) -> String {
    let mut s = summary(caches);
    s.push_str(&heading());
    s.push('\n');
    for c in caches {
        s.push_str(&detail(c, page_size));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(name: &str, active: u64, objs: u64, size: u64) -> Cache {
        Cache {
            name: name.to_owned(),
            active_objs: active,
            num_objs: objs,
            obj_size: size,
            objs_per_slab: 8,
            pages_per_slab: 2,
            active_slabs: objs / 8,
            num_slabs: objs / 8,
        }
    }

    #[test]
    fn use_is_truncated_single_precision() {
        assert_eq!(cache("a", 576, 1024, 8).use_percent(), 56);
        assert_eq!(cache("a", 0, 0, 8).use_percent(), 0);
        assert_eq!(cache("a", 7, 7, 8).use_percent(), 100);
        // 1/3 in float is 0.3333333; 100 times that truncates to 33.
        assert_eq!(cache("a", 1, 3, 8).use_percent(), 33);
    }

    #[test]
    fn a_line_is_read_and_a_bad_one_named() {
        let good = "kmem_demo 1000 1000 200 20 1 : tunables 0 0 0 : slabdata 50 50 0";
        let text = format!("slabinfo - version: 2.1\n# name <active_objs>\n{good}\n\n");
        let caches = parse(&text).expect("parses");
        assert_eq!(caches.len(), 1);
        assert_eq!((caches[0].active_objs, caches[0].num_slabs, caches[0].pages_per_slab), (1000, 50, 1));
        let bad = parse("slabinfo - version: 2.1\nx 1 2 3 4 5 : tunables 0 0 0 : slabdata 1\n").unwrap_err();
        assert_eq!(bad, ParseError { line: 2, message: "no <num_slabs> (field 15)".into() });
        let bad = parse("slabinfo - version: 2.1\nx 1 two 3 4 5 : tunables 0 0 0 : slabdata 1 1 0\n").unwrap_err();
        assert_eq!(bad.message, "<num_objs> is \"two\", not a number");
        let bad = parse("slabinfo - version: 2.1\nx 1 2 3 4 5 : tunable 0 0 0 : slabdata 1 1 0\n").unwrap_err();
        assert_eq!(bad.message, "\"tunable\" where `tunables` belongs (field 8)");
        assert_eq!(parse("slabinfo - version: 1.1\n").unwrap_err().line, 1);
        assert_eq!(parse("").unwrap_err().line, 1);
    }

    #[test]
    fn sorting_is_stable_and_descending_but_by_name() {
        let mut caches = vec![cache("b", 1, 8, 64), cache("c", 8, 16, 32), cache("a", 1, 8, 128)];
        sort(&mut caches, SortKey::Objs, 4096);
        assert_eq!(caches.iter().map(|c| c.name.as_str()).collect::<String>(), "cba");
        sort(&mut caches, SortKey::Name, 4096);
        assert_eq!(caches.iter().map(|c| c.name.as_str()).collect::<String>(), "abc");
        sort(&mut caches, SortKey::ActiveObjs, 4096);
        assert_eq!(caches.iter().map(|c| c.name.as_str()).collect::<String>(), "cab");
        assert_eq!(SortKey::from_char('U'), Some(SortKey::Use));
        assert_eq!(SortKey::from_char('x'), None);
    }

    #[test]
    fn counts_too_large_for_u64_saturate() {
        let max = u64::MAX;
        let huge = Cache { num_slabs: max, active_slabs: max, pages_per_slab: 8, ..cache("x", max, max, 8) };
        assert_eq!(huge.cache_size(4096), max);
        let s = summary(&[huge.clone(), huge.clone()]);
        assert!(s.starts_with(&format!(" Active / Total Objects (% used)    : {max} / {max} (100.0%)\n")), "{s}");
        assert!(once(&[huge], 4096).contains(&format!(" {}K x ", max / 1024)));
    }

    #[test]
    fn percentages_print_as_c_prints_them() {
        assert_eq!(percent(0, 0), "-nan");
        assert_eq!(percent(1, 0), "inf");
        assert_eq!(percent(1, 3), "33.3");
        assert_eq!(percent(2, 2), "100.0");
    }
}
