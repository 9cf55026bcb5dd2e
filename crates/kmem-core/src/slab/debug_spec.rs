//! The `slab_debug=` boot option (alias `slub_debug=`; `KMEM_SLUB_DEBUG` on the userspace
//! machine): which debug flags go to which caches (SEMANTICS §3.8).
//!
//! Syntax: blocks separated by `;`, each `<letters>[,<cache>[,<cache>…]]`. Letters: `F`
//! consistency checks, `Z` red zone, `P` poison, `U` store user, `T` trace, `A` failslab, `O`
//! (in any block: a cache whose debug metadata would raise the order of one object goes
//! without the metadata flags, `kmem_cache_open`'s `disable_higher_order_debug`), `-` none. A block without
//! letters means `FZPU`; `-` drops the letters before it. A block without names sets the
//! global flags (the last such block wins); a cache named in a block gets that block's flags
//! instead of the global ones (the first matching block wins, as in `kmem_cache_flags`); a
//! name ending in `*` matches every cache name with that prefix. The spec is kept as text (no
//! heap in the core) and parsed again for each cache created.

use core::fmt;

use super::flags::{
    SLAB_CONSISTENCY_CHECKS, SLAB_FAILSLAB, SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER, SLAB_TRACE, SlabFlags,
};

/// The longest spec kept.
pub const MAX_SPEC_LEN: usize = 256;

/// `DEBUG_DEFAULT_FLAGS`: what a block without letters means.
pub const DEBUG_DEFAULT_FLAGS: SlabFlags =
    SLAB_CONSISTENCY_CHECKS.union(SLAB_RED_ZONE).union(SLAB_POISON).union(SLAB_STORE_USER);

/// A validated `slab_debug=` value.
#[derive(Clone, Copy)]
pub struct DebugSpec {
    buf: [u8; MAX_SPEC_LEN],
    len: usize,
}

impl fmt::Debug for DebugSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DebugSpec({:?})", self.as_str())
    }
}

/// A `slab_debug=` value that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDebugSpec {
    /// A letter that is not an option (the kernel skips it with `slab_debug option '%c' unknown. skipped`).
    UnknownOption(char),
    /// Longer than [`MAX_SPEC_LEN`].
    TooLong,
}

impl fmt::Display for BadDebugSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadDebugSpec::UnknownOption(c) => write!(f, "slab_debug option '{c}' unknown (options: FZPUTAO-)"),
            BadDebugSpec::TooLong => write!(f, "slab_debug value longer than {MAX_SPEC_LEN} bytes"),
        }
    }
}

impl core::error::Error for BadDebugSpec {}

fn letter_flags(c: char) -> Result<SlabFlags, BadDebugSpec> {
    Ok(match c.to_ascii_uppercase() {
        'F' => SLAB_CONSISTENCY_CHECKS,
        'Z' => SLAB_RED_ZONE,
        'P' => SLAB_POISON,
        'U' => SLAB_STORE_USER,
        'T' => SLAB_TRACE,
        'A' => SLAB_FAILSLAB,
        'O' | '-' => SlabFlags::empty(),
        other => return Err(BadDebugSpec::UnknownOption(other)),
    })
}

fn block_flags(letters: &str) -> Result<SlabFlags, BadDebugSpec> {
    if letters.is_empty() {
        return Ok(DEBUG_DEFAULT_FLAGS);
    }
    // `-` switches off what came before it in the block, as `parse_slub_debug_flags` does.
    letters.chars().try_fold(SlabFlags::empty(), |acc, c| {
        Ok(if c == '-' { SlabFlags::empty() } else { acc.union(letter_flags(c)?) })
    })
}

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

impl DebugSpec {
    /// No debugging.
    pub const fn none() -> Self {
        Self { buf: [0; MAX_SPEC_LEN], len: 0 }
    }

    /// Parses and keeps `spec`.
    ///
    /// # Errors
    /// An unknown option letter, or a spec that is too long.
    pub fn new(spec: &str) -> Result<Self, BadDebugSpec> {
        if spec.len() > MAX_SPEC_LEN {
            return Err(BadDebugSpec::TooLong);
        }
        for block in spec.split(';') {
            block_flags(block.split(',').next().unwrap_or(""))?;
        }
        let mut me = Self::none();
        me.buf[..spec.len()].copy_from_slice(spec.as_bytes());
        me.len = spec.len();
        Ok(me)
    }

    /// The spec as given.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Whether no spec was given.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any block has the letter `O` (`disable_higher_order_debug`): caches whose debug
    /// metadata would raise the order one object needs do without that metadata.
    pub fn disables_higher_order_debug(&self) -> bool {
        self.as_str().split(';').any(|b| b.split(',').next().unwrap_or("").contains(['O', 'o']))
    }

    /// The debug flags for a cache named `name` (`kmem_cache_flags`): the flags of the first
    /// block whose name list matches; otherwise the global flags, set by the last block without
    /// names (none when every block names caches).
    pub fn flags_for(&self, name: &str) -> SlabFlags {
        let mut global = SlabFlags::empty();
        for block in self.as_str().split(';').filter(|b| !b.is_empty()) {
            let mut parts = block.split(',');
            let letters = parts.next().unwrap_or("");
            let Ok(f) = block_flags(letters) else { continue };
            if !block.contains(',') {
                global = f;
            } else if parts.filter(|n| !n.is_empty()).any(|n| matches(n, name)) {
                return f;
            }
        }
        global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_names_globs_and_blocks() {
        let all = DebugSpec::new("").unwrap();
        assert_eq!(all.flags_for("x"), SlabFlags::empty(), "an empty spec means no debugging");
        let fzpu = DebugSpec::new(",kmalloc-*").unwrap();
        assert_eq!(fzpu.flags_for("kmalloc-64"), DEBUG_DEFAULT_FLAGS);
        assert_eq!(fzpu.flags_for("dentry"), SlabFlags::empty());
        // A matching named block replaces the global flags (`kmem_cache_flags` returns early).
        let s = DebugSpec::new("Z,dentry;P,kmalloc-64,foo*;U").unwrap();
        assert_eq!(s.flags_for("dentry"), SLAB_RED_ZONE);
        assert_eq!(s.flags_for("kmalloc-64"), SLAB_POISON);
        assert_eq!(s.flags_for("foobar"), SLAB_POISON);
        assert_eq!(s.flags_for("kmalloc-128"), SLAB_STORE_USER);
        assert_eq!(s.flags_for("dentry2"), SLAB_STORE_USER, "no glob: the whole name must match");
        assert_eq!(DebugSpec::new("ZP,a;;F,a").unwrap().flags_for("a"), SLAB_RED_ZONE.union(SLAB_POISON));
        assert_eq!(DebugSpec::new("Z-P").unwrap().flags_for("c"), SLAB_POISON);
        assert_eq!(DebugSpec::new("U;Z").unwrap().flags_for("c"), SLAB_RED_ZONE, "the last global block wins");
        assert_eq!(DebugSpec::new("fa").unwrap().flags_for("c"), SLAB_CONSISTENCY_CHECKS.union(SLAB_FAILSLAB));
        assert_eq!(DebugSpec::new("-").unwrap().flags_for("c"), SlabFlags::empty());
        assert!(DebugSpec::new("F;zo,c").unwrap().disables_higher_order_debug());
        assert!(!DebugSpec::new("FZPU,co*").unwrap().disables_higher_order_debug(), "a name is no letter");
        assert_eq!(
            DebugSpec::new("FZPUTAO").unwrap().flags_for("c"),
            DEBUG_DEFAULT_FLAGS.union(SLAB_TRACE).union(SLAB_FAILSLAB)
        );
    }

    #[test]
    fn bad_specs_are_errors() {
        assert_eq!(DebugSpec::new("FX").unwrap_err(), BadDebugSpec::UnknownOption('X'));
        assert_eq!(DebugSpec::new("F;q,c").unwrap_err(), BadDebugSpec::UnknownOption('Q'));
        let long = "F,".repeat(200);
        assert_eq!(DebugSpec::new(&long).unwrap_err(), BadDebugSpec::TooLong);
    }
}
