//! The Landlock driver.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use async_trait::async_trait;
use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use svirt_core::audit::{Wall, WallOptions};
use svirt_core::domain::{Domain, LabelType, SecLabel};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, ExecPhase, LabelFacts, LabelRecord, Probe, SecurityDriver,
};
use svirt_core::host::{FileKind, Host};
use svirt_core::Result;

use crate::config::LandlockConfig;
use crate::error::LandlockError;
use crate::rules::{Grant, PathRule, RuleSet};
use crate::wall::{recorded, LandlockFacts, LandlockWall};

/// Confinement by the kernel's Landlock LSM.
pub struct LandlockDriver {
    config: LandlockConfig,
    abi: i32,
    host: Arc<dyn Host>,
    /// svirt's state directory, never granted.
    state_dir: Option<std::path::PathBuf>,
    protected: std::sync::OnceLock<svirt_core::safe::Protected>,
}

impl std::fmt::Debug for LandlockDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LandlockDriver")
            .field("config", &self.config)
            .field("abi", &self.abi)
            .finish_non_exhaustive()
    }
}

/// What each ABI adds that svirt uses.
fn features(abi: i32) -> Vec<&'static str> {
    let mut f = vec!["filesystem"];
    if abi >= 4 {
        f.push("tcp");
    }
    if abi >= 6 {
        f.push("scoped signals and abstract unix sockets");
    }
    f
}

impl LandlockDriver {
    /// A driver for a kernel whose Landlock ABI is `abi` (0 when unavailable), opening the
    /// domain's resources through `host`.
    pub fn new(config: LandlockConfig, abi: i32, host: Arc<dyn Host>) -> Self {
        LandlockDriver {
            config,
            abi,
            host,
            state_dir: None,
            protected: std::sync::OnceLock::new(),
        }
    }

    /// Never grant svirt's state directory `dir`, its files, or a share holding it.
    pub fn with_state_dir(mut self, dir: &std::path::Path) -> Self {
        self.state_dir = Some(dir.to_owned());
        self.protected = std::sync::OnceLock::new();
        self
    }

    /// Open one rule's path for the ruleset: whether it is a directory, and its fd when the
    /// host opened one. A domain's own resource passes the checks a relabel would (the denylist
    /// on the path as given and as resolved, `/proc` magic links, the file type its kind must
    /// have) and is never the host's raw memory or I/O ports; the rule is then built on the
    /// inode those checks saw, so a symlink swapped in afterwards changes nothing.
    fn open_rule(&self, domain: &Domain, r: &PathRule) -> Result<(bool, Option<OwnedFd>)> {
        let Some(kind) = r.resource else {
            let is_dir = std::fs::metadata(&r.path)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            return Ok((is_dir, None));
        };
        let refused = |path: std::path::PathBuf, reason: String| {
            svirt_core::Error::driver_refused(
                "landlock",
                LandlockError::Refused {
                    domain: domain.name.clone(),
                    path,
                    reason,
                },
            )
        };
        let as_refusal = |e: svirt_core::Error| match e {
            svirt_core::Error::PathRefused { path, reason } => refused(path, reason),
            e => e,
        };
        let opened = svirt_core::safe::open_resource(self.host.as_ref(), &r.path, Some(kind))
            .map_err(as_refusal)?;
        self.protected
            .get_or_init(|| {
                svirt_core::safe::Protected::new(self.host.as_ref(), self.state_dir.as_deref())
            })
            .check(self.host.as_ref(), &opened)
            .map_err(as_refusal)?;
        if let Some(why) = svirt_core::safe::raw_host_access(&opened.meta) {
            let reason = if opened.path == opened.given {
                why.to_owned()
            } else {
                format!("{why} (reached through {})", opened.given.display())
            };
            return Err(refused(opened.path, reason));
        }
        let is_dir = opened.meta.kind == FileKind::Dir;
        if !is_dir {
            return Ok((false, opened.node.into_fd()));
        }
        // The rule covers everything below the directory: what the relabel walk leaves out
        // (device nodes, files with names outside, mount points) would be granted too.
        let node = Arc::new(opened.node);
        let hazards =
            svirt_core::safe::share_hazards(self.host.as_ref(), &opened.path, node.clone())?;
        if let Some((first, why)) = hazards.first() {
            let more = match hazards.len() {
                1 => String::new(),
                n => format!(" ({} more such entries)", n - 1),
            };
            return Err(refused(
                opened.path.clone(),
                format!(
                    "a rule for it would grant {}: {why}{more}; remove it from the share",
                    first.display()
                ),
            ));
        }
        let fd = node
            .fd()
            .map(|f| f.try_clone())
            .transpose()
            .map_err(|e| svirt_core::Error::host("open", &opened.path, e))?;
        Ok((true, fd))
    }

    /// Check every resource of `domain` as [`Self::open_rule`] does, without building anything.
    fn check_resources(&self, domain: &Domain) -> Result<()> {
        for r in self
            .rules(domain)
            .paths
            .iter()
            .filter(|r| r.resource.is_some())
        {
            self.open_rule(domain, r)?;
        }
        Ok(())
    }

    fn check_abi(&self) -> Result<()> {
        if self.abi < self.config.min_abi {
            let have = features(self.abi.max(0));
            let lost: Vec<_> = features(self.config.min_abi)
                .into_iter()
                .filter(|f| !have.contains(f))
                .collect();
            return Err(LandlockError::AbiTooOld {
                kernel: self.abi,
                min: self.config.min_abi,
                lost: format!("lost: {}", lost.join(", ")),
            }
            .into());
        }
        Ok(())
    }

    fn rules(&self, domain: &Domain) -> RuleSet {
        RuleSet::for_domain(domain, &self.config.system_ro, &self.config.system_rw)
    }

    /// Build the ruleset in the kernel and return its fd (before the fork).
    pub fn build_ruleset(&self, domain: &Domain) -> Result<OwnedFd> {
        self.check_abi()?;
        let abi = ABI::from(self.abi);
        let err = |source| LandlockError::Ruleset {
            domain: domain.name.clone(),
            source,
        };
        let mut rs = Ruleset::default()
            .set_compatibility(CompatLevel::HardRequirement)
            .handle_access(AccessFs::from_all(abi))
            .map_err(err)?;
        if self.abi >= 4 {
            rs = rs
                .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
                .map_err(err)?;
        }
        if self.abi >= 6 {
            rs = rs
                .scope(Scope::Signal | Scope::AbstractUnixSocket)
                .map_err(err)?;
        }
        let mut created = rs.create().map_err(err)?;
        let rules = self.rules(domain);
        for r in &rules.paths {
            let (is_dir, fd) = self.open_rule(domain, r)?;
            let access: BitFlags<AccessFs> = match r.grant {
                Grant::Exec => AccessFs::from_read(abi),
                Grant::Read => AccessFs::from_read(abi) & !AccessFs::Execute,
                Grant::Write => {
                    AccessFs::from_all(abi)
                        & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock)
                }
            };
            let access = if is_dir {
                access
            } else {
                access & AccessFs::from_file(abi)
            };
            created = match fd {
                Some(fd) => created.add_rule(PathBeneath::new(fd, access)),
                None => {
                    let fd = PathFd::new(&r.path).map_err(|source| LandlockError::Open {
                        path: r.path.clone(),
                        source,
                    })?;
                    created.add_rule(PathBeneath::new(fd, access))
                }
            }
            .map_err(err)?;
        }
        if self.abi >= 4 {
            for &p in &rules.tcp_connect {
                created = created
                    .add_rule(NetPort::new(p, AccessNet::ConnectTcp))
                    .map_err(err)?;
            }
            for &p in &rules.tcp_bind {
                created = created
                    .add_rule(NetPort::new(p, AccessNet::BindTcp))
                    .map_err(err)?;
            }
        }
        Option::<OwnedFd>::from(created).ok_or_else(|| {
            LandlockError::AbiTooOld {
                kernel: self.abi,
                min: self.config.min_abi,
                lost: "the kernel built no ruleset".into(),
            }
            .into()
        })
    }
}

/// Enforces a prepared ruleset in the child: `no_new_privs`, then `landlock_restrict_self`.
#[derive(Debug)]
pub struct LandlockHook {
    fd: OwnedFd,
}

impl ExecHook for LandlockHook {
    fn phase(&self) -> ExecPhase {
        ExecPhase::Confine
    }

    fn apply(&self) -> std::result::Result<(), i32> {
        nix::sys::prctl::set_no_new_privs().map_err(|e| e as i32)?;
        crate::sys::restrict_self(self.fd.as_raw_fd())
    }
}

#[async_trait]
impl SecurityDriver for LandlockDriver {
    fn model(&self) -> &str {
        "landlock"
    }

    async fn probe(&self) -> Probe {
        if self.abi <= 0 {
            return Probe {
                available: false,
                detail: "Landlock is not enabled in this kernel".into(),
            };
        }
        match self.check_abi() {
            Ok(()) => Probe {
                available: true,
                detail: format!(
                    "ABI {} (min_abi {}): {}",
                    self.abi,
                    self.config.min_abi,
                    features(self.abi).join(", ")
                ),
            },
            Err(e) => Probe {
                available: false,
                detail: svirt_core::display_chain(&e),
            },
        }
    }

    async fn verify(&self, domain: &Domain, seclabel: &SecLabel) -> Result<()> {
        if seclabel.kind() == LabelType::Static {
            return Err(svirt_core::Error::DomainInvalid {
                domain: domain.name.clone(),
                reason: "the landlock model computes its ruleset; it takes no static label".into(),
            });
        }
        self.check_abi()?;
        if seclabel.kind() == LabelType::None {
            return Ok(());
        }
        self.check_resources(domain)
    }

    async fn generate_label(&self, domain: &Domain, seclabel: &SecLabel) -> Result<LabelRecord> {
        let kind = seclabel.kind();
        let (label, facts) = if kind == LabelType::None {
            (String::new(), LabelFacts::default())
        } else {
            self.check_abi()?;
            // Nothing on disk changes; fail at start if a resource cannot be put in the ruleset.
            self.build_ruleset(domain)?;
            let rules = self.rules(domain);
            let facts = LandlockFacts {
                abi: self.abi,
                rules: rules.paths,
                tcp_connect: rules.tcp_connect,
                tcp_bind: rules.tcp_bind,
                scoped: self.abi >= 6,
            };
            (
                format!("abi={}", self.abi),
                LabelFacts::of("landlock", &facts)?,
            )
        };
        Ok(LabelRecord {
            model: "landlock".into(),
            kind,
            label,
            imagelabel: None,
            relabel: false,
            facts,
        })
    }

    fn wall(&self, ctx: DomainCtx<'_>, opts: &WallOptions) -> Result<Option<Box<dyn Wall>>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        // The ruleset recorded at start is the one the kernel enforces; derive it from the
        // domain only for records written before rules were recorded.
        let rules = match recorded(&ctx.label.facts)? {
            Some(rules) => rules,
            None => self.rules(ctx.domain).paths,
        };
        Ok(Some(Box::new(LandlockWall::new(
            &rules,
            opts.host.as_ref(),
        ))))
    }

    fn prepare_exec(
        &self,
        ctx: DomainCtx<'_>,
        _opts: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        Ok(Some(Box::new(LandlockHook {
            fd: self.build_ruleset(ctx.domain)?,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_old_kernel_is_refused_unless_min_abi_is_lowered() {
        let host: Arc<dyn Host> = Arc::new(svirt_core::host::fake::FakeHost::new());
        let d = LandlockDriver::new(LandlockConfig::default(), 3, host.clone());
        let dom = Domain::from_toml("name='v'\n", "t").unwrap();
        let e = d
            .generate_label(&dom, &SecLabel::implicit("landlock"))
            .await
            .unwrap_err();
        let text = svirt_core::display_chain(&e);
        assert!(
            text.contains("ABI is 3, below min_abi = 6") && text.contains("tcp"),
            "{text}"
        );
        let lowered = LandlockDriver::new(
            LandlockConfig {
                min_abi: 3,
                ..LandlockConfig::default()
            },
            3,
            host,
        );
        let l = lowered
            .generate_label(&dom, &SecLabel::implicit("landlock"))
            .await
            .unwrap();
        assert_eq!(l.label, "abi=3");
        assert!(!d.probe().await.available);
    }
}
