//! The operations of [`super::Domains`], each run under the operation lock where its
//! [`super::Blocking`] says (the blocking pool, or the caller's thread): intent transaction,
//! changes, completion transaction.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::hold::Held;
use super::{Inner, Record, Recovered, StopReport, Waiter};
use crate::db::{DomainRow, Item, Phase};
use crate::domain::{Access, Disk, Domain, Resource, ResourceKind};
use crate::driver::{LabelRecord, ProcessInfo, ResourceReport};
use crate::engine::{RestoreOptions, Restored};
use crate::error::{Error, Result};
use crate::fsutil::LockGuard;

/// The `meta` key set once the database's reservations were checked against the processes.
const RECONCILED: &str = "identities_reconciled";

/// The `meta` key of the last start's generation, which the lock file holds too.
const GENERATION: &str = "generation";

impl Inner {
    pub(super) fn inner_write<T>(
        &self,
        f: impl FnOnce(&crate::db::Tx<'_>) -> Result<T>,
    ) -> Result<T> {
        self.db.write(f)
    }

    pub(super) fn boot_id(&self) -> Result<String> {
        self.host
            .boot_id()
            .map_err(|e| Error::host("read boot id", "/proc/sys/kernel/random/boot_id", e))
    }

    fn row(&self, phase: Phase, rec: &Record, pid: Option<u32>, boot: &str) -> Result<DomainRow> {
        Ok(DomainRow {
            name: rec.domain.name.clone(),
            phase,
            record: rec.encode(self.db.path())?,
            pid,
            boot_id: boot.to_owned(),
            held_reason: None,
        })
    }

    /// Whether `holder` is a domain recorded in an earlier boot (its VMM is gone, whatever its
    /// record says) or no recorded domain at all. One indexed lookup: the cost of an operation
    /// does not grow with the number of domains.
    /// Write `f` durably, with [`Self::is_dead`] for this boot: how the engine journals what
    /// it reads after an intent (a share's entries).
    fn journal(&self, boot: &str, f: &mut crate::engine::JournalWrite<'_>) -> Result<()> {
        self.db
            .write(|tx| f(tx, &|h: &str| self.is_dead(tx, h, boot)))
    }

    fn is_dead(&self, tx: &crate::db::Tx<'_>, holder: &str, boot: &str) -> bool {
        match tx.domain(holder) {
            Ok(Some(row)) => row.boot_id != boot,
            Ok(None) => true,
            // Unreadable: count it as alive, so nothing of it is taken over.
            Err(_) => false,
        }
    }

    /// Decide the privileges of guarded items and record the verdicts in `tx`, before anything
    /// is restored.
    fn decide_guards(&self, tx: &crate::db::Tx<'_>, items: &mut [Item]) -> Result<Vec<PathBuf>> {
        let (decided, dropped) = self
            .engine
            .verify_guards(items, &|m: &str| self.manager.attr_for(m));
        for it in &decided {
            tx.set_original(it.id, it.original.as_deref(), it.ctime_ns)?;
            if let Some(t) = &it.tree {
                tx.set_tree(it.id, t)?;
            }
        }
        Ok(dropped)
    }

    /// Items in restore order: the stack in reverse (so the driver that changed an inode last
    /// puts it back first), keeping each driver's own order.
    fn restore_order(&self, mut items: Vec<Item>) -> Vec<Item> {
        items.sort_by_key(|i| std::cmp::Reverse(self.manager.position(&i.model)));
        items
    }

    /// Restore `items` with the stack's own drivers, reclaiming share entries the VM created.
    fn restore_items(&self, items: Vec<Item>, own: &[LabelRecord]) -> Result<Restored> {
        let ids: HashSet<i64> = items.iter().map(|i| i.id).collect();
        let models: HashSet<String> = items.iter().map(|i| i.model.clone()).collect();
        // Asked only for share entries with several links (rare): an indexed lookup, then the
        // other shares' trees on the same filesystem (an entry of a running domain's share, a
        // hard link a host tool made into this one).
        let is_managed = |dev: u64, ino: u64| {
            self.db
                .read(|tx| {
                    if tx
                        .items_by_inode(dev, ino)?
                        .iter()
                        .any(|i| !ids.contains(&i.id))
                    {
                        return Ok(true);
                    }
                    for m in &models {
                        for t in tx.tree_roots(m)? {
                            if t.dev == dev
                                && !ids.contains(&t.id)
                                && tx
                                    .tree(t.id)?
                                    .is_some_and(|tr| tr.entries.iter().any(|e| e.ino == ino))
                            {
                                return Ok(true);
                            }
                        }
                    }
                    Ok(false)
                })
                // Unknown: treat it as managed elsewhere, so it is left alone.
                .unwrap_or(true)
        };
        let items = self.restore_order(items);
        Ok(self.engine.restore(
            &items,
            &|m: &str| self.manager.attr_for(m),
            &RestoreOptions {
                reclaim: true,
                managed: Some(&is_managed),
                own,
                by_inode: false,
            },
        ))
    }

    pub(super) fn start(&self, domain: Domain, rt: &Waiter, lock: &LockGuard) -> Result<Record> {
        let boot = self.boot_id()?;
        rt.block_on(self.manager.verify(&domain))?;
        let name = domain.name.clone();
        let seen = lock.generation();
        let (mut prepared, mut rec, generation) = self.db.write(|tx| {
            if tx.domain(&name)?.is_some() {
                return Err(Error::DomainExists { name: name.clone() });
            }
            let generation = self.reconcile_if_behind(tx, seen, rt, lock)?;
            let labels = rt.block_on(self.manager.generate(&domain))?;
            crate::failpoint::hit("state.labels-generated");
            let resources = domain.resources_on(self.host.as_ref(), &self.host_paths)?;
            let changes = self.manager.changes(&domain, &labels, &resources)?;
            let dead = |h: &str| self.is_dead(tx, h, &boot);
            let prepared = self.engine.prepare(tx, &name, changes, &dead)?;
            let rec = Record {
                domain: domain.clone(),
                labels,
                resources: prepared.reports.clone(),
            };
            tx.put_domain(&self.row(Phase::Starting, &rec, None, &boot)?)?;
            Ok((prepared, rec, generation))
        })?;
        // Only a hint (a database behind it is checked again): a failure changes nothing.
        if let Err(e) = lock.set_generation(generation) {
            warn!(error = %crate::display_chain(&e), "cannot note the start's generation in the lock file");
        }
        crate::failpoint::hit("state.record-written");
        if let Err(e) = self
            .engine
            .apply(&mut prepared, &|f| self.journal(&boot, f))
        {
            self.drop_failed_start_if_undone(&rec, &e, rt);
            return Err(e);
        }
        rec.resources = prepared.reports.clone();
        // The intent tells `recover` everything but the guard ctimes of setuid and setgid
        // originals: without them, the completion waits for the next durable write to reach
        // the disk; with them, it is synced before the VM can write (a completion lost with
        // the power would leave the VM's content unguarded).
        let (ids, ctimes) = prepared.applied_items();
        let guarded = ctimes.iter().any(Option::is_some) || !prepared.changed_trees().is_empty();
        let complete = |tx: &crate::db::Tx<'_>| {
            tx.set_applied(&ids, &ctimes)?;
            for (id, t) in prepared.changed_trees() {
                tx.set_tree(id, t)?;
            }
            tx.delete_items(&prepared.unapplied_items())?;
            tx.put_domain(&self.row(Phase::Running, &rec, None, &boot)?)
        };
        let done = if guarded {
            self.db.write(complete)
        } else {
            self.db.write_lazy(complete)
        };
        if let Err(e) = done {
            // Put the files back: that needs no space on the state filesystem. The intent stays
            // recorded for `recover` to clear.
            let (ids, _) = prepared.applied_items();
            let applied: Vec<Item> = prepared
                .items
                .iter()
                .filter(|i| ids.contains(&i.id))
                .cloned()
                .collect();
            let out = self.engine.restore(
                &self.restore_order(applied),
                &|m: &str| self.manager.attr_for(m),
                &RestoreOptions::rollback(),
            );
            let e = if out.failed.is_empty() {
                e
            } else {
                Error::RolledBack {
                    source: Box::new(e),
                    rollback_errors: out.failed.into_iter().map(|(_, e)| e).collect(),
                }
            };
            self.drop_failed_start_if_undone(&rec, &e, rt);
            return Err(e);
        }
        info!(vm = %name, "started");
        Ok(rec)
    }

    /// Forget a failed start whose changes were all put back. One whose rollback left anything
    /// changed (`Error::RolledBack`) stays recorded as starting, its identities reserved, as a
    /// start cut short: `recover` puts the rest back from its intent.
    fn drop_failed_start_if_undone(&self, rec: &Record, e: &Error, rt: &Waiter) {
        if matches!(e, Error::RolledBack { .. }) {
            warn!(vm = %rec.domain.name, "a failed start is not all put back; it stays recorded for `svirt recover`");
            return;
        }
        self.drop_failed_start(rec, rt);
    }

    /// Forget a start whose changes were put back: its items, holds, labels and record.
    fn drop_failed_start(&self, rec: &Record, rt: &Waiter) {
        let name = &rec.domain.name;
        let r = self.db.write(|tx| {
            let mut mine = Vec::new();
            for it in tx.items_of(name)? {
                if tx.remove_holder(it.id, name)? == 0 {
                    mine.push(it.id);
                }
            }
            tx.delete_items(&mine)?;
            rt.block_on(self.manager.release(&rec.domain, &rec.labels))?;
            tx.delete_domain(name)
        });
        if let Err(e) = r {
            warn!(vm = %name, error = %crate::display_chain(&e), "cannot clear the intent of a failed start; `svirt recover` will");
        }
    }

    /// Restore the items no domain holds (a stop or detach whose completion was lost), and
    /// forget those put back: their paths, what the restore found, and the failures.
    fn finish_orphans(&self) -> Result<(Vec<String>, StopReport, Vec<Error>)> {
        let orphans = self.db.read(|tx| tx.orphan_items())?;
        if orphans.is_empty() {
            return Ok(Default::default());
        }
        let names: Vec<String> = orphans
            .iter()
            .map(|i| format!("{} ({})", i.root.join(&i.rel).display(), i.model))
            .collect();
        // Whose they were is no longer recorded: pool identities only.
        let restored = self.restore_items(orphans, &[])?;
        self.db.write(|tx| tx.delete_items(&restored.done))?;
        let report = StopReport {
            moved: restored.moved,
            reclaimed: restored.reclaimed,
            left: restored.left,
            privileges_dropped: restored.privileges_dropped,
        };
        Ok((
            names,
            report,
            restored.failed.into_iter().map(|(_, e)| e).collect(),
        ))
    }

    pub(super) fn stop(&self, name: &str, rt: &Waiter, lock: &LockGuard) -> Result<StopReport> {
        let recorded = self.db.read(|tx| tx.domain(name))?;
        if let Some(row) = &recorded {
            self.refuse_while_carried(row, lock)?;
        }
        // A stop cut short after its intent left its items held by no domain: they are put
        // back first, and the domain is released only if all of them came back.
        let mut earlier = StopReport::default();
        let cut_short = recorded.is_some_and(|row| row.phase == Phase::Stopping);
        if cut_short {
            let (_, report, failures) = self.finish_orphans()?;
            if !failures.is_empty() {
                return Err(Error::NotRestored {
                    domain: name.to_owned(),
                    failures,
                });
            }
            earlier = report;
        }
        let first = self.db.write(|tx| {
            let mut row = tx.domain(name)?.ok_or_else(|| Error::NoSuchDomain {
                name: name.to_owned(),
            })?;
            let mut last = Vec::new();
            for it in tx.items_of(name)? {
                if tx.remove_holder(it.id, name)? == 0 {
                    last.push(it);
                }
            }
            let dropped = self.decide_guards(tx, &mut last)?;
            row.phase = Phase::Stopping;
            tx.put_domain(&row)?;
            Ok((row, (last, dropped)))
        });
        let (mut row, (items, dropped), full) = match first {
            Ok((row, items)) => (row, items, false),
            // The state filesystem is full: the files go back all the same (restoring needs no
            // space there), with the verdicts kept in memory; the record stays as it is, so
            // the domain's identities stay reserved until a later `stop` or `recover` can
            // write, and that one finds the files already back.
            Err(e) if e.is_state_full() => {
                warn!(vm = %name, error = %crate::display_chain(&e), "the state filesystem is full; restoring the files without recording the stop");
                let (row, mut last) = self.db.read(|tx| {
                    let row = tx.domain(name)?.ok_or_else(|| Error::NoSuchDomain {
                        name: name.to_owned(),
                    })?;
                    let last: Vec<Item> = tx
                        .items_of(name)?
                        .into_iter()
                        .filter(|it| it.holders.iter().all(|h| h == name))
                        .collect();
                    Ok((row, last))
                })?;
                let (_, dropped) = self
                    .engine
                    .verify_guards(&mut last, &|m: &str| self.manager.attr_for(m));
                (row, (last, dropped), true)
            }
            Err(e) => return Err(e),
        };
        let rec = Record::decode(&row, self.db.path())?;
        // A setuid or setgid bit given back is vouched for only until the file's next user
        // changes it: a redo after a lost completion must not give it back again.
        let privileged = items.iter().any(|it| {
            it.tree.is_some()
                || it.original.as_deref().is_some_and(|o| {
                    self.manager
                        .attr_for(&it.model)
                        .is_some_and(|a| a.without_privileges(o).is_some())
                })
        });
        crate::failpoint::hit("restore.released");
        let out = self.restore_items(items, &rec.labels)?;
        let mut report = earlier;
        report.moved.extend(out.moved);
        report.reclaimed.extend(out.reclaimed);
        report.left.extend(out.left);
        report.privileges_dropped.extend(out.privileges_dropped);
        report.privileges_dropped.extend(dropped);
        // As at the end of a start: the intent (phase stopping, the verdicts) tells `recover`
        // what to finish if this record is lost with the power, unless privileges went back.
        let complete = |tx: &crate::db::Tx<'_>| -> Result<Vec<Error>> {
            if full {
                for it in tx.items_of(name)? {
                    tx.remove_holder(it.id, name)?;
                }
            }
            tx.delete_items(&out.done)?;
            for (it, _) in &out.failed {
                // Still carried: the domain holds it, and its identities stay reserved.
                tx.add_holder(it.id, name)?;
            }
            if out.failed.is_empty() {
                rt.block_on(self.manager.release(&rec.domain, &rec.labels))?;
                tx.delete_domain(name)?;
            } else {
                row.phase = Phase::Held;
                row.held_reason = Some(
                    out.failed
                        .iter()
                        .map(|(_, e)| crate::display_chain(e))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                tx.put_domain(&row)?;
            }
            Ok(out.failed.into_iter().map(|(_, e)| e).collect())
        };
        let failures = if privileged {
            self.db.write(complete)?
        } else {
            self.db.write_lazy(complete)?
        };
        if !failures.is_empty() {
            return Err(Error::NotRestored {
                domain: name.to_owned(),
                failures,
            });
        }
        info!(vm = %name, "stopped");
        Ok(report)
    }

    pub(super) fn attach(
        &self,
        name: &str,
        path: &Path,
        access: Access,
        rt: &Waiter,
    ) -> Result<Vec<ResourceReport>> {
        let _ = rt;
        let res = Resource::new(path, ResourceKind::Disk, access);
        let boot = self.boot_id()?;
        let (mut prepared, mut row, mut rec) = self.db.write(|tx| {
            let row = tx.domain(name)?.ok_or_else(|| Error::NoSuchDomain {
                name: name.to_owned(),
            })?;
            let mut rec = Record::decode(&row, self.db.path())?;
            rec.domain.disks.push(Disk::new(path, access));
            rec.domain.validate()?;
            let changes =
                self.manager
                    .changes(&rec.domain, &rec.labels, std::slice::from_ref(&res))?;
            let dead = |h: &str| self.is_dead(tx, h, &boot);
            let prepared = self.engine.prepare(tx, name, changes, &dead)?;
            let mut row = row;
            row.record = rec.encode(self.db.path())?;
            tx.put_domain(&row)?;
            Ok((prepared, row, rec))
        })?;
        if let Err(e) = self
            .engine
            .apply(&mut prepared, &|f| self.journal(&boot, f))
        {
            let ids: Vec<i64> = prepared.items.iter().map(|i| i.id).collect();
            let r = self.db.write(|tx| {
                tx.delete_items(&ids)?;
                for it in tx.items_of(name)? {
                    if it.root == res.path {
                        tx.remove_holder(it.id, name)?;
                    }
                }
                rec.domain.disks.retain(|d| d.path != path);
                row.record = rec.encode(self.db.path())?;
                tx.put_domain(&row)
            });
            if let Err(ce) = r {
                warn!(vm = %name, error = %crate::display_chain(&ce), "cannot clear the intent of a failed attach; `svirt recover` will");
            }
            return Err(e);
        }
        rec.resources.extend(prepared.reports.clone());
        self.db.write(|tx| {
            let (ids, ctimes) = prepared.applied_items();
            tx.set_applied(&ids, &ctimes)?;
            for (id, t) in prepared.changed_trees() {
                tx.set_tree(id, t)?;
            }
            tx.delete_items(&prepared.unapplied_items())?;
            row.record = rec.encode(self.db.path())?;
            tx.put_domain(&row)
        })?;
        Ok(prepared.reports)
    }

    pub(super) fn detach(&self, name: &str, path: &Path, rt: &Waiter) -> Result<StopReport> {
        let _ = rt;
        let resolved = self
            .host
            .canonicalize(path)
            .unwrap_or_else(|_| path.to_owned());
        let (mut row, rec, items) = self.db.write(|tx| {
            let row = tx.domain(name)?.ok_or_else(|| Error::NoSuchDomain {
                name: name.to_owned(),
            })?;
            let mut rec = Record::decode(&row, self.db.path())?;
            if !rec.domain.disks.iter().any(|d| d.path == path) {
                return Err(Error::NoSuchResource {
                    domain: name.to_owned(),
                    path: path.to_owned(),
                });
            }
            let mut last = Vec::new();
            for it in tx.items_of(name)? {
                if (it.root == path || it.root == resolved) && tx.remove_holder(it.id, name)? == 0 {
                    last.push(it);
                }
            }
            self.decide_guards(tx, &mut last)?;
            rec.domain.disks.retain(|d| d.path != path);
            rec.resources
                .retain(|r| r.path != path && r.path != resolved);
            Ok((row, rec, last))
        })?;
        let mut out = self.restore_items(items, &rec.labels)?;
        let failed = std::mem::take(&mut out.failed);
        self.db.write(|tx| {
            tx.delete_items(&out.done)?;
            for (it, _) in &failed {
                tx.add_holder(it.id, name)?;
            }
            row.record = rec.encode(self.db.path())?;
            tx.put_domain(&row)
        })?;
        if !failed.is_empty() {
            return Err(Error::NotRestored {
                domain: name.to_owned(),
                failures: failed.into_iter().map(|(_, e)| e).collect(),
            });
        }
        Ok(StopReport {
            moved: out.moved,
            reclaimed: out.reclaimed,
            left: out.left,
            privileges_dropped: out.privileges_dropped,
        })
    }

    pub(super) fn recover(&self, rt: &Waiter, lock: &LockGuard) -> Result<Recovered> {
        self.db.check()?;
        let boot = self.boot_id()?;
        let mut out = Recovered::default();
        let mut errors = Vec::new();
        // Items no domain holds are those of a stop or detach whose completion was lost: they
        // are finished first, because the domain that stopped (phase stopping) is released
        // only once nothing of it is left unrestored.
        let (names, report, failed) = self.finish_orphans()?;
        out.orphans = names;
        out.report = report;
        errors.extend(failed);
        let orphans_left = !errors.is_empty();
        for row in self.db.read(|tx| tx.domains())? {
            let dead = row.boot_id != boot
                || matches!(row.phase, Phase::Starting | Phase::Stopping | Phase::Held)
                || row.pid.is_some_and(|p| !self.host.pid_alive(p));
            if !dead {
                continue;
            }
            if orphans_left && row.phase == Phase::Stopping {
                // Which of the unrestored items were its own is no longer recorded: its
                // identities stay reserved until a later `recover` restores them all.
                warn!(vm = %row.name, "a stopped domain's files are not all restored; its identities stay reserved");
                continue;
            }
            match self.stop(&row.name, rt, lock) {
                Ok(r) => {
                    out.domains.push(row.name.clone());
                    out.report.moved.extend(r.moved);
                    out.report.reclaimed.extend(r.reclaimed);
                    out.report.left.extend(r.left);
                    out.report.privileges_dropped.extend(r.privileges_dropped);
                }
                Err(e) => errors.push(e),
            }
        }
        let live: Vec<(DomainRow, Record)> = self
            .db
            .read(|tx| tx.domains())?
            .into_iter()
            .map(|row| Record::decode(&row, self.db.path()).map(|r| (row, r)))
            .collect::<Result<_>>()?;
        for (row, rec) in &live {
            if let Some(pid) = row.pid.filter(|p| self.host.pid_alive(*p)) {
                if let Err(e) =
                    rt.block_on(self.manager.reserve(&rec.domain, &rec.labels, Some(pid)))
                {
                    errors.push(e);
                }
            }
        }
        let records: Vec<Record> = live.into_iter().map(|(_, r)| r).collect();
        self.db
            .write(|tx| self.reconcile_identities(tx, &records, rt, lock))?;
        match errors.len() {
            0 => Ok(out),
            _ => Err(Error::Several {
                operation: "recovering",
                errors,
            }),
        }
    }

    pub(super) fn scan(&self, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let host = self.host.as_ref();
        let mut restored = Vec::new();
        let mut errors = Vec::new();
        let attrs: Vec<_> = self
            .manager
            .drivers()
            .iter()
            .rev()
            .filter_map(|d| d.file_attr())
            .collect();
        // Shares a domain holds are its own until it stops: never taken back from marks.
        let mut held_shares: Vec<(String, PathBuf)> = Vec::new();
        for attr in &attrs {
            let model = attr.model().to_owned();
            for t in self.db.read(|tx| tx.tree_roots(&model))? {
                if !t.holders.is_empty() {
                    held_shares.push((model.clone(), t.root));
                }
            }
        }
        for dir in dirs {
            let root = crate::safe::open_resource(host, dir, None)?;
            // Share roots name the common original of their entries that carry no mark of
            // their own: (path below `dir`, model) -> original.
            let mut common: HashMap<(PathBuf, String), Option<String>> = HashMap::new();
            // A directory inside a share: the nearest marked share root above it names the
            // common original of its unmarked entries (and its own).
            let mut inherited: HashMap<String, Option<String>> = HashMap::new();
            for above in root.path.ancestors().skip(1) {
                let Ok(n) = host.open_node(above) else { break };
                for attr in &attrs {
                    if let Some(m) = self.engine.marks().read_entries(host, &n, attr.model()) {
                        inherited
                            .entry(attr.model().to_owned())
                            .or_insert(m.original);
                    }
                }
            }
            let mut visit = |rel: &Path,
                             node: &crate::host::Node,
                             meta: &crate::host::FileMeta|
             -> Result<()> {
                for attr in &attrs {
                    let model = attr.model();
                    if held_shares
                        .iter()
                        .any(|(m, r)| m == model && node.path().starts_with(r))
                    {
                        continue;
                    }
                    if meta.kind == crate::host::FileKind::Dir {
                        if let Some(m) = self.engine.marks().read_entries(host, node, model) {
                            common.insert((rel.to_owned(), model.to_owned()), m.original);
                        }
                    }
                    let held = || {
                        self.db
                            .read(|tx| tx.item_by_inode(model, meta.dev, meta.ino))
                            .map(|it| it.is_some_and(|it| !it.holders.is_empty()))
                    };
                    let current = attr.read(host, node).unwrap_or(None);
                    let value = match self.engine.marks().read(host, node, model) {
                        Some(mark) => {
                            if held()? {
                                continue;
                            }
                            match mark.original.as_deref() {
                                Some(o) if attr.matches(current.as_deref(), o) => {
                                    Some(o.to_owned())
                                }
                                Some(o) if meta.kind == crate::host::FileKind::Dir => {
                                    Some(o.to_owned())
                                }
                                Some(o) => {
                                    Some(attr.without_privileges(o).unwrap_or_else(|| o.to_owned()))
                                }
                                None => None,
                            }
                        }
                        // An entry of a marked share with no mark of its own, still carrying a
                        // VM's identity: the share's common original.
                        None => {
                            let shared = rel
                                .ancestors()
                                .skip(1)
                                .find_map(|a| common.get(&(a.to_owned(), model.to_owned())))
                                .or_else(|| inherited.get(model));
                            let Some(original) = shared else { continue };
                            if !attr.carries_vm(current.as_deref(), None) || held()? {
                                continue;
                            }
                            let original = attr.entry_common(original.as_deref(), meta.kind);
                            original.map(|o| match meta.kind {
                                crate::host::FileKind::Dir => o,
                                _ => attr.without_privileges(&o).unwrap_or(o),
                            })
                        }
                    };
                    match attr.write(host, node, value.as_deref()) {
                        Ok(()) => {
                            self.engine.marks().remove(host, node, model);
                            info!(path = %node.path().display(), model, "restored from its mark");
                            restored.push(node.path().to_owned());
                        }
                        Err(e) => {
                            errors.push(Error::host("restore the attribute of", node.path(), e))
                        }
                    }
                }
                Ok(())
            };
            if root.meta.kind == crate::host::FileKind::Dir {
                // The root's own entries mark first: its entries are visited before it.
                visit(Path::new(""), &root.node, &root.meta)?;
                crate::tree::walk_all(host, &root.node, &mut |rel, node, meta| {
                    visit(rel, node, meta)
                })?;
                for attr in &attrs {
                    for ((rel, model), _) in common.iter().filter(|(k, _)| k.1 == attr.model()) {
                        let at = if rel.as_os_str().is_empty() {
                            crate::safe::open_resource(host, dir, None).map(|o| o.node)
                        } else {
                            crate::safe::open_resource(host, &root.path.join(rel), None)
                                .map(|o| o.node)
                        };
                        if let Ok(n) = at {
                            self.engine.marks().remove_entries(host, &n, model);
                        }
                    }
                }
            } else {
                visit(Path::new(""), &root.node, &root.meta)?;
            }
        }
        Error::from_all("restoring from marks", errors)?;
        Ok(restored)
    }

    /// Rebuild every driver's reservations, inside `tx`, from the recorded domains (`live`) and
    /// from the identities the host's processes carry, and note in the database that it was
    /// checked against the processes.
    ///
    /// The processes are read twice: once as they run, then with every process that may carry
    /// an identity the first scan saw no process with held still
    /// ([`crate::manager::SecurityManager::unseen_ids`]): a guest that forks and exits as the
    /// scan goes is at no pid a scan reads unless it is stopped first, and a lost state would
    /// hand out the identity it runs with. Both scans count.
    fn reconcile_identities(
        &self,
        tx: &crate::db::Tx<'_>,
        live: &[Record],
        rt: &Waiter,
        lock: &LockGuard,
    ) -> Result<()> {
        let mut kernel = HashSet::new();
        let seen = self.processes(&mut kernel)?;
        let ids = self.manager.unseen_ids(&seen);
        let mut procs = self
            .noted_hold(lock, Held::Unseen, ids, &seen, &mut kernel)?
            .unwrap_or_default();
        let found: HashSet<u32> = procs.iter().map(|p| p.pid).collect();
        procs.extend(seen.into_iter().filter(|p| !found.contains(&p.pid)));
        for d in self.manager.drivers() {
            let mine: Vec<(Domain, LabelRecord)> = live
                .iter()
                .filter_map(|r| {
                    r.labels
                        .iter()
                        .find(|l| l.model == d.model())
                        .map(|l| (r.domain.clone(), l.clone()))
                })
                .collect();
            rt.block_on(d.reconcile(&mine, &procs))?;
        }
        tx.set_meta(RECONCILED, "1")
    }

    /// A database that was never checked against the host's processes (created or imported
    /// while VMs may run: the old one lost), or whose generation disagrees with the lock file's
    /// `seen` (its WAL lost, or the lock file lost or replaced, perhaps with the database), may
    /// not know a running VM's identity: before one is drawn from it, every identity a running process
    /// carries is reserved, as `recover` does. Returns this start's generation, for the lock
    /// file once the start's intent is durable.
    fn reconcile_if_behind(
        &self,
        tx: &crate::db::Tx<'_>,
        seen: u64,
        rt: &Waiter,
        lock: &LockGuard,
    ) -> Result<u64> {
        let generation = tx
            .meta(GENERATION)?
            .and_then(|g| g.parse::<u64>().ok())
            .unwrap_or(0);
        // Garbage (a number no count of starts reaches) starts the count over.
        let next = match generation.max(seen).checked_add(1) {
            Some(n) if n < 1 << 62 => n,
            _ => 1,
        };
        tx.set_meta(GENERATION, &next.to_string())?;
        // Any disagreement counts: a lock file behind the database was lost or emptied (and
        // the database may have gone back with it), one ahead of it means lost commits.
        if tx.meta(RECONCILED)?.is_some() && seen == generation {
            return Ok(next);
        }
        let live = tx
            .domains()?
            .iter()
            .map(|row| Record::decode(row, self.db.path()))
            .collect::<Result<Vec<_>>>()?;
        info!(path = %self.db.path().display(), generation, seen, "a state database not yet checked against the running processes, or older than the lock file says: reserving every identity they carry");
        self.reconcile_identities(tx, &live, rt, lock)?;
        Ok(next)
    }

    /// Refuse to stop a domain whose drawn identity a process still carries (a VMM not yet
    /// gone, a child that outlived it): nothing is restored or released under it.
    ///
    /// A scan reads `/proc` one pid at a time, and a process that forks and exits as it goes
    /// is at none of the pids it reads. So a scan that finds nothing is made again with the
    /// processes that may carry the identity held still
    /// ([`crate::manager::SecurityManager::carrier_ids`]; not where no driver holds any), and
    /// the ones it finds are let go after it, whatever the verdict. A process the first scan
    /// finds is never signalled (a VMM paused on purpose stays paused).
    fn refuse_while_carried(&self, row: &DomainRow, lock: &LockGuard) -> Result<()> {
        let rec = Record::decode(row, self.db.path())?;
        let mut kernel = HashSet::new();
        let before = self.processes(&mut kernel)?;
        let mut carried = self.manager.carriers(&rec.domain, &rec.labels, &before)?;
        if carried.is_empty() {
            // What the hold stopped is let go even when the hold failed part way. (A listing
            // that fails leaves it stopped: the stop fails, nothing is restored under it, and
            // the next operation lets go.)
            let ids = self.manager.carrier_ids(&rec.domain, &rec.labels)?;
            let held = Held::Carriers {
                domain: row.name.clone(),
            };
            if let Some(procs) = self.noted_hold(lock, held, ids, &before, &mut kernel)? {
                carried = self.manager.carriers(&rec.domain, &rec.labels, &procs)?;
            }
        }
        let Some((model, _)) = carried.first() else {
            return Ok(());
        };
        let pids: Vec<String> = carried
            .iter()
            .filter(|(m, _)| m == model)
            .map(|(_, p)| p.to_string())
            .collect();
        Err(Error::StillCarried {
            domain: row.name.clone(),
            model: model.clone(),
            pids: pids.join(", "),
        })
    }

    /// Every process of the host, with its label (where the kernel has one) and owner
    /// ([`crate::driver::scan_processes`]; `kernel` carries the kernel threads' pids from one
    /// scan of an operation to the next).
    pub(super) fn processes(&self, kernel: &mut HashSet<u32>) -> Result<Vec<ProcessInfo>> {
        crate::driver::scan_processes(
            self.host.as_ref(),
            self.manager.reads_process_labels(),
            kernel,
        )
        .map_err(|e| Error::host("list the processes in", "/proc", e))
    }
}
