//! svirt-landlock's own errors; they reach callers as `svirt_core::Error::Driver { model: "landlock" }`.

use std::path::PathBuf;

/// What can go wrong in the Landlock driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandlockError {
    /// The kernel's Landlock ABI is below `min_abi`.
    #[error("the kernel's Landlock ABI is {kernel}, below min_abi = {min}; lower min_abi to accept weaker confinement ({lost})")]
    AbiTooOld { kernel: i32, min: i32, lost: String },
    /// A path of the ruleset cannot be opened.
    #[error("cannot open {path} for the Landlock ruleset")]
    Open {
        path: PathBuf,
        #[source]
        source: landlock::PathFdError,
    },
    /// A domain's resource must never be granted to its VMM.
    #[error("refusing to grant {path} to domain {domain}: {reason}")]
    Refused {
        domain: String,
        path: PathBuf,
        reason: String,
    },
    /// The kernel refused the ruleset.
    #[error("cannot build the Landlock ruleset for domain {domain}")]
    Ruleset {
        domain: String,
        #[source]
        source: landlock::RulesetError,
    },
}

impl From<LandlockError> for svirt_core::Error {
    fn from(e: LandlockError) -> Self {
        svirt_core::Error::driver("landlock", e)
    }
}
