//! `svirt.toml`: the state directory, the confinement policy, and the driver stack, each driver
//! chosen by name (`[[driver]] driver = "selinux"`) through typetag. Unknown keys are refused.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::driver::SecurityDriver;
use crate::error::{Error, Result};
use crate::host::Host;
use crate::store::LabelStore;

/// The default state directory: persistent, so a reboot never loses what must be put back.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/svirt";

/// What a driver needs from its surroundings when it is built.
#[derive(Clone)]
pub struct BuildContext {
    pub state_dir: PathBuf,
    pub host: Arc<dyn Host>,
    pub store: Arc<dyn LabelStore>,
    /// Where host-derived resources (VFIO groups, USB and SCSI nodes, swtpm files) are found.
    pub host_paths: crate::domain::HostPaths,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("state_dir", &self.state_dir)
            .field("host", &self.host)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl BuildContext {
    /// A context over `host`, with reservations in `store`.
    pub fn new(state_dir: PathBuf, host: Arc<dyn Host>, store: Arc<dyn LabelStore>) -> Self {
        BuildContext {
            state_dir,
            host,
            store,
            host_paths: crate::domain::HostPaths::default(),
        }
    }
}

/// One `[[driver]]` table. Each driver crate registers its own with `#[typetag::serde(name=..)]`.
#[typetag::serde(tag = "driver")]
pub trait DriverConfig: Debug + Send + Sync {
    /// Build the driver.
    fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn SecurityDriver>>;
}

/// The whole configuration file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Refuse domains that no driver confines.
    #[serde(default)]
    pub require_confined: bool,
    /// Threads that relabel a directory share (walk, change, restore): 1 for one core; absent
    /// or 0 for every core (at most 4).
    #[serde(default)]
    pub relabel_threads: Option<usize>,
    /// The driver stack, primary first. Empty means: probe.
    #[serde(default, rename = "driver")]
    pub drivers: Vec<Box<dyn DriverConfig>>,
}

/// The state directory must be absolute: a relative one would name another directory for every
/// working directory, so a `stop` from elsewhere would find no domain and restore nothing.
pub fn check_state_dir(dir: &Path) -> Result<()> {
    if dir.is_absolute() {
        Ok(())
    } else {
        Err(Error::Config {
            reason: format!(
                "state_dir {} is relative; it must be an absolute path",
                dir.display()
            ),
        })
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: default_state_dir(),
            require_confined: false,
            relabel_threads: None,
            drivers: Vec::new(),
        }
    }
}

impl Config {
    /// Parse configuration text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let c: Config = toml::from_str(text).map_err(|e| Error::Config {
            reason: e.to_string().trim().replace('\n', " "),
        })?;
        check_state_dir(&c.state_dir)?;
        Ok(c)
    }

    /// Read and parse a configuration file (`-`: standard input). It must be a regular file of
    /// at most [`crate::input::MAX_INPUT`] bytes; it is opened without blocking.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::input::read(path).map_err(|e| Error::Config {
            reason: format!(
                "cannot read {}: {}",
                path.display(),
                crate::display_chain(&e)
            ),
        })?;
        Self::from_toml(&text).map_err(|e| match e {
            Error::Config { reason } => Error::Config {
                reason: format!("{}: {reason}", path.display()),
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_none_driver_and_rejects_unknown_keys_and_drivers() {
        let c = Config::from_toml("state_dir = '/tmp/x'\n[[driver]]\ndriver = 'none'\n").unwrap();
        assert_eq!(c.drivers.len(), 1);
        assert_eq!(c.state_dir, PathBuf::from("/tmp/x"));
        let e = Config::from_toml("stat_dir = '/tmp/x'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("stat_dir"), "{e}");
        let e = Config::from_toml("[[driver]]\ndriver = 'apparmor'\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("apparmor"), "{e}");
        let e = Config::from_toml("[[driver]]\ndriver = 'none'\nextra = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra"), "{e}");
        assert_eq!(
            Config::from_toml("").unwrap().state_dir,
            PathBuf::from("/var/lib/svirt")
        );
    }

    #[test]
    fn a_relative_state_dir_is_refused_with_its_name() {
        for rel in ["state", "./state", ""] {
            let e = Config::from_toml(&format!("state_dir = '{rel}'\n")).unwrap_err();
            assert!(
                matches!(&e, Error::Config { reason } if reason.contains("is relative")),
                "{rel}: {e}"
            );
        }
    }
}
