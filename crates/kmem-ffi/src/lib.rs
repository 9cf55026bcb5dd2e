#![doc = include_str!("../README.md")]

pub mod boundary;
pub mod buckets;
pub mod context;
pub mod kmalloc;
pub mod kmemleak;
pub mod mempool;
pub mod mempool_helpers;
pub mod module;
pub mod pages;
pub mod printk;
pub mod proc;
pub mod ratelimit;
pub mod rcu;
pub mod scope;
pub mod sheaf;
pub mod shim;
pub mod slab;
pub mod uio;
pub mod vm_struct;
pub mod vmalloc;

pub use boundary::{DEFAULT_PROFILE, machine};
