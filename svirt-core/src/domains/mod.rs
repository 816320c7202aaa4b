//! The lifecycle of domains: start, stop, attach, detach, recover, status and the VMM's pid,
//! over a driver stack, the host seam and the state database. Every operation runs on tokio's
//! blocking pool (file changes, fsyncs, database work; or on the caller's thread, for a caller
//! that asks for it: [`Blocking`]), one at a time per state directory,
//! in three steps: an intent transaction (the record, the labels and every original it is about
//! to change), made durable with one fsync; the changes; and a completion transaction, which
//! reaches the disk with the next durable write (see [`crate::db`]).

mod blocking;
mod hold;
mod ops;
mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use blocking::Blocking;
use blocking::Waiter;
pub use record::{lossy, Record, Recovered, Status, StopReport};

use crate::db::{Db, Phase};
use crate::domain::HostPaths;
use crate::domain::{Access, Domain};
use crate::driver::{ExecHook, ExecOptions, PlannedResource, ResourceReport};
use crate::engine::{Engine, ProgressFn};
use crate::error::{Error, Result};
use crate::fsutil::LockGuard;
use crate::host::Host;
use crate::manager::SecurityManager;

pub(super) struct Inner {
    manager: SecurityManager,
    host: Arc<dyn Host>,
    host_paths: HostPaths,
    db: Arc<Db>,
    engine: Engine,
    lock_file: PathBuf,
    lock: tokio::sync::Mutex<()>,
    blocking: Blocking,
}

/// The domains of one state directory.
#[derive(Clone)]
pub struct Domains {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Domains")
            .field("db", &self.inner.db.path())
            .finish_non_exhaustive()
    }
}

impl Domains {
    /// Domains over `manager`'s stack, the host, and the database of `state_dir` (whose store
    /// the drivers were built with).
    pub fn new(
        manager: SecurityManager,
        host: Arc<dyn Host>,
        db: Arc<Db>,
        state_dir: &Path,
        progress: Option<ProgressFn>,
    ) -> Self {
        Domains {
            inner: Arc::new(Inner {
                engine: Engine::new(host.clone())
                    .with_progress(progress)
                    .with_state_dir(state_dir),
                manager,
                host,
                host_paths: HostPaths::default(),
                db,
                lock_file: state_dir.join("svirt.lock"),
                lock: tokio::sync::Mutex::new(()),
                blocking: Blocking::default(),
            }),
        }
    }

    /// How many threads relabel a directory share (`None` or 0: every core, at most 4). Call
    /// before any operation.
    pub fn with_relabel_threads(mut self, threads: Option<usize>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.engine = inner.engine.clone().with_threads(threads);
        }
        self
    }

    /// Where operations run their blocking work (default: tokio's blocking pool; see
    /// [`Blocking::Inline`] for the one kind of caller that should change it). Call before any
    /// operation.
    pub fn with_blocking(mut self, blocking: Blocking) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.blocking = blocking;
        }
        self
    }

    /// Find host-derived resources (VFIO groups, USB and SCSI nodes, swtpm files) under
    /// `paths` instead of `/sys` and `/dev` (tests give a fake tree). Call before any operation.
    pub fn with_host_paths(mut self, paths: HostPaths) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.host_paths = paths;
        }
        self
    }

    /// The driver stack.
    pub fn manager(&self) -> &SecurityManager {
        &self.inner.manager
    }

    /// What starting `domain` would do to each resource, per driver, changing no file (the
    /// labels are generated to show real ones, and released).
    pub async fn plan(&self, domain: &Domain) -> Result<Vec<PlannedResource>> {
        let domain = domain.clone();
        self.locked(move |i, rt, _| rt.block_on(i.manager.plan(&domain)))
            .await
    }

    /// Refuse, as start would, every resource path of `domain` that must never be handed to a VM
    /// (resolved, by type, by inode: see [`crate::safe`]), opening each `O_PATH` only and
    /// changing nothing. A path that does not exist yet is left to start.
    pub async fn check_paths(&self, domain: &Domain) -> Result<()> {
        let domain = domain.clone();
        self.unlocked(move |inner| {
            for r in domain.resources() {
                match crate::safe::open_resource(inner.host.as_ref(), &r.path, Some(r.kind)) {
                    Ok(opened) => inner.engine.check_protected(&opened)?,
                    Err(e @ Error::PathRefused { .. }) => return Err(e),
                    Err(_) => {}
                }
            }
            Ok(())
        })
        .await
    }

    /// Run `op` as [`Blocking`] says, without the operation lock (what only reads).
    async fn unlocked<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        self.inner.blocking.run(move |_| op(&inner)).await
    }

    /// Run `op` as [`Blocking`] says under the operation lock (in this process and across
    /// processes).
    async fn locked<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner, &Waiter, &LockGuard) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let _g = self.inner.lock.lock().await;
        let inner = self.inner.clone();
        self.inner
            .blocking
            .run(move |waiter| {
                let flock = LockGuard::exclusive(&inner.lock_file)?;
                inner.release_left_hold(&flock);
                op(&inner, waiter, &flock)
            })
            .await
    }

    /// Start a domain: generate its labels and label every resource.
    pub async fn start(&self, domain: Domain) -> Result<Record> {
        self.locked(move |i, rt, lock| i.start(domain, rt, lock))
            .await
    }

    /// Stop a domain: restore every resource and release its labels. When anything cannot be
    /// restored, the domain is held (its labels stay reserved) and the error names each file.
    pub async fn stop(&self, name: &str) -> Result<StopReport> {
        let name = name.to_owned();
        self.locked(move |i, rt, lock| i.stop(&name, rt, lock))
            .await
    }

    /// Label one more disk of a running domain (hotplug).
    pub async fn attach(
        &self,
        name: &str,
        path: &Path,
        access: Access,
    ) -> Result<Vec<ResourceReport>> {
        let (name, path) = (name.to_owned(), path.to_owned());
        self.locked(move |i, rt, _| i.attach(&name, &path, access, rt))
            .await
    }

    /// Restore one disk of a running domain (hot-unplug).
    pub async fn detach(&self, name: &str, path: &Path) -> Result<StopReport> {
        let (name, path) = (name.to_owned(), path.to_owned());
        self.locked(move |i, rt, _| i.detach(&name, &path, rt))
            .await
    }

    /// Tear down every domain whose VMM is gone or whose start or stop was interrupted (also
    /// after a reboot), put back every remembered original no domain holds, and rebuild the
    /// reservations from the records and the live processes. Idempotent.
    pub async fn recover(&self) -> Result<Recovered> {
        self.locked(|i, rt, lock| i.recover(rt, lock)).await
    }

    /// Put back, from the `trusted.svirt.*` marks, every file under `dirs` that svirt changed
    /// and no recorded domain holds (the state database was lost). Setuid and setgid bits are
    /// never given back from a mark alone: nothing proves the file unchanged.
    pub async fn scan(&self, dirs: Vec<PathBuf>) -> Result<Vec<PathBuf>> {
        self.locked(move |i, _, _| i.scan(&dirs)).await
    }

    /// Record the VMM's pid.
    pub async fn set_pid(&self, name: &str, pid: u32) -> Result<Record> {
        let name = name.to_owned();
        self.locked(move |i, _, _| {
            i.inner_write(|tx| {
                let mut row = tx
                    .domain(&name)?
                    .ok_or_else(|| Error::NoSuchDomain { name: name.clone() })?;
                let phase = match row.phase {
                    Phase::Running => None,
                    Phase::Starting => Some("starting"),
                    Phase::Stopping => Some("stopping"),
                    Phase::Held => Some("held"),
                };
                if let Some(phase) = phase {
                    return Err(Error::NotRunning {
                        name: name.clone(),
                        phase,
                    });
                }
                row.pid = Some(pid);
                tx.put_domain(&row)?;
                Record::decode(&row, i.db.path())
            })
        })
        .await
    }

    /// Every domain (or the one named), as recorded, with whether its VMM runs.
    pub async fn status(&self, name: Option<&str>) -> Result<Vec<Status>> {
        let name = name.map(str::to_owned);
        self.unlocked(move |inner| {
            let rows = inner.db.read(|tx| tx.domains())?;
            let mut out = Vec::new();
            for row in rows {
                if name.as_ref().is_some_and(|n| *n != row.name) {
                    continue;
                }
                let rec = Record::decode(&row, inner.db.path())?;
                out.push(Status {
                    name: row.name.clone(),
                    phase: row.phase,
                    labels: rec.labels,
                    pid: row.pid,
                    alive: row.pid.map(|p| inner.host.pid_alive(p)),
                    resources: rec.resources,
                    held: row.held_reason.clone(),
                });
            }
            if let (Some(n), true) = (&name, out.is_empty()) {
                return Err(Error::NoSuchDomain { name: n.clone() });
            }
            Ok(out)
        })
        .await
    }

    /// Every recorded domain's record (running, starting, stopping or held).
    pub async fn records(&self) -> Result<Vec<Record>> {
        self.unlocked(move |inner| {
            inner
                .db
                .read(|tx| tx.domains())?
                .iter()
                .map(|row| Record::decode(row, inner.db.path()))
                .collect()
        })
        .await
    }

    /// The record of a domain.
    pub async fn record(&self, name: &str) -> Result<Record> {
        let name = name.to_owned();
        self.unlocked(move |inner| {
            let row = inner
                .db
                .read(|tx| tx.domain(&name))?
                .ok_or(Error::NoSuchDomain { name })?;
            Record::decode(&row, inner.db.path())
        })
        .await
    }

    /// Every driver's exec hook for a domain, ordered by phase.
    pub fn prepare_exec(&self, rec: &Record, opts: &ExecOptions) -> Result<Vec<Box<dyn ExecHook>>> {
        self.inner
            .manager
            .prepare_exec(&rec.domain, &rec.labels, opts)
    }
}
