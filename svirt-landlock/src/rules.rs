//! The ruleset of a domain, as plain data: what each path may do, which ports are open.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use svirt_core::domain::{Access, Domain, ResourceKind};

/// What a path may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// Read (files) and list (directories).
    Read,
    /// Read and execute: the VMM's binaries and libraries.
    Exec,
    /// Read and write; for directories also create and remove entries.
    Write,
}

/// One path rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRule {
    pub path: PathBuf,
    pub grant: Grant,
    /// For a domain's own resource, its kind: the path is opened and refused the way a relabel
    /// would be before it enters a ruleset. `None` for the configured system profile. Not
    /// recorded: a recorded ruleset only feeds `svirt audit`.
    #[serde(skip)]
    pub resource: Option<ResourceKind>,
}

/// A domain's whole ruleset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    pub paths: Vec<PathRule>,
    pub tcp_connect: Vec<u16>,
    pub tcp_bind: Vec<u16>,
}

impl RuleSet {
    /// The rules for `domain` plus the system profile. Profile paths that do not exist are left
    /// out; the domain's own resources must exist.
    pub fn for_domain(domain: &Domain, system_ro: &[PathBuf], system_rw: &[PathBuf]) -> Self {
        let mut paths = Vec::new();
        for p in system_ro.iter().filter(|p| p.exists()) {
            paths.push(PathRule {
                path: p.clone(),
                grant: Grant::Exec,
                resource: None,
            });
        }
        for p in system_rw.iter().filter(|p| p.exists()) {
            paths.push(PathRule {
                path: p.clone(),
                grant: Grant::Write,
                resource: None,
            });
        }
        // Every resource the VMM opens, labeled or not (the loader too); a placeholder for a
        // path only the host can tell (a VFIO group) or a network disk is no path to grant.
        for r in domain
            .resources()
            .into_iter()
            .filter(|r| r.path.is_absolute())
        {
            let grant = match (r.access, r.kind) {
                (Access::ReadOnly, _) => Grant::Read,
                (_, ResourceKind::SavedState) => Grant::Read,
                _ => Grant::Write,
            };
            paths.push(PathRule {
                path: r.path,
                grant,
                resource: Some(r.kind),
            });
        }
        RuleSet {
            paths,
            tcp_connect: domain.network.tcp_connect.clone(),
            tcp_bind: domain.network.tcp_bind.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_map_to_grants_and_missing_profile_paths_are_dropped() {
        let d = Domain::from_toml(
            "name='v'\nkernel='/b/k'\n[[disk]]\npath='/i/a'\nbacking=['/i/base']\n[[disk]]\npath='/i/s'\nshareable=true\n\
             [[filesystem]]\npath='/srv/x'\nreadonly=true\n[network]\ntcp_connect=[443]\n",
            "t",
        )
        .unwrap();
        let r = RuleSet::for_domain(
            &d,
            &[PathBuf::from("/usr"), PathBuf::from("/no/such/dir")],
            &[PathBuf::from("/dev/null")],
        );
        let got: Vec<(String, Grant)> = r
            .paths
            .iter()
            .map(|p| (p.path.display().to_string(), p.grant))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/usr".into(), Grant::Exec),
                ("/dev/null".into(), Grant::Write),
                ("/i/a".into(), Grant::Write),
                ("/i/base".into(), Grant::Read),
                ("/i/s".into(), Grant::Write),
                ("/b/k".into(), Grant::Read),
                ("/srv/x".into(), Grant::Read),
            ]
        );
        assert_eq!(r.tcp_connect, vec![443]);
    }
}
