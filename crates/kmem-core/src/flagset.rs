//! What kmem's flag sets (`Gfp`, `SlabFlags`) share: the newtype plumbing — constructors, set
//! operations usable in `const` items, the `|`, `&`, `!` operators, `Debug` as `0x…(names)` —
//! and the kernel's `format_flags()` printing behind their `Display`.

use core::fmt;

/// `format_flags()` (lib/vsprintf.c, behind `%pGg` and `%pGs`): walks `names` in order, prints
/// each entry whose bits are *all* still set and clears them, names joined by `|`; the bits no
/// entry covers follow as one `0x…` number. An empty set prints nothing.
pub(crate) fn format_flags(
    f: &mut fmt::Formatter<'_>,
    bits: u32,
    names: impl IntoIterator<Item = (u32, &'static str)>,
) -> fmt::Result {
    let mut rest = bits;
    let mut sep = "";
    for (mask, name) in names {
        if rest == 0 {
            break;
        }
        if mask == 0 || rest & mask != mask {
            continue;
        }
        write!(f, "{sep}{name}")?;
        sep = "|";
        rest &= !mask;
    }
    if rest != 0 {
        write!(f, "{sep}{rest:#x}")?;
    }
    Ok(())
}

/// Implements the shared plumbing for `struct $name(u32)`; `$c` names the C type in the docs.
macro_rules! flag_set {
    ($name:ident, $c:literal) => {
        impl $name {
            /// The empty set.
            pub const fn empty() -> $name {
                $name(0)
            }

            #[doc = concat!("Wraps raw `", $c, "` bits; every bit is kept, known or not.")]
            pub const fn from_bits(bits: u32) -> $name {
                $name(bits)
            }

            #[doc = concat!("The raw `", $c, "` bits.")]
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// True when every bit of `other` is set in `self`.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// True when any bit of `other` is set in `self`.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }

            /// `self | other`, usable in `const` items.
            pub const fn union(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }

            /// `self & other`, usable in `const` items.
            pub const fn intersection(self, other: $name) -> $name {
                $name(self.0 & other.0)
            }

            /// `self & !other`: `self` with the bits of `other` cleared.
            pub const fn difference(self, other: $name) -> $name {
                $name(self.0 & !other.0)
            }
        }

        impl core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }

        impl core::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: $name) {
                self.0 |= rhs.0;
            }
        }

        impl core::ops::BitAnd for $name {
            type Output = $name;
            fn bitand(self, rhs: $name) -> $name {
                $name(self.0 & rhs.0)
            }
        }

        impl core::ops::BitAndAssign for $name {
            fn bitand_assign(&mut self, rhs: $name) {
                self.0 &= rhs.0;
            }
        }

        impl core::ops::Not for $name {
            type Output = $name;
            /// All 32 bits inverted, like C's `~`.
            fn not(self) -> $name {
                $name(!self.0)
            }
        }

        /// Prints like the kernel's `"%#x(%pG…)"`, e.g. `0xcc0(GFP_KERNEL)`, `0x0()`.
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:#x}({self})", self.0)
            }
        }
    };
}
pub(crate) use flag_set;
