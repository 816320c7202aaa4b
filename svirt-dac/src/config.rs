//! `[[driver]] driver = "dac"`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::driver::SecurityDriver;

use crate::driver::DacDriver;
use crate::ids::{check_shared_group, sys_gid_max, IdRange};

/// DAC driver settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DacConfig {
    /// The uids (and gids) handed out to VMs, `LOW-HIGH`.
    #[serde(default = "default_range")]
    pub uid_range: String,
    /// The group of shareable and read-only images; every VM process gets it. Default: the
    /// range's highest id, which is then never handed out to a VM.
    #[serde(default)]
    pub shared_group: Option<u32>,
    /// The account databases checked for overlap and used to look names up.
    #[serde(default = "default_passwd")]
    pub passwd: PathBuf,
    #[serde(default = "default_group")]
    pub group: PathBuf,
    /// The login.defs whose `SYS_GID_MAX` (else `GID_MIN - 1`, else 999) ends the system group
    /// range; the shared group must lie above it.
    #[serde(default = "default_login_defs")]
    pub login_defs: PathBuf,
    /// The procfs mount, read for the user namespace svirt runs in.
    #[serde(default = "default_proc")]
    pub proc: PathBuf,
}

fn default_login_defs() -> PathBuf {
    PathBuf::from("/etc/login.defs")
}
fn default_proc() -> PathBuf {
    PathBuf::from("/proc")
}

fn default_range() -> String {
    "64000-64999".into()
}
fn default_passwd() -> PathBuf {
    PathBuf::from("/etc/passwd")
}
fn default_group() -> PathBuf {
    PathBuf::from("/etc/group")
}

impl Default for DacConfig {
    fn default() -> Self {
        DacConfig {
            uid_range: default_range(),
            shared_group: None,
            passwd: default_passwd(),
            group: default_group(),
            login_defs: default_login_defs(),
            proc: default_proc(),
        }
    }
}

#[typetag::serde(name = "dac")]
impl DriverConfig for DacConfig {
    fn build(&self, ctx: &BuildContext) -> svirt_core::Result<Arc<dyn SecurityDriver>> {
        let range = IdRange::parse(&self.uid_range)?;
        range.check_free(&self.passwd, "user")?;
        range.check_free(&self.group, "group")?;
        let shared = self.shared_group.unwrap_or(range.hi);
        check_shared_group(shared, sys_gid_max(&self.login_defs))?;
        Ok(Arc::new(DacDriver::new(self.clone(), range, shared, ctx)))
    }
}
