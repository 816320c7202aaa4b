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
            | SelinuxError::Nul { .. } => svirt_core::Error::driver_refused("selinux", e),
            SelinuxError::NoManagerContext(_)
            | SelinuxError::BadRecord { .. }
            | SelinuxError::LiveMismatch { .. } => svirt_core::Error::driver("selinux", e),
        }
    }
}
