//! The security manager: an ordered stack of drivers, primary first.
//!
//! Label generation runs through every driver and, when one fails, releases the earlier ones in
//! reverse; releases are best effort and return every failure. File changes are not the
//! manager's: it gathers every driver's plan ([`SecurityManager::changes`]) and the lifecycle
//! applies them with one rollback and restores them with one best-effort loop.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::info;

use crate::attr::FileAttr;
use crate::domain::{DeviceChoice, Domain, LabelType, Resource, SecLabel};
use crate::driver::{
    DomainCtx, ExecHook, ExecOptions, LabelRecord, Probe, ProcessInfo, SecurityDriver,
};
use crate::engine::Change;
use crate::error::{Error, Result};
use crate::noop;

/// An ordered driver stack.
#[derive(Debug, Clone)]
pub struct SecurityManager {
    drivers: Vec<Arc<dyn SecurityDriver>>,
    require_confined: bool,
}

/// A driver paired with the seclabel it applies to a domain.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub driver: Arc<dyn SecurityDriver>,
    pub seclabel: SecLabel,
}

impl SecurityManager {
    /// A stack of `drivers`, primary first. With `require_confined`, unconfined domains are refused.
    pub fn new(drivers: Vec<Arc<dyn SecurityDriver>>, require_confined: bool) -> Result<Self> {
        if drivers.is_empty() {
            return Err(Error::Config {
                reason: "the driver stack is empty".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for d in &drivers {
            if !seen.insert(d.model().to_owned()) {
                return Err(Error::Config {
                    reason: format!("driver {} is listed twice", d.model()),
                });
            }
        }
        Ok(SecurityManager {
            drivers,
            require_confined,
        })
    }

    /// The drivers, primary first.
    pub fn drivers(&self) -> &[Arc<dyn SecurityDriver>] {
        &self.drivers
    }

    /// Probe every driver.
    pub async fn probe_all(&self) -> Vec<(String, Probe)> {
        let mut out = Vec::new();
        for d in &self.drivers {
            out.push((d.model().to_owned(), d.probe().await));
        }
        out
    }

    /// Which driver applies which seclabel: the domain's own for that model, a model-less one for
    /// the primary, else an implicit dynamic label (default confined). Also checks that every
    /// model the domain names is provided, and `require_confined`.
    pub fn assign(&self, domain: &Domain) -> Result<Vec<Assignment>> {
        domain.validate()?;
        let primary = self.drivers[0].model();
        let provided = |m: &str| {
            m.is_empty() || m == noop::MODEL || self.drivers.iter().any(|d| d.model() == m)
        };
        for s in &domain.seclabels {
            if !provided(&s.model) {
                return Err(Error::ModelUnavailable {
                    domain: domain.name.clone(),
                    model: s.model.clone(),
                });
            }
        }
        for r in domain.resources() {
            for o in &r.overrides {
                if !provided(&o.model) {
                    return Err(Error::ModelUnavailable {
                        domain: domain.name.clone(),
                        model: o.model.clone(),
                    });
                }
            }
        }
        let mut out = Vec::new();
        for d in &self.drivers {
            let m = d.model();
            let explicit = domain.seclabels.iter().find(|s| s.model == m).or_else(|| {
                (m == primary)
                    .then(|| domain.seclabels.iter().find(|s| s.model.is_empty()))
                    .flatten()
            });
            let mut seclabel = explicit.cloned().unwrap_or_else(|| SecLabel::implicit(m));
            seclabel.model = m.to_owned();
            if !d.confines() {
                seclabel.kind = Some(LabelType::None);
                seclabel.relabel = Some(false);
            }
            out.push(Assignment {
                driver: d.clone(),
                seclabel,
            });
        }
        if self.require_confined && out.iter().all(|a| a.seclabel.kind() == LabelType::None) {
            return Err(Error::Unconfined {
                domain: domain.name.clone(),
            });
        }
        Ok(out)
    }

    /// Validate a domain against the stack. Changes nothing.
    pub async fn verify(&self, domain: &Domain) -> Result<()> {
        for a in self.assign(domain)? {
            a.driver.verify(domain, &a.seclabel).await?;
        }
        Ok(())
    }

    /// Generate every driver's label; on failure, release those already generated.
    pub async fn generate(&self, domain: &Domain) -> Result<Vec<LabelRecord>> {
        let assignments = self.assign(domain)?;
        for a in &assignments {
            a.driver.verify(domain, &a.seclabel).await?;
        }
        let mut labels: Vec<LabelRecord> = Vec::new();
        for (i, a) in assignments.iter().enumerate() {
            match a.driver.generate_label(domain, &a.seclabel).await {
                Ok(l) => {
                    info!(vm = %domain.name, model = %l.model, label = %l.label, "assigned label");
                    labels.push(l);
                }
                Err(e) => {
                    let mut rollback_errors = Vec::new();
                    for j in (0..i).rev() {
                        let ctx = ctx(domain, &assignments[j], &labels[j]);
                        if let Err(re) = assignments[j].driver.release_label(ctx).await {
                            rollback_errors.push(re);
                        }
                    }
                    return Err(Error::RolledBack {
                        source: Box::new(e),
                        rollback_errors,
                    });
                }
            }
        }
        Ok(labels)
    }

    /// What starting the domain would do to each resource, per driver, changing no file: the
    /// labels are generated (so the plan shows real ones) and released again.
    pub async fn plan(&self, domain: &Domain) -> Result<Vec<crate::driver::PlannedResource>> {
        let labels = self.generate(domain).await?;
        let mut out = Vec::new();
        let mut result = Ok(());
        for (a, l) in self.pairs(domain, &labels)? {
            match a.driver.plan_all(ctx(domain, &a, l)).await {
                Ok(p) => out.extend(p),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.release(domain, &labels).await?;
        result.map(|()| out)
    }

    /// Reserve every driver's label of a running domain (after a manager restart).
    pub async fn reserve(
        &self,
        domain: &Domain,
        labels: &[LabelRecord],
        pid: Option<u32>,
    ) -> Result<()> {
        for (a, l) in self.pairs(domain, labels)? {
            a.driver.reserve_label(ctx(domain, &a, l), pid).await?;
        }
        Ok(())
    }

    /// Release every driver's label. Best effort.
    pub async fn release(&self, domain: &Domain, labels: &[LabelRecord]) -> Result<()> {
        let mut errors = Vec::new();
        for (a, l) in self.pairs(domain, labels)?.into_iter().rev() {
            if let Err(e) = a.driver.release_label(ctx(domain, &a, l)).await {
                errors.push(e);
            }
        }
        Error::from_all("releasing labels", errors)
    }

    /// Every driver's plan for `resources`, in stack order per resource: the changes the
    /// lifecycle applies (and, in reverse, restores). Drivers that change no files plan nothing.
    pub fn changes(
        &self,
        domain: &Domain,
        labels: &[LabelRecord],
        resources: &[Resource],
    ) -> Result<Vec<Change>> {
        let pairs = self.pairs(domain, labels)?;
        let mut out = Vec::new();
        for res in resources {
            for (a, l) in &pairs {
                if let Some(attr) = a.driver.file_attr() {
                    let plan = a.driver.plan(ctx(domain, a, l), res)?;
                    // A label the resource names for itself was not drawn for this domain,
                    // whatever the domain's own.
                    let drawn = l.kind == LabelType::Dynamic
                        && res.choice(attr.model()) == DeviceChoice::Default;
                    out.push(Change {
                        res: res.clone(),
                        attr,
                        plan,
                        drawn,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every process among `procs` that carries one of the domain's drawn identities, with
    /// the model of the driver that drew it.
    pub fn carriers(
        &self,
        domain: &Domain,
        labels: &[LabelRecord],
        procs: &[ProcessInfo],
    ) -> Result<Vec<(String, u32)>> {
        let mut out = Vec::new();
        for (a, l) in self.pairs(domain, labels)? {
            let model = a.driver.model().to_owned();
            for pid in a.driver.carriers(ctx(domain, &a, l), procs) {
                out.push((model.clone(), pid));
            }
        }
        Ok(out)
    }

    /// The ids each driver holds still before a scan for the processes that carry an identity
    /// drawn for the domain ([`SecurityDriver::carrier_ids`]); drivers with none are left out.
    pub fn carrier_ids(&self, domain: &Domain, labels: &[LabelRecord]) -> Result<Vec<HeldIds>> {
        let mut out = Vec::new();
        for (a, l) in self.pairs(domain, labels)? {
            let ids = a.driver.carrier_ids(ctx(domain, &a, l))?;
            if !ids.is_empty() {
                out.push(HeldIds {
                    model: a.driver.model().to_owned(),
                    ids,
                });
            }
        }
        Ok(out)
    }

    /// The ids each driver holds still before a scan that rebuilds the reservations: those it
    /// hands out that the scan `seen` shows no process with ([`SecurityDriver::unseen_ids`]).
    pub fn unseen_ids(&self, seen: &[ProcessInfo]) -> Vec<HeldIds> {
        self.drivers
            .iter()
            .map(|d| HeldIds {
                model: d.model().to_owned(),
                ids: d.unseen_ids(seen),
            })
            .filter(|h| !h.ids.is_empty())
            .collect()
    }

    /// Hold still every process that may carry one of the ids ([`SecurityDriver::hold_ids`]).
    /// Every driver is asked, also after one failed; the first error is returned.
    pub fn hold_ids(&self, held: &[HeldIds]) -> Result<()> {
        first_error(
            held.iter()
                .map(|h| self.driver_of_held(h).and_then(|d| d.hold_ids(&h.ids))),
        )
    }

    /// Let go what [`SecurityManager::hold_ids`] held with signals from the real uid `sender`,
    /// as the scan `before` it and the scan `held` since found the processes
    /// ([`SecurityDriver::release_ids`]). Every driver is
    /// asked, also after one failed; the first error is returned (a model the stack no longer
    /// has is one).
    pub fn release_ids(
        &self,
        held: &[HeldIds],
        sender: u32,
        before: &[ProcessInfo],
        since: &[ProcessInfo],
    ) -> Result<()> {
        first_error(held.iter().map(|h| {
            self.driver_of_held(h)
                .and_then(|d| d.release_ids(&h.ids, sender, before, since))
        }))
    }

    fn driver_of_held(&self, h: &HeldIds) -> Result<&Arc<dyn SecurityDriver>> {
        self.drivers
            .iter()
            .find(|d| d.model() == h.model)
            .ok_or_else(|| Error::HeldByMissingDriver {
                model: h.model.clone(),
                ids: h
                    .ids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Whether any driver of the stack reads the labels of processes.
    pub fn reads_process_labels(&self) -> bool {
        self.drivers.iter().any(|d| d.reads_process_labels())
    }

    /// The file attribute of the driver of `model`, to restore what it changed.
    pub fn attr_for(&self, model: &str) -> Option<Arc<dyn FileAttr>> {
        self.drivers
            .iter()
            .find(|d| d.model() == model)
            .and_then(|d| d.file_attr())
    }

    /// The position of `model` in the stack (primary first); unknown models sort last.
    pub fn position(&self, model: &str) -> usize {
        self.drivers
            .iter()
            .position(|d| d.model() == model)
            .unwrap_or(self.drivers.len())
    }

    /// Prepare every driver's exec hook, ordered by phase (label, identity, confine).
    pub fn prepare_exec(
        &self,
        domain: &Domain,
        labels: &[LabelRecord],
        opts: &ExecOptions,
    ) -> Result<Vec<Box<dyn ExecHook>>> {
        let mut hooks = Vec::new();
        for (a, l) in self.pairs(domain, labels)? {
            if let Some(h) = a.driver.prepare_exec(ctx(domain, &a, l), opts)? {
                hooks.push(h);
            }
        }
        hooks.sort_by_key(|h| h.phase());
        Ok(hooks)
    }

    /// Every driver's view of a process's label.
    pub async fn process_labels(&self, pid: u32) -> Vec<(String, Result<Option<String>>)> {
        let mut out = Vec::new();
        for d in &self.drivers {
            out.push((d.model().to_owned(), d.process_label(pid).await));
        }
        out
    }

    fn pairs<'l>(
        &self,
        domain: &Domain,
        labels: &'l [LabelRecord],
    ) -> Result<Vec<(Assignment, &'l LabelRecord)>> {
        let mut out = Vec::new();
        for a in self.assign(domain)? {
            let m = a.driver.model().to_owned();
            match labels.iter().find(|l| l.model == m) {
                Some(l) => out.push((a, l)),
                None => {
                    return Err(Error::Config {
                        reason: format!("domain {} has no {m} label recorded; was it started with another driver stack?", domain.name),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// The ids one driver of the stack holds still for a scan ([`SecurityManager::hold_ids`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldIds {
    pub model: String,
    pub ids: Vec<u32>,
}

/// Every one of `results` (all are run, also after one failed); the first error.
fn first_error(results: impl IntoIterator<Item = Result<()>>) -> Result<()> {
    let mut first = None;
    for r in results {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

fn ctx<'a>(domain: &'a Domain, a: &'a Assignment, l: &'a LabelRecord) -> DomainCtx<'a> {
    DomainCtx {
        domain,
        seclabel: &a.seclabel,
        label: l,
    }
}
