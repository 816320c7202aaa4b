//! Building the driver stack from the configuration, or by probing when there is none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use svirt_core::config::{BuildContext, Config, DriverConfig};
use svirt_core::db::Db;
use svirt_core::domains::{Blocking, Domains};
use svirt_core::host::{Host, LinuxHost};
use svirt_core::manager::SecurityManager;

// Each driver crate registers its `[[driver]]` name with typetag; referencing the crates here
// makes sure the registrations are linked into the binary.
use svirt_dac as _;
use svirt_landlock as _;
use svirt_selinux as _;

/// The configuration file used when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG: &str = "/etc/svirt/svirt.toml";

/// Everything a command needs.
pub struct Env {
    pub domains: Domains,
    pub host: Arc<dyn Host>,
    pub state_dir: PathBuf,
}

/// Load the configuration (or probe), apply `--state-dir`, and build every driver.
pub async fn load(config: Option<&Path>, state_dir: Option<&Path>) -> Result<Env> {
    let mut cfg = match config {
        Some(p) => Config::from_file(p)?,
        None if Path::new(DEFAULT_CONFIG).exists() => Config::from_file(Path::new(DEFAULT_CONFIG))?,
        None => Config::default(),
    };
    if let Some(s) = state_dir {
        svirt_core::config::check_state_dir(s)?;
        cfg.state_dir = s.to_owned();
    }
    let host: Arc<dyn Host> = Arc::new(LinuxHost::default());
    // On this thread, as every operation of this process (`Blocking::Inline` below): the
    // runtime has nothing else to run meanwhile.
    let db = Arc::new(Db::open(&cfg.state_dir).context("opening the state database")?);
    let build = BuildContext::new(cfg.state_dir.clone(), host.clone(), db.clone());
    if cfg.drivers.is_empty() {
        cfg.drivers = probe_defaults();
    }
    let mut drivers = Vec::new();
    for d in &cfg.drivers {
        let driver = d
            .build(&build)
            .context("cannot build a configured driver")?;
        let probe = driver.probe().await;
        if !probe.available {
            return Err(svirt_core::Error::DriverUnavailable {
                driver: driver.model().to_owned(),
                reason: probe.detail,
            }
            .into());
        }
        drivers.push(driver);
    }
    let manager = SecurityManager::new(drivers, cfg.require_confined)?;
    let domains = Domains::new(
        manager,
        host.clone(),
        db,
        &cfg.state_dir,
        crate::progress::terminal_bar(),
    )
    .with_relabel_threads(cfg.relabel_threads)
    // One operation per process, and nothing else for the runtime to run while it waits: a
    // blocking-pool thread per call only cost its creation and two wakeups across CPUs.
    .with_blocking(Blocking::Inline);
    Ok(Env {
        domains,
        host,
        state_dir: cfg.state_dir.clone(),
    })
}

/// Without a configuration: SELinux when the kernel runs it, DAC when running as root, otherwise
/// the no-op driver.
pub fn probe_defaults() -> Vec<Box<dyn DriverConfig>> {
    let mut out: Vec<Box<dyn DriverConfig>> = Vec::new();
    if svirt_selinux::Kernel::mode(&svirt_selinux::LibSelinux).is_some() {
        out.push(Box::new(svirt_selinux::SelinuxConfig::default()));
    }
    if nix::unistd::geteuid().is_root() {
        out.push(Box::new(svirt_dac::DacConfig::default()));
    }
    if out.is_empty() {
        out.push(Box::new(svirt_core::noop::NoopConfig {}));
    }
    out
}

/// Every driver compiled into this binary, with default settings, for `svirt drivers`.
pub fn compiled() -> Vec<(&'static str, Box<dyn DriverConfig>)> {
    vec![
        ("selinux", Box::new(svirt_selinux::SelinuxConfig::default())),
        ("dac", Box::new(svirt_dac::DacConfig::default())),
        (
            "landlock",
            Box::new(svirt_landlock::LandlockConfig::default()),
        ),
        ("none", Box::new(svirt_core::noop::NoopConfig {})),
    ]
}
