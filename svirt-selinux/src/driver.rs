//! The SELinux driver: dynamic MCS labels, static labels, and libvirt's per-resource table.

use std::ffi::CString;
use std::sync::Arc;

use async_trait::async_trait;
use svirt_core::audit::{Marker, Wall, WallOptions};
use svirt_core::config::BuildContext;
use svirt_core::context::{MlsRange, SecurityContext};
use svirt_core::domain::{
    Access, DeviceChoice, Domain, HostPaths, LabelType, Resource, SecLabel, VirtType,
};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, FileAttr, LabelRecord, Plan, PlannedResource, Probe,
    ProcessInfo, SecurityDriver,
};
use svirt_core::host::Host;
use svirt_core::mcs::{McsRange, McsState};
use svirt_core::store::LabelStore;
use svirt_core::Result;
use tracing::{info, warn};

use crate::attr::SelinuxAttr;
use crate::contexts::Contexts;
use crate::decide::PolicyFile;
use crate::error::SelinuxError;
use crate::hook::SelinuxHook;
use crate::kernel::Kernel;
use crate::wall::{SelinuxMarker, SelinuxWall};

/// sVirt for SELinux.
#[derive(Debug)]
pub struct SelinuxDriver {
    offline: bool,
    contexts: Contexts,
    range: McsRange,
    kernel: Arc<dyn Kernel>,
    store: Arc<dyn LabelStore>,
    host: Arc<dyn Host>,
    attr: Arc<SelinuxAttr>,
    /// In offline mode, the binary policy labels are checked against (through libsepol).
    policy_file: Option<std::path::PathBuf>,
    host_paths: HostPaths,
    /// The policy the running kernel has loaded (selinuxfs), for `svirt audit`.
    loaded_policy: std::path::PathBuf,
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
            host: ctx.host.clone(),
            attr: Arc::new(attr),
            policy_file: None,
            host_paths: ctx.host_paths.clone(),
            loaded_policy: std::path::PathBuf::from("/sys/fs/selinux/policy"),
        })
    }

    /// Check labels against this binary policy file in offline mode.
    pub fn with_policy_file(mut self, policy: Option<std::path::PathBuf>) -> Self {
        self.policy_file = policy;
        self
    }

    /// Read the kernel's loaded policy from `path` instead of `/sys/fs/selinux/policy`.
    pub fn with_loaded_policy(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.loaded_policy = path.into();
        self
    }

    /// The policy `svirt audit` decides against: the one asked for, else the loaded one when
    /// the kernel runs SELinux, else the configured or installed policy file.
    fn audit_policy(&self, opts: &WallOptions) -> Result<std::path::PathBuf> {
        if let Some(p) = &opts.policy {
            return Ok(p.clone());
        }
        if !self.offline && self.kernel.mode().is_some() {
            return Ok(self.loaded_policy.clone());
        }
        self.policy_file.clone().ok_or_else(|| {
            SelinuxError::NoPolicy {
                root: self.loaded_policy.clone(),
            }
            .into()
        })
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

    /// libvirt's label for one resource (`virSecuritySELinuxSetImageLabelInternal` and the
    /// per-device `Set*Label` helpers): a device seclabel's choice, else by access: a private
    /// resource gets the image label, a shared one the image context as the policy writes it
    /// (`svirt_image_t:s0`), read-only content the content context.
    fn plan_resource(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<Plan> {
        if ctx.label.kind == LabelType::None || !ctx.label.relabel {
            return Ok(Plan::Skip("relabeling is off for this domain".into()));
        }
        Ok(match res.choice("selinux") {
            DeviceChoice::Skip(why) => Plan::Skip(why),
            DeviceChoice::Label(l) => Plan::Set(l.to_owned()),
            DeviceChoice::Default => match res.access {
                Access::Private => match &ctx.label.imagelabel {
                    Some(i) => Plan::Set(i.clone()),
                    None => Plan::Skip("the domain has no image label".into()),
                },
                Access::Shared => Plan::Set(self.contexts.image.to_string()),
                Access::ReadOnly => Plan::Set(self.contexts.content.to_string()),
            },
        })
    }

    /// The domain's resources with host-derived paths found.
    fn resources(&self, ctx: DomainCtx<'_>) -> Result<Vec<Resource>> {
        ctx.domain
            .resources_on(self.host.as_ref(), &self.host_paths)
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
                &self.contexts.image_for_manager(),
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
                    None => self
                        .contexts
                        .dynamic_base(domain.virt_type == VirtType::Qemu)
                        .clone(),
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
                    &self.contexts.image_for_manager(),
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
            facts: Default::default(),
        })
    }

    async fn reserve_label(&self, ctx: DomainCtx<'_>, pid: Option<u32>) -> Result<()> {
        let range = match ctx.label.kind {
            LabelType::None => return Ok(()),
            _ => self.range_of(ctx.label, &ctx.domain.name)?,
        };
        if let (Some(pid), false) = (pid, self.offline) {
            let live = self.host.pid_label(pid).map_err(|e| {
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

    fn carriers(&self, ctx: DomainCtx<'_>, procs: &[ProcessInfo]) -> Vec<u32> {
        if ctx.label.kind != LabelType::Dynamic {
            return Vec::new();
        }
        let Ok(range) = self.range_of(ctx.label, &ctx.domain.name) else {
            return Vec::new();
        };
        procs
            .iter()
            .filter(|p| {
                p.label
                    .as_deref()
                    .and_then(|l| l.parse::<SecurityContext>().ok())
                    .and_then(|c| c.range)
                    .is_some_and(|r| r.low == range.low)
            })
            .map(|p| p.pid)
            .collect()
    }

    /// Processes carry SELinux labels only where the kernel runs SELinux.
    fn reads_process_labels(&self) -> bool {
        self.kernel.mode().is_some()
    }

    async fn reconcile(&self, live: &[(Domain, LabelRecord)], procs: &[ProcessInfo]) -> Result<()> {
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
            // A process carrying a pair of this range keeps it, recorded or not: a lost state
            // must never hand out a running VM's pair.
            for p in procs {
                let Some(level) = p
                    .label
                    .as_deref()
                    .and_then(|l| l.parse::<SecurityContext>().ok())
                    .and_then(|c| c.range)
                    .filter(|r| r.low == r.high)
                    .map(|r| r.low)
                else {
                    continue;
                };
                if range.pair_of(&level).is_some() && !fresh.is_allocated(&level) {
                    if let Err(e) = fresh.reserve_dynamic(&level) {
                        warn!(pid = p.pid, level = %level, error = %e, "a process carries a pair a static label holds");
                    } else {
                        info!(pid = p.pid, level = %level, "reserved the pair of a running process no record explains");
                    }
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

    fn file_attr(&self) -> Option<Arc<dyn FileAttr>> {
        Some(self.attr.clone())
    }

    fn plan(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<Plan> {
        self.plan_resource(ctx, res)
    }

    async fn plan_all(&self, ctx: DomainCtx<'_>) -> Result<Vec<PlannedResource>> {
        let mut out = Vec::new();
        for r in self.resources(ctx)? {
            let (label, skipped) = match self.plan_resource(ctx, &r)? {
                Plan::Set(l) => (Some(l), None),
                Plan::Skip(why) => (None, Some(why)),
            };
            out.push(PlannedResource {
                path: r.path,
                kind: r.kind,
                model: "selinux".into(),
                label,
                owner: None,
                mode: None,
                skipped,
            });
        }
        Ok(out)
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
        self.host.pid_label(pid).map(Some).map_err(|e| {
            svirt_core::Error::host("read the label of process", format!("/proc/{pid}"), e)
        })
    }

    fn wall(&self, ctx: DomainCtx<'_>, opts: &WallOptions) -> Result<Option<Box<dyn Wall>>> {
        if ctx.label.kind == LabelType::None || ctx.label.label.is_empty() {
            return Ok(None);
        }
        let policy = self.audit_policy(opts)?;
        let wall = SelinuxWall::new(PolicyFile::open(&policy)?, &ctx.label.label)?;
        Ok(Some(Box::new(wall)))
    }

    fn marker(&self) -> Option<Box<dyn Marker>> {
        Some(Box::new(SelinuxMarker {
            image: self.contexts.image.clone(),
            content: self.contexts.content.clone(),
        }))
    }
}
