//! The lifecycle operations behind the commands, each under the state lock.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};
use svirt_core::domain::{Access, Disk, Domain, Resource, ResourceKind};
use svirt_core::driver::{LabelRecord, ResourceReport};
use svirt_core::failpoint;
use svirt_core::relabel::Relabeler;
use svirt_core::remember::Journal;
use svirt_core::Error;
use tracing::{info, warn};

use crate::setup::Env;
use crate::state::{Phase, Record, StateDir};

/// Start a domain: generate labels, record them, label every resource, mark it running.
pub async fn start(env: &Env, domain: Domain) -> Result<Record> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    if state.load(&domain.name)?.is_some() {
        return Err(Error::DomainExists {
            name: domain.name.clone(),
        }
        .into());
    }
    env.manager.verify(&domain).await?;
    let mut rec = Record {
        domain,
        phase: Phase::Starting,
        labels: Vec::new(),
        resources: Vec::new(),
        pid: None,
    };
    state.save(&rec)?;
    let labels = match env.manager.generate(&rec.domain).await {
        Ok(l) => l,
        Err(e) => {
            state.remove(&rec.domain.name)?;
            return Err(e.into());
        }
    };
    failpoint::hit("state.labels-generated");
    rec.labels = labels;
    state.save(&rec)?;
    failpoint::hit("state.record-written");
    match env.manager.set_all(&rec.domain, &rec.labels).await {
        Ok(reports) => rec.resources = reports,
        Err(e) => {
            if let Err(re) = env.manager.release(&rec.domain, &rec.labels).await {
                warn!(error = %svirt_core::display_chain(&re), "releasing labels after a failed start");
            }
            state.remove(&rec.domain.name)?;
            return Err(e.into());
        }
    }
    rec.phase = Phase::Running;
    state.save(&rec)?;
    info!(vm = %rec.domain.name, "started");
    Ok(rec)
}

/// Stop a domain: restore every resource, release the labels, forget the record.
pub async fn stop(env: &Env, name: &str) -> Result<()> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    let rec = state.require(name)?;
    teardown(env, &state, rec).await
}

async fn teardown(env: &Env, state: &StateDir, mut rec: Record) -> Result<()> {
    rec.phase = Phase::Stopping;
    state.save(&rec)?;
    let restored = if rec.labels.is_empty() {
        Ok(())
    } else {
        env.manager.restore_all(&rec.domain, &rec.labels).await
    };
    if let Err(e) = restored {
        // Keep the record (phase stopping) so `recover` tries again.
        return Err(anyhow::Error::new(e).context(format!(
            "domain {} was not fully restored; run `svirt recover` once the cause is fixed",
            rec.domain.name
        )));
    }
    if !rec.labels.is_empty() {
        env.manager.release(&rec.domain, &rec.labels).await?;
    }
    state.remove(&rec.domain.name)?;
    info!(vm = %rec.domain.name, "stopped");
    Ok(())
}

/// What `recover` did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Recovered {
    pub domains: Vec<String>,
    pub orphans: Vec<String>,
}

/// Tear down every domain whose process is gone or whose start or stop was interrupted, put
/// back every remembered original no live domain holds, and drop label reservations no record
/// explains. Idempotent.
pub async fn recover(env: &Env) -> Result<Recovered> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    let mut out = Recovered::default();
    let mut errors = Vec::new();
    for rec in state.all()? {
        let dead = rec.pid.is_some_and(|p| !env.host.pid_alive(p));
        if rec.phase != Phase::Running || dead {
            let name = rec.domain.name.clone();
            match teardown(env, &state, rec).await {
                Ok(()) => out.domains.push(name),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    let live: Vec<Record> = state.all()?;
    // After a manager restart: every domain whose VMM runs keeps its labels, and its live
    // process label must be the recorded one.
    for rec in &live {
        if let Some(pid) = rec.pid.filter(|p| env.host.pid_alive(*p)) {
            if let Err(e) = env
                .manager
                .reserve(&rec.domain, &rec.labels, Some(pid))
                .await
            {
                errors.push(format!(
                    "domain {}: {}",
                    rec.domain.name,
                    svirt_core::display_chain(&e)
                ));
            }
        }
    }
    let names: HashSet<&str> = live.iter().map(|r| r.domain.name.as_str()).collect();
    let journal = Journal::new(env.host.clone(), &env.state_dir);
    for entry in journal.entries()? {
        if entry.holders.iter().any(|h| names.contains(h.as_str())) {
            continue;
        }
        let Some(attr) = crate::setup::file_attr(&entry.model) else {
            continue;
        };
        let r = Relabeler::new(env.host.clone(), journal.clone(), attr);
        match r.restore_orphan(&entry) {
            Ok(()) => out
                .orphans
                .push(format!("{} ({})", entry.path.display(), entry.model)),
            Err(e) => errors.push(svirt_core::display_chain(&e)),
        }
    }
    for d in env.manager.drivers() {
        let mine: Vec<(Domain, LabelRecord)> = live
            .iter()
            .filter_map(|r| {
                r.labels
                    .iter()
                    .find(|l| l.model == d.model())
                    .map(|l| (r.domain.clone(), l.clone()))
            })
            .collect();
        if let Err(e) = d.reconcile(&mine).await {
            errors.push(svirt_core::display_chain(&e));
        }
    }
    if !errors.is_empty() {
        bail!(
            "recover left {} problem(s): {}",
            errors.len(),
            errors.join("; ")
        );
    }
    Ok(out)
}

/// Hotplug one disk.
pub async fn attach(
    env: &Env,
    name: &str,
    path: &Path,
    access: Access,
) -> Result<Vec<ResourceReport>> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    let mut rec = state.require(name)?;
    let mut next = rec.domain.clone();
    next.disks.push(Disk::new(path, access));
    next.validate()?;
    // Record the disk first, so a crash mid-attach is recovered like any resource.
    rec.domain = next;
    state.save(&rec)?;
    let res = Resource::new(path, ResourceKind::Disk, access);
    match env
        .manager
        .set_resource(&rec.domain, &rec.labels, &res)
        .await
    {
        Ok(reports) => {
            rec.resources.extend(reports.clone());
            state.save(&rec)?;
            Ok(reports)
        }
        Err(e) => {
            rec.domain.disks.retain(|d| d.path != path);
            state.save(&rec)?;
            Err(e.into())
        }
    }
}

/// Unplug one disk.
pub async fn detach(env: &Env, name: &str, path: &Path) -> Result<()> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    let mut rec = state.require(name)?;
    let Some(disk) = rec.domain.disks.iter().find(|d| d.path == path).cloned() else {
        bail!("domain {name} has no disk {}", path.display());
    };
    let access = disk.access();
    env.manager
        .restore_resource(
            &rec.domain,
            &rec.labels,
            &Resource::new(path, ResourceKind::Disk, access),
        )
        .await?;
    rec.domain.disks.retain(|d| d.path != path);
    rec.resources.retain(|r| r.path != path);
    state.save(&rec)?;
    Ok(())
}

/// Record the VMM's pid.
pub fn set_pid(env: &Env, name: &str, pid: u32) -> Result<Record> {
    let state = StateDir::new(&env.state_dir);
    let _lock = state.lock()?;
    let mut rec = state.require(name)?;
    rec.pid = Some(pid);
    state.save(&rec)?;
    Ok(rec)
}
