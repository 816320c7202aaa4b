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

/// A pool uid must not be one svirt's signalling threads take as their real uid
/// ([`svirt_core::host::SIGNAL_SENDER_UIDS`]): a guest running with it could stop or kill svirt
/// in the middle of a hold.
fn check_clear_of_senders(range: &IdRange, text: &str) -> svirt_core::Result<()> {
    let senders = svirt_core::host::SIGNAL_SENDER_UIDS;
    if range.hi < *senders.start() {
        return Ok(());
    }
    Err(crate::DacError::BadRange {
        range: text.to_owned(),
        reason: format!(
            "it reaches into {}-{}, the uids svirt takes as the real uid of its thread that \
             signals a VM's processes",
            senders.start(),
            senders.end()
        ),
    }
    .into())
}

#[typetag::serde(name = "dac")]
impl DriverConfig for DacConfig {
    fn build(&self, ctx: &BuildContext) -> svirt_core::Result<Arc<dyn SecurityDriver>> {
        let range = IdRange::parse(&self.uid_range)?;
        check_clear_of_senders(&range, &self.uid_range)?;
        range.check_free(&self.passwd, "user")?;
        range.check_free(&self.group, "group")?;
        let shared = self.shared_group.unwrap_or(range.hi);
        check_shared_group(shared, sys_gid_max(&self.login_defs))?;
        Ok(Arc::new(DacDriver::new(self.clone(), range, shared, ctx)))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_clear_of_senders, IdRange};
    use svirt_core::host::{signal_sender_uid, SIGNAL_SENDER_UIDS};

    fn check(text: &str) -> Result<(), String> {
        let range = IdRange::parse(text).map_err(|e| e.to_string())?;
        check_clear_of_senders(&range, text).map_err(|e| svirt_core::display_chain(&e))
    }

    #[test]
    fn a_pool_reaching_the_signalling_threads_uids_is_refused() {
        let first = *SIGNAL_SENDER_UIDS.start();
        assert!(SIGNAL_SENDER_UIDS.contains(&signal_sender_uid()));
        check("100000-199999").unwrap();
        check(&format!("{}-{}", first - 1000, first - 1)).unwrap();
        for text in [
            format!("{}-{}", first - 1000, first),
            format!("{}-{}", u32::MAX - 100, u32::MAX - 1),
        ] {
            let e = check(&text).unwrap_err();
            assert!(
                e.contains(&text) && e.contains("signals a VM's processes"),
                "{e}"
            );
        }
    }
}
