//! The Landlock wall for `svirt audit`: the ruleset svirt recorded for the domain, evaluated the
//! way the kernel applies it. Every filesystem access is handled, so what no rule grants is
//! denied; a rule on a directory covers everything beneath it; path lookup itself is never
//! restricted, and neither is connecting to a socket file.

use svirt_core::audit::{Decision, FileFacts, Wall};
use svirt_core::driver::LabelFacts;
use svirt_core::host::{FileKind, Host};

use crate::rules::{Grant, PathRule};

/// A recorded ruleset, its paths resolved as the kernel resolved them when it built the rules.
#[derive(Debug, Clone)]
pub struct LandlockWall {
    rules: Vec<PathRule>,
}

impl LandlockWall {
    /// The wall of `rules`; each rule path is resolved through `host` (the kernel follows
    /// symlinks when it opens a rule's path).
    pub fn new(rules: &[PathRule], host: &dyn Host) -> Self {
        LandlockWall {
            rules: rules
                .iter()
                .map(|r| PathRule {
                    path: host
                        .canonicalize(&r.path)
                        .unwrap_or_else(|_| r.path.clone()),
                    grant: r.grant,
                    resource: r.resource,
                })
                .collect(),
        }
    }
}

impl Wall for LandlockWall {
    fn model(&self) -> &str {
        "landlock"
    }

    fn decide(&self, f: &FileFacts) -> Decision {
        if f.kind == FileKind::Socket {
            return Decision::allow_all("Landlock does not restrict connecting to a socket file");
        }
        let covering: Vec<&PathRule> = self
            .rules
            .iter()
            .filter(|r| f.path.starts_with(&r.path))
            .collect();
        let write_rule = covering.iter().find(|r| r.grant == Grant::Write);
        let read_rule = write_rule.or(covering.first());
        let reason = match (read_rule, write_rule) {
            (_, Some(w)) => format!("rule {} grants read and write", w.path.display()),
            (Some(r), None) => format!(
                "rule {} grants {}",
                r.path.display(),
                match r.grant {
                    Grant::Exec => "read and execute",
                    _ => "read",
                }
            ),
            (None, None) => "no rule covers it".into(),
        };
        Decision {
            read: read_rule.is_some(),
            write: write_rule.is_some(),
            search: true,
            reason,
        }
    }
}

/// The facts the Landlock driver keeps with its label: what the kernel was asked to enforce.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LandlockFacts {
    /// The Landlock ABI the ruleset was built for.
    pub abi: i32,
    /// The path rules.
    pub rules: Vec<PathRule>,
    /// TCP ports the VM may connect to and bind.
    pub tcp_connect: Vec<u16>,
    pub tcp_bind: Vec<u16>,
    /// Whether signals and abstract sockets are scoped (ABI 6 and later).
    pub scoped: bool,
}

/// The rules recorded with a label, if it recorded any.
pub(crate) fn recorded(facts: &LabelFacts) -> svirt_core::Result<Option<Vec<PathRule>>> {
    Ok(facts.get::<LandlockFacts>("landlock")?.map(|f| f.rules))
}

#[cfg(test)]
mod tests {
    use super::*;
    use svirt_core::host::fake::FakeHost;

    #[test]
    fn landlock_wall_denies_on_its_own_what_no_rule_grants() {
        let host = FakeHost::new();
        host.add_file("/img/vm1.img");
        host.add_file("/img/content.iso");
        host.add_file("/usr/lib/x.so");
        host.add_symlink("/img/link.img", "/img/vm1.img");
        let rules = vec![
            PathRule {
                path: "/usr/lib".into(),
                grant: Grant::Exec,
                resource: None,
            },
            PathRule {
                path: "/img/link.img".into(),
                grant: Grant::Write,
                resource: None,
            },
            PathRule {
                path: "/img/content.iso".into(),
                grant: Grant::Read,
                resource: None,
            },
        ];
        let w = LandlockWall::new(&rules, &host);
        let f = |p: &str| FileFacts::new(p, FileKind::File, 0, 0, 0o666);
        let own = w.decide(&f("/img/vm1.img"));
        assert!(
            own.read && own.write,
            "a rule given through a symlink binds its target: {own:?}"
        );
        let lib = w.decide(&f("/usr/lib/x.so"));
        assert!(lib.read && !lib.write);
        let content = w.decide(&f("/img/content.iso"));
        assert!(content.read && !content.write);
        let other = w.decide(&f("/img/vm2.img"));
        assert!(!other.read && !other.write && other.search);
        assert_eq!(other.reason, "no rule covers it");
        let secret = w.decide(&f("/etc/shadow"));
        assert!(!secret.read && !secret.write);
        let prefix = w.decide(&f("/usr/lib64/y.so"));
        assert!(
            !prefix.read,
            "a rule covers paths beneath it, not names sharing a prefix"
        );
        let dir = w.decide(&FileFacts::new("/img", FileKind::Dir, 0, 0, 0o777));
        assert!(!dir.read && !dir.write && dir.search);
    }
}
