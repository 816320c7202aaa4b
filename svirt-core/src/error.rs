//! svirt-core's one error type. Every driver's `SecurityDriver` methods return it, so a manager
//! can stack drivers and a caller can match causes such as [`Error::LabelsExhausted`].

use std::io;
use std::path::PathBuf;

/// Result with svirt-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in svirt-core and the drivers built on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A security context, level or range does not parse.
    #[error("invalid security context {input:?}: {reason}")]
    ContextSyntax { input: String, reason: String },

    /// Two MLS ranges have no common part.
    #[error("ranges {a} and {b} are incomparable")]
    IncomparableRanges { a: String, b: String },

    /// The manager's category range is too small to hand out pairs.
    #[error("category range {range} has {count} categories; at least 8 are needed")]
    CategoryRangeTooSmall { range: String, count: u32 },

    /// Every MCS pair of the range is in use.
    #[error("MCS labels exhausted: all {total} category pairs of {range} are in use")]
    LabelsExhausted { range: String, total: u64 },

    /// Every id of a pool is held (by a domain, or by a running process that carries it).
    #[error("ids exhausted: every id of {range} is held by a domain or a running process")]
    IdsExhausted { range: String },

    /// A label is already reserved by someone else.
    #[error("label {label} is already in use by {holders}")]
    LabelInUse { label: String, holders: String },

    /// A label is outside the range the manager may hand out.
    #[error("label {label} lies outside the manager's range {range}")]
    LabelOutsideRange { label: String, range: String },

    /// Reading or writing the state directory (label store, journal, records) failed.
    #[error("cannot {operation} {path}")]
    State {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The state database refused an operation (locked past the busy timeout, disk full, I/O).
    #[error("cannot {operation} state database {path}")]
    Database {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The facts a driver recorded with a label do not read as that driver's type.
    #[error("the {model} facts recorded with a label cannot be read")]
    LabelFacts {
        model: String,
        #[source]
        source: serde_json::Error,
    },

    /// A state file exists but cannot be understood.
    #[error("state file {path} is corrupt: {reason}")]
    StateCorrupt { path: PathBuf, reason: String },

    /// The label store was made for another category range.
    #[error("label store {path} holds labels of range {stored}, but the manager now uses {wanted}; stop those domains first")]
    StoreRangeMismatch {
        path: PathBuf,
        stored: String,
        wanted: String,
    },

    /// A domain description does not parse.
    #[error("cannot parse domain {source_name} as {format}: {reason}")]
    DomainParse {
        source_name: String,
        format: &'static str,
        reason: String,
    },

    /// A domain description parses but breaks a rule.
    #[error("domain {domain}: {reason}")]
    DomainInvalid { domain: String, reason: String },

    /// A domain name that must not reach a label, uid or file name.
    #[error("invalid domain name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// The svirt configuration is wrong.
    #[error("invalid configuration: {reason}")]
    Config { reason: String },

    /// A driver named in the configuration cannot run on this host.
    #[error("security driver {driver} is not available: {reason}")]
    DriverUnavailable { driver: String, reason: String },

    /// A domain names a model no configured driver provides.
    #[error(
        "domain {domain} asks for security model {model}, which no configured driver provides"
    )]
    ModelUnavailable { domain: String, model: String },

    /// `require_confined` is set and the domain would run unconfined.
    #[error("domain {domain} would run unconfined, and this host requires confinement")]
    Unconfined { domain: String },

    /// A host operation (syscall) failed.
    #[error("cannot {operation} {path}")]
    Host {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// svirt refuses to touch a path (system directory, wrong file type, symlink escape).
    #[error("refusing to relabel {path}: {reason}")]
    PathRefused { path: PathBuf, reason: String },

    /// A file is already labeled for another running domain.
    #[error("{path} is in use by domain {other} with {model} label {label}; domain {domain} cannot use it{hint}")]
    ResourceConflict {
        path: PathBuf,
        model: String,
        domain: String,
        other: String,
        label: String,
        hint: &'static str,
    },

    /// A directory share of a domain lies inside another of the same domain's: the inner
    /// entries would be changed twice, and the second change would take the first's value
    /// for their original.
    #[error("{path} is a directory share inside {outer}, another share of domain {domain}: give the VM only one of them")]
    SharesNested {
        path: PathBuf,
        outer: PathBuf,
        domain: String,
    },

    /// A directory share still holds the labels of a domain that is gone: its tree of
    /// originals is put back by `recover`, never taken over by a start.
    #[error("{path} is a directory share still labeled for domain {other}, which is gone; run `svirt recover` to put it back before domain {domain} uses it")]
    ShareNotRecovered {
        path: PathBuf,
        domain: String,
        other: String,
    },

    /// Processes still run with an identity drawn for the domain: its files are not given back
    /// nor its identities released under them.
    #[error("domain {domain} is still running: process(es) {pids} carry its {model} identity; stop them, then run `svirt stop {domain}` again")]
    StillCarried {
        domain: String,
        model: String,
        pids: String,
    },

    /// An entry of a directory share was renamed or replaced while a start labeled it.
    #[error("{path} was renamed or replaced while svirt labeled its share (does a process use the share?); the start is undone")]
    ShareMoved { path: PathBuf },

    /// A driver does not implement a mandatory operation.
    #[error("security driver {model} does not support {operation}")]
    Unsupported {
        model: String,
        operation: &'static str,
    },

    /// A driver refuses its configuration or a domain's labels (a configuration error, not a
    /// failed operation); the source is the driver crate's own error type.
    #[error("the {model} driver refuses this configuration")]
    DriverRefused {
        model: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A driver-specific failure; the source is the driver crate's own error type.
    #[error("{model} driver failed")]
    Driver {
        model: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A set-call failed and the earlier drivers were rolled back.
    #[error("{source}{}", rollback_note(.rollback_errors))]
    RolledBack {
        #[source]
        source: Box<Error>,
        rollback_errors: Vec<Error>,
    },

    /// A best-effort call (restore) failed in one or more places; every failure is listed.
    #[error("{} failure(s) while {operation}: {}", .errors.len(), list(.errors))]
    Several {
        operation: &'static str,
        errors: Vec<Error>,
    },

    /// A domain is not known to the state directory.
    #[error("no domain named {name} is running")]
    NoSuchDomain { name: String },

    /// A domain whose start did not finish (or that is stopping, or held) cannot take a VMM.
    #[error("domain {name} is not running (it is {phase}): a VMM runs only in a domain whose start finished; `svirt recover` puts an unfinished start back")]
    NotRunning { name: String, phase: &'static str },

    /// A domain of this name is already running.
    #[error("domain {name} is already running")]
    DomainExists { name: String },

    /// A domain has no such resource.
    #[error("domain {domain} has no disk {path}")]
    NoSuchResource { domain: String, path: PathBuf },

    /// A lifecycle task on the blocking pool did not finish (it panicked or was cancelled).
    #[error("a lifecycle task failed: {reason}")]
    TaskFailed { reason: String },

    /// The inode svirt changed cannot be found to put its original back.
    #[error("cannot restore {path}: {reason}")]
    InodeLost { path: PathBuf, reason: &'static str },

    /// A hold an svirt killed in the middle of it left was made by a driver this stack no
    /// longer has: what it stopped stays stopped until an operation runs with one.
    #[error("the processes a killed svirt held as {model} ids {ids} cannot be continued: the stack has no {model} driver; run any operation with the configuration it ran under")]
    HeldByMissingDriver { model: String, ids: String },

    /// Something remembered was changed by a driver this stack no longer has.
    #[error("cannot restore {path}: it was changed by the {model} driver, which is not in the configured stack")]
    ModelNotInStack { path: PathBuf, model: String },

    /// A stop (or recover) could not put everything back; the domain's identities stay
    /// reserved until it can.
    #[error("domain {domain} was not fully restored ({count} file(s)): {paths}; its labels stay reserved: fix the cause and run `svirt recover`", count = .failures.len(), paths = failure_paths(.failures))]
    NotRestored {
        domain: String,
        failures: Vec<Error>,
    },
}

fn failure_paths(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| crate::display_chain(e))
        .collect::<Vec<_>>()
        .join("; ")
}

fn rollback_note(errors: &[Error]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" (and rollback failed: {})", list(errors))
    }
}

fn list(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| crate::display_chain(e))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A host-call failure with the operation and path it concerned.
    pub fn host(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Host {
            operation,
            path: path.into(),
            source,
        }
    }

    /// A state-directory failure with the operation and path it concerned.
    pub fn state(operation: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::State {
            operation,
            path: path.into(),
            source,
        }
    }

    /// Wrap a driver crate's own error.
    pub fn driver(
        model: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Driver {
            model: model.into(),
            source: Box::new(source),
        }
    }

    /// Wrap a driver crate's own error that refuses configuration or labels.
    pub fn driver_refused(
        model: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::DriverRefused {
            model: model.into(),
            source: Box::new(source),
        }
    }

    /// True for errors in what svirt was given (configuration, domain, labels, paths it must
    /// refuse), which the CLI reports with exit code 2; false for failed operations.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::ContextSyntax { .. }
            | Error::IncomparableRanges { .. }
            | Error::CategoryRangeTooSmall { .. }
            | Error::LabelOutsideRange { .. }
            | Error::StoreRangeMismatch { .. }
            | Error::DomainParse { .. }
            | Error::DomainInvalid { .. }
            | Error::InvalidName { .. }
            | Error::Config { .. }
            | Error::DriverUnavailable { .. }
            | Error::ModelUnavailable { .. }
            | Error::Unconfined { .. }
            | Error::PathRefused { .. }
            | Error::DriverRefused { .. }
            | Error::SharesNested { .. } => true,
            Error::RolledBack { source, .. } => source.is_usage(),
            Error::State { .. }
            | Error::StateCorrupt { .. }
            | Error::LabelFacts { .. }
            | Error::LabelsExhausted { .. }
            | Error::IdsExhausted { .. }
            | Error::LabelInUse { .. }
            | Error::Host { .. }
            | Error::ResourceConflict { .. }
            | Error::ShareNotRecovered { .. }
            | Error::ShareMoved { .. }
            | Error::StillCarried { .. }
            | Error::Unsupported { .. }
            | Error::Driver { .. }
            | Error::Several { .. }
            | Error::NoSuchDomain { .. }
            | Error::NoSuchResource { .. }
            | Error::DomainExists { .. }
            | Error::NotRunning { .. }
            | Error::Database { .. }
            | Error::TaskFailed { .. }
            | Error::InodeLost { .. }
            | Error::ModelNotInStack { .. }
            | Error::HeldByMissingDriver { .. }
            | Error::NotRestored { .. } => false,
        }
    }

    /// Ok when `errors` is empty, the error itself when there is one, else [`Error::Several`].
    pub fn from_all(operation: &'static str, mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several { operation, errors }),
        }
    }

    /// The state database could not be written because its filesystem is full.
    pub fn is_state_full(&self) -> bool {
        match self {
            Error::Database { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
                    || self.errno() == Some(libc::ENOSPC)
            }
            _ => false,
        }
    }

    /// The errno of the innermost I/O error, if any.
    pub fn errno(&self) -> Option<i32> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<io::Error>() {
                return io.raw_os_error();
            }
            cur = e.source();
        }
        None
    }
}

/// An error and all its causes on one line, separated by ": ".
pub fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}
