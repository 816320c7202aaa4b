//! What svirt keeps of a domain, and what it reports.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::db::{DomainRow, Phase};
use crate::domain::Domain;
use crate::driver::{LabelRecord, ResourceReport};
use crate::error::{Error, Result};

/// A domain's record: its description, the labels its drivers generated, and what was done to
/// each resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub domain: Domain,
    pub labels: Vec<LabelRecord>,
    pub resources: Vec<ResourceReport>,
}

impl Record {
    /// Encode for the database.
    pub fn encode(&self, db: &std::path::Path) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::StateCorrupt {
            path: db.to_owned(),
            reason: format!(
                "cannot encode the record of domain {}: {e}",
                self.domain.name
            ),
        })
    }

    /// Decode a database row's record.
    pub fn decode(row: &DomainRow, db: &std::path::Path) -> Result<Self> {
        serde_json::from_slice(&row.record).map_err(|e| Error::StateCorrupt {
            path: db.to_owned(),
            reason: format!("the record of domain {} does not parse: {e}", row.name),
        })
    }
}

/// A domain as `status` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub name: String,
    pub phase: Phase,
    pub labels: Vec<LabelRecord>,
    pub pid: Option<u32>,
    /// Whether the recorded VMM process still runs (None when no pid is recorded).
    pub alive: Option<bool>,
    pub resources: Vec<ResourceReport>,
    /// Why a held domain keeps its identities (what could not be restored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// What a stop (or detach) found and did beyond putting originals back.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StopReport {
    /// Inodes restored where they had moved to: (where svirt changed them, where they are).
    #[serde(serialize_with = "lossy::pairs")]
    pub moved: Vec<(PathBuf, PathBuf)>,
    /// Share entries the VM created or replaced, given the share's original owner or label.
    #[serde(serialize_with = "lossy::paths")]
    pub reclaimed: Vec<PathBuf>,
    /// Entries left alone, and why.
    #[serde(serialize_with = "lossy::reasons")]
    pub left: Vec<(PathBuf, String)>,
    /// Files changed while the VM held them, whose setuid/setgid bits were not given back.
    #[serde(serialize_with = "lossy::paths")]
    pub privileges_dropped: Vec<PathBuf>,
}

/// Paths in JSON: a name the guest chose need not be UTF-8, and a report must never fail
/// over one (bytes that are not UTF-8 become U+FFFD).
pub mod lossy {
    use std::path::PathBuf;

    use serde::Serializer;

    pub fn path<S: Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&p.to_string_lossy())
    }

    pub fn paths<S: Serializer>(v: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|p| p.to_string_lossy()))
    }

    pub fn pairs<S: Serializer>(v: &[(PathBuf, PathBuf)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.iter()
                .map(|(a, b)| (a.to_string_lossy(), b.to_string_lossy())),
        )
    }

    pub fn reasons<S: Serializer>(v: &[(PathBuf, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(a, why)| (a.to_string_lossy(), why)))
    }
}

/// What `recover` did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recovered {
    /// Domains torn down (their VMM was gone, or their start or stop interrupted).
    pub domains: Vec<String>,
    /// Remembered files no domain held, put back.
    pub orphans: Vec<String>,
    /// Everything the teardowns found beyond originals.
    pub report: StopReport,
}
