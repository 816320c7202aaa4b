//! svirt-selinux's own errors; they reach callers as `svirt_core::Error::Driver { model: "selinux" }`.

use std::path::PathBuf;

/// What can go wrong in the SELinux driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SelinuxError {
    /// The kernel does not run SELinux and offline mode is off.
    #[error("SELinux is not enabled in this kernel; set offline = true to label files without confining processes")]
    NotEnabled,
    /// The manager's own context cannot be read.
    #[error("cannot read the manager's own SELinux context; set manager_context")]
    NoManagerContext(#[source] std::io::Error),
    /// A policy contexts file is missing or wrong.
    #[error("cannot read {what} from {path}; set {key} in the configuration")]
    ContextsFile {
        what: &'static str,
        path: PathBuf,
        key: &'static str,
    },
    /// Offline mode labels files only.
    #[error(
        "offline mode sets no process labels; domain {domain} cannot be run under SELinux here"
    )]
    OfflineExec { domain: String },
    /// A recorded label is damaged.
    #[error("recorded SELinux label {label:?} of domain {domain} is damaged")]
    BadRecord { domain: String, label: String },
    /// A label contains a NUL byte.
    #[error("label {label:?} contains a NUL byte")]
    Nul { label: String },
    /// A binary policy file cannot be loaded into libsepol.
    #[error("cannot load the SELinux policy {path}")]
    PolicyLoad {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A context or class the policy does not define.
    #[error("{what} {name} is not defined by the policy {policy}")]
    NotInPolicy {
        what: &'static str,
        name: String,
        policy: PathBuf,
    },
    /// libsepol could not compute a decision.
    #[error("libsepol cannot decide {source_context} on {target} ({class})")]
    Compute {
        source_context: String,
        target: String,
        class: String,
    },
    /// No policy to decide against.
    #[error("no SELinux policy to decide against: SELinux does not run and none is installed under {root}; give one with --policy")]
    NoPolicy { root: PathBuf },
    /// A live process's label disagrees with the record.
    #[error("process {pid} of domain {domain} runs as {live}, but svirt recorded {recorded}")]
    LiveMismatch {
        domain: String,
        pid: u32,
        live: String,
        recorded: String,
    },
}

impl From<SelinuxError> for svirt_core::Error {
    fn from(e: SelinuxError) -> Self {
        match e {
            // What the configuration or the domain asks for cannot be done here.
            SelinuxError::NotEnabled
            | SelinuxError::ContextsFile { .. }
            | SelinuxError::OfflineExec { .. }
            | SelinuxError::Nul { .. }
            | SelinuxError::PolicyLoad { .. }
            | SelinuxError::NotInPolicy { .. }
            | SelinuxError::NoPolicy { .. } => svirt_core::Error::driver_refused("selinux", e),
            SelinuxError::Compute { .. } => svirt_core::Error::driver("selinux", e),
            SelinuxError::NoManagerContext(_)
            | SelinuxError::BadRecord { .. }
            | SelinuxError::LiveMismatch { .. } => svirt_core::Error::driver("selinux", e),
        }
    }
}
