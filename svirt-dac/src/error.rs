//! svirt-dac's own errors; they reach callers as `svirt_core::Error::Driver { model: "dac" }`.

/// What can go wrong in the DAC driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DacError {
    /// `uid_range` does not parse or is unusable.
    #[error("invalid uid_range {range:?}: {reason}")]
    BadRange { range: String, reason: String },
    /// The range overlaps accounts that already exist.
    #[error("uid_range {range} overlaps existing {what} {name} ({id}) in {file}")]
    RangeOverlap {
        range: String,
        what: &'static str,
        name: String,
        id: u32,
        file: String,
    },
    /// An account database cannot be read, so the range cannot be checked against it.
    #[error("cannot read {file} to check the uid range against existing accounts")]
    AccountsUnreadable {
        file: String,
        #[source]
        source: std::io::Error,
    },
    /// A static DAC label does not parse or names an unknown user or group.
    #[error("invalid DAC label {label:?}: {reason}")]
    BadLabel { label: String, reason: String },
    /// The shared group would hand the VMs a group that must never be theirs.
    #[error("shared_group {gid} is refused: {reason}")]
    BadSharedGroup { gid: u32, reason: String },
    /// A static label would run the VM as root or as an account of the host.
    #[error("static DAC label {label:?} is refused: {reason}")]
    AccountLabel { label: String, reason: String },
    /// svirt runs inside a user namespace, where ids outside its map do not exist.
    #[error("the DAC driver needs the initial user namespace: a real uid change (setresuid to a VM uid, chown to it) is impossible inside a user namespace ({map})")]
    UserNamespace { map: String },
    /// A stored DAC label is damaged.
    #[error("recorded DAC label {label:?} of domain {domain} is damaged")]
    BadRecord { domain: String, label: String },
}

impl From<DacError> for svirt_core::Error {
    fn from(e: DacError) -> Self {
        match e {
            DacError::BadRange { .. }
            | DacError::RangeOverlap { .. }
            | DacError::BadLabel { .. }
            | DacError::BadSharedGroup { .. }
            | DacError::AccountLabel { .. }
            | DacError::UserNamespace { .. } => svirt_core::Error::driver_refused("dac", e),
            DacError::AccountsUnreadable { .. } | DacError::BadRecord { .. } => {
                svirt_core::Error::driver("dac", e)
            }
        }
    }
}
