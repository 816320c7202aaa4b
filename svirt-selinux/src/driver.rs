//! The SELinux driver: dynamic MCS labels, static labels, and libvirt's per-resource table.

use std::ffi::CString;
use std::sync::Arc;

use async_trait::async_trait;
use svirt_core::config::BuildContext;
use svirt_core::context::{MlsRange, SecurityContext};
use svirt_core::domain::{Access, Domain, LabelType, Resource, SecLabel};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, LabelRecord, Probe, ResourceReport, SecurityDriver,
};
use svirt_core::mcs::{McsRange, McsState};
use svirt_core::relabel::{Plan, Relabeler};
use svirt_core::store::LabelStore;
use svirt_core::Result;
use tracing::info;

use crate::attr::SelinuxAttr;
use crate::contexts::Contexts;
use crate::error::SelinuxError;
use crate::hook::SelinuxHook;
use crate::kernel::Kernel;

/// sVirt for SELinux.
#[derive(Debug)]
pub struct SelinuxDriver {
    offline: bool,
    contexts: Contexts,
    range: McsRange,
    kernel: Arc<dyn Kernel>,
    store: Arc<dyn LabelStore>,
    relabeler: Relabeler,
    /// In offline mode, the binary policy labels are checked against (through libsepol).
    policy_file: Option<std::path::PathBuf>,
}

impl SelinuxDriver {
    /// A driver with resolved contexts over the build context's host, store and state directory.
    pub fn new(
        offline: bool,
        contexts: Contexts,
        kernel: Arc<dyn Kernel>,
        ctx: &BuildContext,
    ) -> Result<Self> {
        Self::with_file_contexts(offline, contexts, kernel, ctx, None)
    }

    /// A driver that also takes default labels from the policy's `file_contexts`.
    pub fn with_file_contexts(
        offline: bool,
        contexts: Contexts,
        kernel: Arc<dyn Kernel>,
        ctx: &BuildContext,
        file_contexts: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let range = McsRange::from_manager_range(contexts.manager.range.as_ref())?;
        let attr = SelinuxAttr {
            image_type: Some(contexts.image.type_.clone()),
            content: Some(contexts.content.to_string()),
            file_contexts,
        };
        Ok(SelinuxDriver {
            offline,
            contexts,
            range,
            kernel,
            store: ctx.store.clone(),
            relabeler: ctx.relabeler(Arc::new(attr)),
            policy_file: None,
        })
    }

    /// Check labels against this binary policy file in offline mode.
    pub fn with_policy_file(mut self, policy: Option<std::path::PathBuf>) -> Self {
        self.policy_file = policy;
        self
    }

    /// The contexts in use.
    pub fn contexts(&self) -> &Contexts {
        &self.contexts
    }

    fn policy_check(&self) -> impl Fn(&str) -> Option<bool> + '_ {
        move |c: &str| match (self.offline, &self.policy_file) {
            (false, _) => self.kernel.check_context(c),
            (true, Some(p)) => crate::policy_file::check(p, c),
            (true, None) => None,
        }
    }

    fn range_of(&self, label: &LabelRecord, domain: &str) -> Result<MlsRange> {
        label
            .label
            .parse::<SecurityContext>()
            .ok()
            .and_then(|c| c.range)
            .ok_or_else(|| {
                SelinuxError::BadRecord {
                    domain: domain.to_owned(),
                    label: label.label.clone(),
                }
                .into()
            })
    }

    fn plan(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<Plan> {
        if ctx.label.kind == LabelType::None || !ctx.label.relabel {
            return Ok(Plan::Skip("relabeling is off for this domain".into()));
        }
        if let Some(o) = res.override_for("selinux") {
            if o.relabel == Some(false) {
                return Ok(Plan::Skip("relabel = false for this device".into()));
            }
            if let Some(l) = &o.label {
                return Ok(Plan::Set(l.clone()));
            }
        }
        let image = ctx.label.imagelabel.clone().unwrap_or_default();
        Ok(Plan::Set(match res.access {
            Access::Private => image,
            Access::Shared => self
                .contexts
                .image
                .with_range(self.contexts.shared_level())
                .to_string(),
            Access::ReadOnly => self.contexts.content.to_string(),
        }))
    }
}

#[async_trait]
impl SecurityDriver for SelinuxDriver {
    fn model(&self) -> &str {
        "selinux"
    }

    async fn probe(&self) -> Probe {
        match (self.offline, self.kernel.mode()) {
            (true, _) => Probe {
                available: true,
                detail: format!(
                    "offline: labels files only; manager {}, pairs from {}",
                    self.contexts.manager, self.range
                ),
            },
            (false, Some(enforcing)) => Probe {
                available: true,
                detail: format!(
                    "{}; manager {}, pairs from {}",
                    if enforcing { "enforcing" } else { "permissive" },
                    self.contexts.manager,
                    self.range
                ),
            },
            (false, None) => Probe {
                available: false,
                detail: "SELinux is not enabled in this kernel (offline = true labels files only)"
                    .into(),
            },
        }
    }

    async fn verify(&self, domain: &Domain, seclabel: &SecLabel) -> Result<()> {
        if seclabel.kind() == LabelType::Static {
            svirt_static::check(
                seclabel,
                &self.contexts.manager,
                &self.contexts.image,
                &self.policy_check(),
            )?;
        }
        if let Some(b) = &seclabel.baselabel {
            let _: SecurityContext = b.parse()?;
        }
        // A per-device label is set as given: its level must lie within the manager's range.
        if let Some(mr) = &self.contexts.manager.range {
            for r in domain.resources() {
                let Some(l) = r.override_for("selinux").and_then(|o| o.label.as_ref()) else {
                    continue;
                };
                let c: SecurityContext = l.parse()?;
                if c.range.as_ref().is_some_and(|lr| !mr.contains(lr)) {
                    return Err(svirt_core::Error::LabelOutsideRange {
                        label: format!("{l} (for {})", r.path.display()),
                        range: mr.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    async fn generate_label(&self, domain: &Domain, seclabel: &SecLabel) -> Result<LabelRecord> {
        let kind = seclabel.kind();
        let (label, imagelabel) = match kind {
            LabelType::None => (String::new(), None),
            LabelType::Dynamic => {
                let base = match &seclabel.baselabel {
                    Some(b) => b.parse()?,
                    None => self.contexts.domain.clone(),
                };
                let level = self.store.allocate(self.range)?;
                let process = self.contexts.process_label(&base, &level);
                let image = self.contexts.image_label(&MlsRange::single(level));
                (process.to_string(), Some(image.to_string()))
            }
            LabelType::Static => {
                let s = svirt_static::check(
                    seclabel,
                    &self.contexts.manager,
                    &self.contexts.image,
                    &self.policy_check(),
                )?;
                self.store
                    .reserve_fixed(self.range, &s.range, &domain.name, seclabel.shared)?;
                info!(vm = %domain.name, label = %s.process, "reserved static label");
                (s.process.to_string(), Some(s.image.to_string()))
            }
        };
        Ok(LabelRecord {
            model: "selinux".into(),
            kind,
            label,
            imagelabel,
            relabel: seclabel.relabel(),
            extra: Default::default(),
        })
    }

    async fn reserve_label(&self, ctx: DomainCtx<'_>, pid: Option<u32>) -> Result<()> {
        let range = match ctx.label.kind {
            LabelType::None => return Ok(()),
            _ => self.range_of(ctx.label, &ctx.domain.name)?,
        };
        if let (Some(pid), false) = (pid, self.offline) {
            let live = self.relabeler.host().pid_label(pid).map_err(|e| {
                svirt_core::Error::host("read the label of process", format!("/proc/{pid}"), e)
            })?;
            if live != ctx.label.label {
                return Err(SelinuxError::LiveMismatch {
                    domain: ctx.domain.name.clone(),
                    pid,
                    live,
                    recorded: ctx.label.label.clone(),
                }
                .into());
            }
        }
        match ctx.label.kind {
            LabelType::Dynamic => {
                self.store.reserve_dynamic(self.range, &range.low)?;
            }
            _ => self.store.reserve_fixed(
                self.range,
                &range,
                &ctx.domain.name,
                ctx.seclabel.shared,
            )?,
        }
        Ok(())
    }

    async fn reconcile(&self, live: &[(Domain, LabelRecord)]) -> Result<()> {
        let mut parsed = Vec::new();
        for (d, l) in live {
            if l.kind != LabelType::None {
                parsed.push((
                    d.name.clone(),
                    l.kind,
                    self.range_of(l, &d.name)?,
                    d.seclabel("selinux").is_some_and(|s| s.shared),
                ));
            }
        }
        let range = self.range;
        self.store.update(range, &mut |s| {
            let mut fresh = McsState::new(range);
            for (name, kind, r, shared) in &parsed {
                match kind {
                    LabelType::Dynamic => {
                        fresh.reserve_dynamic(&r.low)?;
                    }
                    _ => fresh.reserve_fixed(r, name, *shared)?,
                }
            }
            *s = fresh;
            Ok(())
        })
    }

    async fn release_label(&self, ctx: DomainCtx<'_>) -> Result<()> {
        if ctx.label.kind == LabelType::None {
            return Ok(());
        }
        let range = self.range_of(ctx.label, &ctx.domain.name)?;
        self.store.release(self.range, &range, &ctx.domain.name)?;
        Ok(())
    }

    async fn set_all(&self, ctx: DomainCtx<'_>) -> Result<Vec<ResourceReport>> {
        self.relabeler
            .apply_planned(&ctx.domain.name, ctx.domain.resources(), |r| {
                self.plan(ctx, r)
            })
    }

    async fn restore_all(&self, ctx: DomainCtx<'_>) -> Result<()> {
        self.relabeler
            .restore_resources(&ctx.domain.name, &ctx.domain.resources())
    }

    async fn set_resource(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<ResourceReport> {
        let p = self.plan(ctx, res)?;
        self.relabeler.apply_one(&ctx.domain.name, res, &p)
    }

    async fn restore_resource(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<()> {
        self.relabeler.restore_one(&ctx.domain.name, res)
    }

    fn prepare_exec(
        &self,
        ctx: DomainCtx<'_>,
        _opts: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        if self.offline {
            return Err(SelinuxError::OfflineExec {
                domain: ctx.domain.name.clone(),
            }
            .into());
        }
        let label = CString::new(ctx.label.label.clone()).map_err(|_| SelinuxError::Nul {
            label: ctx.label.label.clone(),
        })?;
        let path = CString::new("/proc/thread-self/attr/exec").map_err(|_| SelinuxError::Nul {
            label: String::new(),
        })?;
        Ok(Some(Box::new(SelinuxHook { path, label })))
    }

    async fn process_label(&self, pid: u32) -> Result<Option<String>> {
        if self.offline {
            return Ok(None);
        }
        self.relabeler.host().pid_label(pid).map(Some).map_err(|e| {
            svirt_core::Error::host("read the label of process", format!("/proc/{pid}"), e)
        })
    }
}
