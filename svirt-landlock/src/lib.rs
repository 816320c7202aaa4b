//! svirt-landlock: on any Linux with Landlock (no policy to install), confine each VM process to
//! exactly its resources. The ruleset is computed from the domain, built before the fork, and
//! enforced in the child just before exec, after `no_new_privs`:
//! - read-write images, shares, devices: read and write; read-only content: read;
//! - the VMM's own needs from a small configurable profile (`system_ro`, `system_rw`);
//! - everything else on the filesystem denied;
//! - TCP bind and connect denied unless the domain declares ports (ABI >= 4);
//! - signals and abstract unix sockets scoped to the VM's own Landlock domain (ABI >= 6).
//!
//! Nothing on disk changes, so stop has nothing to restore.

mod config;
mod driver;
mod error;
mod rules;
mod sys;
mod wall;

pub use config::LandlockConfig;
pub use driver::LandlockDriver;
pub use error::LandlockError;
pub use rules::{Grant, PathRule, RuleSet};
pub use sys::kernel_abi;
pub use wall::{LandlockFacts, LandlockWall};
