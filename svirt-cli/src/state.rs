//! Domain records in the state directory: one JSON file per domain, written atomically under the
//! state lock. A record is written before labels are applied, so an interrupted start or stop
//! is visible to `svirt recover`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use svirt_core::domain::Domain;
use svirt_core::driver::{LabelRecord, ResourceReport};
use svirt_core::fsutil::{atomic_write, read_optional, remove_optional, LockGuard};
use svirt_core::{Error, Result};

/// Where a domain is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Starting,
    Running,
    Stopping,
}

/// What svirt knows of one domain.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub domain: Domain,
    pub phase: Phase,
    pub labels: Vec<LabelRecord>,
    pub resources: Vec<ResourceReport>,
    pub pid: Option<u32>,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> Self {
        StateDir {
            root: root.to_owned(),
        }
    }

    /// Take the exclusive state lock for a change.
    pub fn lock(&self) -> Result<LockGuard> {
        LockGuard::exclusive(&self.root.join("state.lock"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join("domains").join(format!("{name}.json"))
    }

    pub fn load(&self, name: &str) -> Result<Option<Record>> {
        svirt_core::domain::validate_name(name)?;
        let p = self.path(name);
        match read_optional(&p)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::StateCorrupt {
                    path: p,
                    reason: e.to_string(),
                }),
        }
    }

    /// The record of a domain that must exist.
    pub fn require(&self, name: &str) -> Result<Record> {
        self.load(name)?.ok_or_else(|| Error::NoSuchDomain {
            name: name.to_owned(),
        })
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        let p = self.path(&r.domain.name);
        let b = serde_json::to_vec_pretty(r).map_err(|e| Error::StateCorrupt {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        atomic_write(&p, &b)
    }

    pub fn remove(&self, name: &str) -> Result<()> {
        remove_optional(&self.path(name))
    }

    pub fn all(&self) -> Result<Vec<Record>> {
        let dir = self.root.join("domains");
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::state("list", &dir, e)),
        };
        let mut out = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = name.strip_suffix(".json") {
                if let Some(r) = self.load(n)? {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.domain.name.cmp(&b.domain.name));
        Ok(out)
    }
}
