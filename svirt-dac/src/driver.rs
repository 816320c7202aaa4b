//! The DAC driver.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use svirt_core::config::BuildContext;
use svirt_core::domain::{Access, Domain, LabelType, Resource, SecLabel};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, LabelRecord, Probe, ResourceReport, SecurityDriver,
};
use svirt_core::relabel::{Plan, Relabeler};
use svirt_core::store::LabelStore;
use svirt_core::Result;

use crate::attr::{value, DacAttr};
use crate::config::DacConfig;
use crate::error::DacError;
use crate::hook::DacHook;
use crate::ids::{check_initial_userns, check_static_owner, parse_owner, IdRange};

const POOL: &str = "dac-uid";

/// Owner-and-mode confinement with a uid per VM.
#[derive(Debug)]
pub struct DacDriver {
    config: DacConfig,
    range: IdRange,
    shared_gid: u32,
    store: Arc<dyn LabelStore>,
    relabeler: Relabeler,
}

impl DacDriver {
    /// A driver over the build context's host, store and state directory.
    pub fn new(config: DacConfig, range: IdRange, shared_gid: u32, ctx: &BuildContext) -> Self {
        DacDriver {
            config,
            range,
            shared_gid,
            store: ctx.store.clone(),
            relabeler: ctx.relabeler(Arc::new(DacAttr)),
        }
    }

    fn owner_of(&self, label: &LabelRecord, domain: &str) -> Result<(u32, u32)> {
        parse_owner(&label.label, &self.config.passwd, &self.config.group).map_err(|_| {
            DacError::BadRecord {
                domain: domain.to_owned(),
                label: label.label.clone(),
            }
            .into()
        })
    }

    /// Change the uid pool under the store's lock.
    fn update_pool(
        &self,
        f: &mut dyn FnMut(&mut svirt_core::ids::IdPool) -> Result<()>,
    ) -> Result<()> {
        self.store.update_ids(POOL, self.range.lo, self.range.hi, f)
    }

    /// The uid of a recorded label, when it comes from this driver's pool.
    fn pooled_uid(&self, ctx: DomainCtx<'_>) -> Result<Option<u32>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        let (uid, _) = self.owner_of(ctx.label, &ctx.domain.name)?;
        Ok(self.in_pool(uid).then_some(uid))
    }

    fn uid_map(&self) -> std::path::PathBuf {
        self.config.proc.join("self/uid_map")
    }

    fn in_pool(&self, id: u32) -> bool {
        (self.range.lo..=self.range.hi).contains(&id) && id != self.shared_gid
    }

    fn plan(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<Plan> {
        if ctx.label.kind == LabelType::None || !ctx.label.relabel {
            return Ok(Plan::Skip("relabeling is off for this domain".into()));
        }
        let (uid, gid) = self.owner_of(ctx.label, &ctx.domain.name)?;
        if let Some(o) = res.override_for("dac") {
            if o.relabel == Some(false) {
                return Ok(Plan::Skip("relabel = false for this device".into()));
            }
            if let Some(l) = &o.label {
                let (u, g) = parse_owner(l, &self.config.passwd, &self.config.group)?;
                return Ok(Plan::Set(value(u, g, 0o600)));
            }
        }
        Ok(Plan::Set(match res.access {
            Access::Private => value(uid, gid, 0o600),
            Access::Shared => value(0, self.shared_gid, 0o660),
            Access::ReadOnly => value(0, self.shared_gid, 0o440),
        }))
    }
}

#[async_trait]
impl SecurityDriver for DacDriver {
    fn model(&self) -> &str {
        "dac"
    }

    async fn probe(&self) -> Probe {
        let root = nix::unistd::geteuid().is_root();
        if let (true, Err(e)) = (root, check_initial_userns(&self.uid_map())) {
            return Probe {
                available: false,
                detail: e.to_string(),
            };
        }
        Probe {
            available: root,
            detail: if root {
                format!(
                    "uids {}-{} per VM, shared group {}",
                    self.range.lo, self.range.hi, self.shared_gid
                )
            } else {
                "needs root to change owners and drop to a VM uid".into()
            },
        }
    }

    async fn verify(&self, domain: &Domain, seclabel: &SecLabel) -> Result<()> {
        if let Some(l) = &seclabel.label {
            let owner = parse_owner(l, &self.config.passwd, &self.config.group)?;
            if seclabel.kind() == LabelType::Static {
                check_static_owner(l, owner, &self.config.passwd, &self.config.group)?;
            }
        }
        for r in domain.resources() {
            if let Some(l) = r.override_for("dac").and_then(|o| o.label.as_ref()) {
                parse_owner(l, &self.config.passwd, &self.config.group)?;
            }
        }
        Ok(())
    }

    async fn generate_label(&self, domain: &Domain, seclabel: &SecLabel) -> Result<LabelRecord> {
        let kind = seclabel.kind();
        let (label, groups) = match kind {
            LabelType::None => (String::new(), vec![]),
            LabelType::Dynamic => {
                let mut uid = 0;
                let shared = self.shared_gid;
                self.update_pool(&mut |p| {
                    uid = p.allocate(&domain.name, &|id| id == shared)?;
                    Ok(())
                })?;
                (format!("+{uid}:+{uid}"), vec![self.shared_gid])
            }
            LabelType::Static => {
                let text = seclabel.label.clone().unwrap_or_default();
                let (uid, _) = parse_owner(&text, &self.config.passwd, &self.config.group)?;
                if self.in_pool(uid) {
                    self.update_pool(&mut |p| p.reserve(uid, &domain.name, seclabel.shared))?;
                }
                (text, vec![self.shared_gid])
            }
        };
        let mut extra = BTreeMap::new();
        extra.insert("groups".to_owned(), serde_json::json!(groups));
        Ok(LabelRecord {
            model: "dac".into(),
            kind,
            imagelabel: (seclabel.relabel() && kind != LabelType::None).then(|| label.clone()),
            label,
            relabel: seclabel.relabel(),
            extra,
        })
    }

    async fn reserve_label(&self, ctx: DomainCtx<'_>, _pid: Option<u32>) -> Result<()> {
        match self.pooled_uid(ctx)? {
            Some(uid) => {
                self.update_pool(&mut |p| p.reserve(uid, &ctx.domain.name, ctx.seclabel.shared))
            }
            None => Ok(()),
        }
    }

    async fn reconcile(&self, live: &[(Domain, LabelRecord)]) -> Result<()> {
        let names: Vec<&str> = live.iter().map(|(d, _)| d.name.as_str()).collect();
        self.update_pool(&mut |p| {
            for holders in p.held.values_mut() {
                holders.retain(|h| names.contains(&h.as_str()));
            }
            p.held.retain(|_, h| !h.is_empty());
            Ok(())
        })
    }

    async fn release_label(&self, ctx: DomainCtx<'_>) -> Result<()> {
        match self.pooled_uid(ctx)? {
            Some(uid) => self.update_pool(&mut |p| {
                p.release(uid, &ctx.domain.name);
                Ok(())
            }),
            None => Ok(()),
        }
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
        opts: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        check_initial_userns(&self.uid_map())?;
        let (uid, gid) = self.owner_of(ctx.label, &ctx.domain.name)?;
        let groups: Vec<u32> = ctx
            .label
            .extra
            .get("groups")
            .and_then(|g| serde_json::from_value(g.clone()).ok())
            .unwrap_or_default();
        Ok(Some(Box::new(DacHook::new(
            uid,
            gid,
            &groups,
            &opts.keep_fds,
        ))))
    }

    async fn process_label(&self, pid: u32) -> Result<Option<String>> {
        let (uid, gid) = self.relabeler.host().pid_owner(pid).map_err(|e| {
            svirt_core::Error::host("read the owner of process", format!("/proc/{pid}"), e)
        })?;
        Ok(Some(format!("+{uid}:+{gid}")))
    }
}
