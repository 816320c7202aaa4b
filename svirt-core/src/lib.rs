//! svirt-core: the framework every svirt security driver plugs into.
//!
//! - [`driver::SecurityDriver`]: the object-safe driver API over the whole VM lifecycle.
//! - [`manager::SecurityManager`]: an ordered stack of drivers with rollback.
//! - [`domain`]: the domain model, from svirt TOML or libvirt XML, with libvirt's rules.
//! - [`context`]: security contexts, MLS levels and ranges.
//! - [`mcs`] and [`store`]: the bounded MCS allocator and where its reservations live.
//! - [`host`]: the seam every syscall goes through, with a recording fake (`test-util`).
//! - [`remember`] and [`relabel`]: remembered originals and safe, recoverable relabeling.
//! - [`noop`]: the `none` driver.

pub mod config;
pub mod context;
pub mod domain;
pub mod driver;
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
pub mod relabel;
pub mod remember;
pub mod safe;
pub mod store;
mod sys;
pub mod tree;

pub use error::{display_chain, Error, Result};
