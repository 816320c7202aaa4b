//! svirt-core: the framework every svirt security driver plugs into.
//!
//! - [`driver::SecurityDriver`]: the object-safe driver API over the whole VM lifecycle.
//! - [`manager::SecurityManager`]: an ordered stack of drivers with rollback.
//! - [`domain`]: the domain model, from svirt TOML or libvirt XML, with libvirt's rules.
//! - [`context`]: security contexts, MLS levels and ranges.
//! - [`mcs`] and [`store`]: the bounded MCS allocator and where its reservations live.
//! - [`db`]: the one transactional state database (records, reservations, originals).
//! - [`host`]: the seam every syscall goes through, with a recording fake (`test-util`).
//! - [`domains`]: the lifecycle (start, stop, attach, detach, recover, status) over the stack.
//! - [`db`]: the one transactional state database (records, reservations, originals).
//! - [`engine`] and [`attr`]: remembered originals per inode, applying and restoring them.
//! - [`noop`]: the `none` driver.
//! - [`audit`]: what a VM process could open on the host as it is now, wall by wall.

pub mod attr;
pub mod audit;
pub mod config;
pub mod context;
pub mod db;
pub mod domain;
pub mod domains;
pub mod driver;
pub mod engine;
pub mod error;
pub mod exec;
pub mod failpoint;
pub mod fsutil;
pub mod host;
pub mod ids;
pub mod input;
pub mod manager;
pub mod mcs;
pub mod noop;
pub mod safe;
pub mod store;
mod sys;
pub mod tree;

pub use error::{display_chain, Error, Result};
