//! Slab caches (SLUB, SEMANTICS.md §3): the arithmetic a cache is built on.
//!
//! [`flags`] has the `SLAB_*` cache flags with their derived bit values, masks and the seeds'
//! legacy names; [`layout`] computes a cache's alignment, object layout, slab order, partial-list
//! budgets and whether a new cache merges into an existing one. Everything here is pure: no
//! memory is touched and no cache object exists.

pub mod flags;
pub mod layout;
