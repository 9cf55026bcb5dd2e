//! Configuration of the default machine from `KMEM_*` environment variables. Every bad value
//! is an [`EnvError`] that names the variable, the value and what was expected.

use std::fmt;
use std::time::Duration;

use crate::machine::{Builder, Profile};
use crate::printk::Echo;

/// A bad `KMEM_*` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: String,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}={:?}: expected {}", self.var, self.value, self.expected)
    }
}

impl std::error::Error for EnvError {}

/// Every variable [`apply`] reads, with what it sets.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "KMEM_MEM",
        "size of physical memory: bytes or a number with K, M, G or T (e.g. 1G); 8M to 64G on i386, below 16T on x86_64",
    ),
    ("KMEM_PROFILE", "machine profile: i386 (DMA/Normal/HighMem) or x86_64 (DMA/DMA32/Normal)"),
    ("KMEM_CPUS", "number of CPU slots, 1..=64"),
    ("KMEM_PCP", "per-CPU page lists: 1 (on) or 0 (off)"),
    ("KMEM_KSWAPD", "background reclaimer thread: 1 (on) or 0 (off)"),
    (
        "KMEM_MIN_FREE_KBYTES",
        "vm.min_free_kbytes (default: computed from lowmem); at most what leaves lowmem above the high watermarks",
    ),
    ("KMEM_WATERMARK_SCALE_FACTOR", "vm.watermark_scale_factor, 1..=3000 (default 10)"),
    (
        "KMEM_WATERMARK_BOOST_FACTOR",
        "vm.watermark_boost_factor, 0..=2147483647 (0: no watermark boosting; default 15000 with kswapd, 0 without)",
    ),
    (
        "KMEM_OOM_TIMEOUT_MS",
        "ms a request without __GFP_NOFAIL keeps reclaiming and waiting before it fails (default 5000)",
    ),
    (
        "KMEM_TRIM_AFTER_MS",
        "kswapd releases free memory to the host after it stays free this long (0: never; default 1000)",
    ),
    ("KMEM_LOG_ECHO", "echo the kernel log to stderr: off, on, or a console loglevel 0..=8"),
    ("KMEM_LOG_BUF_LEN", "size of the log ring buffer (e.g. 1M)"),
    (
        "KMEM_FAIL_PAGE_ALLOC",
        "<interval>,<probability>,<space>,<times>[,ignore-gfp-wait=N][,ignore-gfp-highmem=N][,min-order=N][,verbose=N]",
    ),
    ("KMEM_FAILSLAB", "<interval>,<probability>,<space>,<times>[,ignore-gfp-wait=N][,cache-filter=N][,verbose=N]"),
    (
        "KMEM_FAIL_MEMPOOL_ALLOC",
        "fail_mempool_alloc (mempool_alloc skips alloc_fn, takes from the reserve): <interval>,<probability>,<space>,<times>[,verbose=N]",
    ),
    (
        "KMEM_FAIL_MEMPOOL_ALLOC_BULK",
        "fail_mempool_alloc_bulk (mempool_alloc_bulk goes to the reserve first), same syntax as KMEM_FAIL_MEMPOOL_ALLOC",
    ),
    ("KMEM_SLUB_DEBUG", "slab_debug=: debug letters FZPUTAO- and cache names, e.g. FZPU or Z,kmalloc-*"),
    ("KMEM_INIT_ON_ALLOC", "init_on_alloc: zero pages, slab objects and vmalloc memory on allocation, 1 or 0"),
    ("KMEM_INIT_ON_FREE", "init_on_free: zero pages and slab objects on free (vmalloc memory comes zeroed), 1 or 0"),
    ("KMEM_SLAB_MERGE", "merge compatible slab caches: 1 (slab_merge, default) or 0 (slab_nomerge)"),
    ("KMEM_SLAB_FREELIST_RANDOM", "randomise the object order of new slabs: 1 (default) or 0"),
    (
        "KMEM_MEMPOOL_DEBUG",
        "mempool debugging: count every element (destroy reports any still out) and poison reserves, 1 or 0 (default)",
    ),
];

/// Parses a size: plain bytes (optionally followed by `B`), or a number with a `K`, `M`, `G`
/// or `T` suffix (binary units, optionally followed by one `B` or `iB`). Anything else —
/// repeated or stray suffixes such as `1kbibib` or `5bbb` — is refused.
pub fn parse_size(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    // At most one `iB` (after a unit) or one `B`.
    let (body, after_unit) = match lower.strip_suffix("ib") {
        Some(body) => (body, true),
        None => (lower.strip_suffix('b').unwrap_or(&lower), false),
    };
    let (digits, shift) = match body.chars().last()? {
        'k' => (&body[..body.len() - 1], 10),
        'm' => (&body[..body.len() - 1], 20),
        'g' => (&body[..body.len() - 1], 30),
        't' => (&body[..body.len() - 1], 40),
        c if c.is_ascii_digit() && !after_unit => (body, 0),
        _ => return None,
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(1 << shift)
}

fn err(var: &'static str, value: &str, expected: impl Into<String>) -> EnvError {
    EnvError { var, value: value.to_owned(), expected: expected.into() }
}

fn parse_bool(var: &'static str, v: &str) -> Result<bool, EnvError> {
    match v.trim() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        _ => Err(err(var, v, "1 or 0 (or on/off, yes/no, true/false)")),
    }
}

/// `v` if it parses as fault-injection knobs with `parse` (whose options `form` shows),
/// checked here so that the error names `var`.
fn fault_spec(
    var: &'static str,
    v: String,
    parse: fn(&kmem_core::fault::FaultAttr, &str) -> Result<(), kmem_core::fault::BadFaultSpec>,
    form: &str,
) -> Result<String, EnvError> {
    let probe = kmem_core::fault::FaultAttr::new();
    parse(&probe, &v).map_err(|e| err(var, &v, format!("<interval>,<probability>,<space>,<times>{form} ({})", e.0)))?;
    Ok(v)
}

fn parse_num<T: std::str::FromStr>(var: &'static str, v: &str, what: &str) -> Result<T, EnvError> {
    v.trim().parse().map_err(|_| err(var, v, what))
}

/// One read of `var` from the process environment (tests count them).
pub(crate) fn read(var: &str) -> Result<String, std::env::VarError> {
    #[cfg(test)]
    tests::READS.with(|r| r.borrow_mut().push(var.to_owned()));
    std::env::var(var)
}

/// The value of `var` in the process environment (`None` when unset); a value that is not
/// UTF-8 text is an error naming the variable, not taken as unset.
///
/// # Errors
/// The value is not UTF-8 text.
pub fn var(var: &'static str) -> Result<Option<String>, EnvError> {
    match read(var) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(err(var, &v.to_string_lossy(), "UTF-8 text")),
    }
}

/// [`apply`] over the process environment ([`crate::Builder::from_env`]): each variable of
/// [`VARIABLES`] is read once, and every value that is not UTF-8 text is refused (the first,
/// in [`VARIABLES`] order, naming its variable) before any value is parsed; `apply` then gets
/// the very values that were checked.
///
/// # Errors
/// A value that is not UTF-8 text, or the first bad value, naming its variable.
pub(crate) fn apply_process_env(b: Builder) -> Result<Builder, EnvError> {
    let mut values = Vec::with_capacity(VARIABLES.len());
    for &(name, _) in VARIABLES {
        if let Some(v) = var(name)? {
            values.push((name, v));
        }
    }
    apply(b, |k| values.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone()))
}

/// `KMEM_*` boolean `var` from the process environment: `false` when unset.
///
/// # Errors
/// A value other than 1/0, on/off, yes/no, true/false, or one that is not UTF-8 text.
pub fn flag(var: &'static str) -> Result<bool, EnvError> {
    self::var(var)?.map_or(Ok(false), |v| parse_bool(var, &v))
}

/// Applies every `KMEM_*` variable that `get` returns to `builder`.
///
/// # Errors
/// The first bad value, naming its variable.
pub fn apply(mut b: Builder, get: impl Fn(&str) -> Option<String>) -> Result<Builder, EnvError> {
    if let Some(v) = get("KMEM_PROFILE") {
        b = b.profile(match v.trim() {
            "i386" => Profile::I386,
            "x86_64" => Profile::X86_64,
            _ => return Err(err("KMEM_PROFILE", &v, "i386 or x86_64")),
        });
    }
    if let Some(v) = get("KMEM_MEM") {
        let bytes = parse_size(&v).ok_or_else(|| err("KMEM_MEM", &v, "a size like 64M or 1G"))?;
        let profile = b.settings().profile;
        if !(8 << 20..=profile.max_mem_bytes()).contains(&bytes) {
            let range = format!("a size from 8M to {} on the {} profile", profile.max_mem_text(), profile.name());
            return Err(err("KMEM_MEM", &v, range));
        }
        b = b.mem_bytes(bytes);
    }
    if let Some(v) = get("KMEM_CPUS") {
        let n: usize = parse_num("KMEM_CPUS", &v, "a number from 1 to 64")?;
        if !(1..=kmem_core::pcp::MAX_CPUS).contains(&n) {
            return Err(err("KMEM_CPUS", &v, "a number from 1 to 64"));
        }
        b = b.cpus(n);
    }
    if let Some(v) = get("KMEM_PCP") {
        b = b.pcp(parse_bool("KMEM_PCP", &v)?);
    }
    if let Some(v) = get("KMEM_KSWAPD") {
        b = b.kswapd(parse_bool("KMEM_KSWAPD", &v)?);
    }
    if let Some(v) = get("KMEM_MIN_FREE_KBYTES") {
        // The sysctl is an `int` with a minimum of 0.
        let what = "a number of kilobytes from 0 to 2147483647";
        let kb: u64 = parse_num("KMEM_MIN_FREE_KBYTES", &v, what)?;
        if kb > i32::MAX as u64 {
            return Err(err("KMEM_MIN_FREE_KBYTES", &v, what));
        }
        // How much the machine can take depends on its zones: `Builder::build` checks the
        // rest, naming this variable.
        b = b.min_free_kbytes_from_env(kb as usize, v);
    }
    if let Some(v) = get("KMEM_WATERMARK_SCALE_FACTOR") {
        let n: usize = parse_num("KMEM_WATERMARK_SCALE_FACTOR", &v, "a number from 1 to 3000")?;
        if !(1..=3000).contains(&n) {
            return Err(err("KMEM_WATERMARK_SCALE_FACTOR", &v, "a number from 1 to 3000"));
        }
        b = b.watermark_scale_factor(n);
    }
    if let Some(v) = get("KMEM_WATERMARK_BOOST_FACTOR") {
        let what = "a number from 0 to 2147483647";
        let n: u64 = parse_num("KMEM_WATERMARK_BOOST_FACTOR", &v, what)?;
        if n > i32::MAX as u64 {
            return Err(err("KMEM_WATERMARK_BOOST_FACTOR", &v, what));
        }
        b = b.watermark_boost_factor(n as usize);
    }
    if let Some(v) = get("KMEM_OOM_TIMEOUT_MS") {
        b = b.oom_timeout(Duration::from_millis(parse_num("KMEM_OOM_TIMEOUT_MS", &v, "milliseconds")?));
    }
    if let Some(v) = get("KMEM_TRIM_AFTER_MS") {
        let ms: u64 = parse_num("KMEM_TRIM_AFTER_MS", &v, "milliseconds (0: never)")?;
        b = b.trim_after((ms > 0).then(|| Duration::from_millis(ms)));
    }
    if let Some(v) = get("KMEM_LOG_ECHO") {
        b = b.log_echo(match v.trim() {
            "off" | "0" => Echo::Off,
            "on" | "all" => Echo::Below(8),
            n => match n.parse::<u8>() {
                Ok(level @ 1..=8) => Echo::Below(level),
                _ => return Err(err("KMEM_LOG_ECHO", &v, "off, on, or a console loglevel 0..=8")),
            },
        });
    }
    if let Some(v) = get("KMEM_LOG_BUF_LEN") {
        let bytes = parse_size(&v).ok_or_else(|| err("KMEM_LOG_BUF_LEN", &v, "a size like 1M"))?;
        b = b.log_capacity(bytes as usize);
    }
    use kmem_core::fault::FaultAttr;
    let (any, plain) = ("[,key=value...]", "[,verbose=N]");
    if let Some(v) = get("KMEM_FAIL_PAGE_ALLOC") {
        b = b.fail_page_alloc(fault_spec("KMEM_FAIL_PAGE_ALLOC", v, FaultAttr::parse_and_apply, any)?);
    }
    if let Some(v) = get("KMEM_FAILSLAB") {
        b = b.failslab(fault_spec("KMEM_FAILSLAB", v, FaultAttr::parse_and_apply_failslab, any)?);
    }
    if let Some(v) = get("KMEM_FAIL_MEMPOOL_ALLOC") {
        b = b.fail_mempool_alloc(fault_spec("KMEM_FAIL_MEMPOOL_ALLOC", v, FaultAttr::parse_and_apply_plain, plain)?);
    }
    if let Some(v) = get("KMEM_FAIL_MEMPOOL_ALLOC_BULK") {
        let parse = FaultAttr::parse_and_apply_plain;
        b = b.fail_mempool_alloc_bulk(fault_spec("KMEM_FAIL_MEMPOOL_ALLOC_BULK", v, parse, plain)?);
    }
    if let Some(v) = get("KMEM_SLUB_DEBUG") {
        kmem_core::slab::DebugSpec::new(&v).map_err(|e| err("KMEM_SLUB_DEBUG", &v, e.to_string()))?;
        b = b.slub_debug(v);
    }
    if let Some(v) = get("KMEM_INIT_ON_ALLOC") {
        b = b.init_on_alloc(parse_bool("KMEM_INIT_ON_ALLOC", &v)?);
    }
    if let Some(v) = get("KMEM_INIT_ON_FREE") {
        b = b.init_on_free(parse_bool("KMEM_INIT_ON_FREE", &v)?);
    }
    if let Some(v) = get("KMEM_SLAB_MERGE") {
        b = b.slab_merge(parse_bool("KMEM_SLAB_MERGE", &v)?);
    }
    if let Some(v) = get("KMEM_SLAB_FREELIST_RANDOM") {
        b = b.random_freelist(parse_bool("KMEM_SLAB_FREELIST_RANDOM", &v)?);
    }
    if let Some(v) = get("KMEM_MEMPOOL_DEBUG") {
        b = b.mempool_debug(parse_bool("KMEM_MEMPOOL_DEBUG", &v)?);
    }
    Ok(b)
}

/// Refuses a `min_free_kbytes` above [`kmem_core::PageAllocator::max_min_free_kbytes`] (DESIGN §3: a bad
/// value gets a clear error, naming `KMEM_MIN_FREE_KBYTES` when that variable set it): its
/// watermarks (PA-10) would leave no lowmem to allocate, so the first allocation would be an
/// OOM.
pub(crate) fn check_min_free_kbytes(
    pa: &kmem_core::PageAllocator<crate::UserPlatform>,
    kb: Option<usize>,
    env_text: Option<String>,
) -> Result<(), crate::BuildError> {
    let (Some(kb), Some(max)) = (kb, pa.max_min_free_kbytes()) else { return Ok(()) };
    if kb <= max {
        return Ok(());
    }
    let lowmem: usize = pa.zones().iter().filter(|z| !z.kind().is_highmem()).map(|z| z.managed()).sum();
    let why = format!("more leaves this machine's {lowmem} lowmem pages no room above the high watermark");
    Err(match env_text {
        Some(value) => crate::BuildError::Env(EnvError {
            var: "KMEM_MIN_FREE_KBYTES",
            value,
            expected: format!("a number of kilobytes from 0 to {max} ({why})"),
        }),
        None => crate::BuildError::Setting(format!("min_free_kbytes must be at most {max} ({why}), got {kb}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    thread_local! {
        /// The variables this thread read from the process environment, in order.
        pub(super) static READS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// `Builder::from_env` reads each variable of [`VARIABLES`] once, and nothing else: the
    /// value it checks for UTF-8 is the value it applies.
    #[test]
    fn from_env_reads_each_variable_once() {
        READS.with(|r| r.borrow_mut().clear());
        let _ = Builder::new().from_env();
        let reads = READS.with(|r| r.take());
        for (var, _) in VARIABLES {
            assert_eq!(reads.iter().filter(|r| r == var).count(), 1, "{var}: {reads:?}");
        }
        assert_eq!(reads.len(), VARIABLES.len(), "{reads:?}");
    }

    /// `apply` asks only for variables of [`VARIABLES`] (the ones `from_env` reads).
    #[test]
    fn apply_asks_only_for_listed_variables() {
        let asked = std::cell::RefCell::new(Vec::new());
        apply(Builder::new(), |k| {
            asked.borrow_mut().push(k.to_owned());
            None
        })
        .unwrap();
        let asked = asked.into_inner();
        assert!(asked.iter().all(|k| VARIABLES.iter().any(|(v, _)| v == k)), "{asked:?}");
        assert_eq!(asked.len(), VARIABLES.len());
    }

    fn apply_map(pairs: &[(&str, &str)]) -> Result<Builder, EnvError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        apply(Builder::new(), |k| map.get(k).cloned())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12k"), Some(12 << 10));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("1X"), None);
        // One optional `B`/`iB` and nothing more (the input audit: these were 1 KiB and 5 B).
        assert_eq!(parse_size("12kB"), Some(12 << 10));
        assert_eq!(parse_size("5b"), Some(5));
        for junk in ["1kbibib", "5bbb", "1ib", "1kbb", "1kibb", "1kiib", "ib", "b", ""] {
            assert_eq!(parse_size(junk), None, "{junk:?}");
        }
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (var, value) in [
            ("KMEM_MEM", "lots"),
            ("KMEM_MEM", "1K"),
            ("KMEM_PROFILE", "arm"),
            ("KMEM_CPUS", "0"),
            ("KMEM_CPUS", "65"),
            ("KMEM_CPUS", "two"),
            ("KMEM_PCP", "maybe"),
            ("KMEM_KSWAPD", "2"),
            ("KMEM_MIN_FREE_KBYTES", "-1"),
            ("KMEM_WATERMARK_SCALE_FACTOR", "0"),
            ("KMEM_WATERMARK_BOOST_FACTOR", "-1"),
            ("KMEM_WATERMARK_BOOST_FACTOR", "2147483648"),
            ("KMEM_WATERMARK_BOOST_FACTOR", "lots"),
            ("KMEM_OOM_TIMEOUT_MS", "soon"),
            ("KMEM_TRIM_AFTER_MS", "-5"),
            ("KMEM_LOG_ECHO", "loud"),
            ("KMEM_LOG_BUF_LEN", "big"),
            ("KMEM_FAIL_PAGE_ALLOC", "1,200,0,1"),
            ("KMEM_FAILSLAB", "0,10,0,1"),
            ("KMEM_FAIL_MEMPOOL_ALLOC", "1,101,0,1"),
            ("KMEM_FAIL_MEMPOOL_ALLOC", "1,100,0,1,ignore-gfp-wait=0"),
            ("KMEM_FAIL_MEMPOOL_ALLOC_BULK", "often"),
            ("KMEM_SLUB_DEBUG", "FQ"),
            ("KMEM_INIT_ON_ALLOC", "sometimes"),
            ("KMEM_INIT_ON_FREE", "2"),
            ("KMEM_SLAB_MERGE", "x"),
            ("KMEM_SLAB_FREELIST_RANDOM", "y"),
            ("KMEM_MEMPOOL_DEBUG", "sure"),
            ("KMEM_MEM", "16T"),
            ("KMEM_MIN_FREE_KBYTES", "99999999999"),
            ("KMEM_MIN_FREE_KBYTES", "2147483648"),
        ] {
            let e = apply_map(&[(var, value)]).err().unwrap_or_else(|| panic!("{var}={value} accepted"));
            assert_eq!(e.var, var);
            let text = e.to_string();
            assert!(text.starts_with(&format!("invalid {var}=")), "{text}");
            assert!(text.contains(value), "{text}");
        }
    }

    #[test]
    fn mem_range_depends_on_the_profile() {
        // i386 (PAE) addresses 64 GiB; x86_64 pfns are 32 bits wide.
        let e = apply_map(&[("KMEM_PROFILE", "i386"), ("KMEM_MEM", "65G")]).expect_err("65G on i386");
        assert_eq!(e.to_string(), "invalid KMEM_MEM=\"65G\": expected a size from 8M to 64G on the i386 profile");
        assert!(apply_map(&[("KMEM_PROFILE", "i386"), ("KMEM_MEM", "64G")]).is_ok());
        let e = apply_map(&[("KMEM_MEM", "16T")]).expect_err("16T on x86_64");
        assert_eq!(
            e.to_string(),
            "invalid KMEM_MEM=\"16T\": expected a size from 8M to 16T minus one page on the x86_64 profile"
        );
        assert!(apply_map(&[("KMEM_MEM", "8T")]).is_ok());
        // The builder's own check, for settings made without the environment.
        let e = Builder::new().profile(Profile::I386).mem_bytes(1 << 40).build().expect_err("1T on i386");
        assert_eq!(e.to_string(), "memory must be at most 64G on the i386 profile, got 1099511627776 bytes");
        // Any `int` passes here; `Builder::build` refuses what the machine's zones cannot take,
        // naming the variable (tests/rules/machine.rs).
        let b = apply_map(&[("KMEM_MIN_FREE_KBYTES", "2147483647")]).unwrap();
        assert_eq!(b.settings().min_free_kbytes, Some(i32::MAX as usize));
    }

    /// The mempool's fault-injection variables take the plain attribute's syntax: the GFP
    /// filter keys of `fail_page_alloc` are refused, naming the variable.
    #[test]
    fn fail_mempool_alloc_variables() {
        let e = apply_map(&[("KMEM_FAIL_MEMPOOL_ALLOC", "1,100,0,1,ignore-gfp-wait=0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid KMEM_FAIL_MEMPOOL_ALLOC=\"1,100,0,1,ignore-gfp-wait=0\": expected <interval>,<probability>,<space>,<times>[,verbose=N] (unknown option (verbose is the only one))"
        );
        let e = apply_map(&[("KMEM_FAIL_MEMPOOL_ALLOC_BULK", "1,10,0")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid KMEM_FAIL_MEMPOOL_ALLOC_BULK=\"1,10,0\": expected <interval>,<probability>,<space>,<times>[,verbose=N] (times (4th field) must be an integer)"
        );
        let b = apply_map(&[
            ("KMEM_FAIL_MEMPOOL_ALLOC", "2,100,0,3"),
            ("KMEM_FAIL_MEMPOOL_ALLOC_BULK", "1,50,0,-1,verbose=0"),
        ])
        .unwrap();
        assert_eq!(b.settings().fail_mempool_alloc.as_deref(), Some("2,100,0,3"));
        assert_eq!(b.settings().fail_mempool_alloc_bulk.as_deref(), Some("1,50,0,-1,verbose=0"));
        assert!(VARIABLES.iter().any(|(v, _)| *v == "KMEM_FAIL_MEMPOOL_ALLOC_BULK"));
    }

    #[test]
    fn good_values_apply() {
        let b = apply_map(&[
            ("KMEM_MEM", "64M"),
            ("KMEM_PROFILE", "i386"),
            ("KMEM_CPUS", "3"),
            ("KMEM_PCP", "0"),
            ("KMEM_TRIM_AFTER_MS", "0"),
            ("KMEM_LOG_ECHO", "off"),
            ("KMEM_FAIL_PAGE_ALLOC", "1,100,0,1,min-order=0"),
            ("KMEM_SLUB_DEBUG", "Z,kmalloc-*"),
            ("KMEM_INIT_ON_FREE", "1"),
            ("KMEM_SLAB_MERGE", "0"),
            ("KMEM_MEMPOOL_DEBUG", "1"),
        ])
        .unwrap();
        assert!(b.settings().mempool_debug);
        assert_eq!(b.settings().mem_bytes, Some(64 << 20));
        assert_eq!(b.settings().profile, Profile::I386);
        assert_eq!(b.settings().cpus, Some(3));
        assert!(!b.settings().pcp);
        assert_eq!(b.settings().slub_debug.as_deref(), Some("Z,kmalloc-*"));
        assert!(b.settings().slab.init_on_free && !b.settings().slab.merge);
        assert_eq!(b.settings().trim_after, None, "0 means never");
        let b = apply_map(&[("KMEM_TRIM_AFTER_MS", "250")]).unwrap();
        assert_eq!(b.settings().trim_after, Some(Duration::from_millis(250)));
    }
}
