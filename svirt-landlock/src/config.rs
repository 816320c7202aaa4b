//! `[[driver]] driver = "landlock"`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::driver::SecurityDriver;

use crate::driver::LandlockDriver;

/// The ABI the default features need: TCP rules (4) and scoping of signals and abstract unix
/// sockets (6).
pub const DEFAULT_MIN_ABI: i32 = 6;

/// Landlock driver settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockConfig {
    /// Refuse to start on a kernel whose Landlock ABI is lower (no silent weakening).
    #[serde(default = "default_min_abi")]
    pub min_abi: i32,
    /// Read-and-execute paths every VMM needs: binaries, libraries, firmware, the loader cache.
    #[serde(default = "default_system_ro")]
    pub system_ro: Vec<PathBuf>,
    /// Read-write paths every VMM needs: a few device nodes.
    #[serde(default = "default_system_rw")]
    pub system_rw: Vec<PathBuf>,
}

fn default_min_abi() -> i32 {
    DEFAULT_MIN_ABI
}

fn default_system_ro() -> Vec<PathBuf> {
    [
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/lib64",
        "/usr/libexec",
        "/usr/share/qemu",
        "/usr/share/seabios",
        "/usr/share/ipxe",
        "/usr/share/OVMF",
        "/usr/share/ovmf",
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/etc/ld.so.cache",
        "/etc/localtime",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

fn default_system_rw() -> Vec<PathBuf> {
    [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/urandom",
        "/dev/random",
        "/dev/kvm",
    ]
    .into_iter()
    .map(PathBuf::from)
    .collect()
}

impl Default for LandlockConfig {
    fn default() -> Self {
        LandlockConfig {
            min_abi: default_min_abi(),
            system_ro: default_system_ro(),
            system_rw: default_system_rw(),
        }
    }
}

#[typetag::serde(name = "landlock")]
impl DriverConfig for LandlockConfig {
    fn build(&self, ctx: &BuildContext) -> svirt_core::Result<Arc<dyn SecurityDriver>> {
        if !(1..=7).contains(&self.min_abi) {
            return Err(svirt_core::Error::Config {
                reason: format!(
                    "landlock driver: min_abi = {} must be between 1 and 7",
                    self.min_abi
                ),
            });
        }
        Ok(Arc::new(
            LandlockDriver::new(self.clone(), crate::sys::kernel_abi(), ctx.host.clone())
                .with_state_dir(&ctx.state_dir),
        ))
    }
}
