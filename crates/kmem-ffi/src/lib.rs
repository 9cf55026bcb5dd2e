#![doc = include_str!("../README.md")]

pub mod boundary;
pub mod context;
pub mod module;
pub mod pages;
pub mod printk;
pub mod proc;

pub use boundary::{DEFAULT_PROFILE, machine};
