//! The DAC driver.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use svirt_core::audit::{Marker, Wall, WallOptions};
use svirt_core::config::BuildContext;
use svirt_core::domain::{
    Access, Derive, DeviceChoice, Domain, HostPaths, LabelType, Resource, SecLabel,
};
use svirt_core::driver::{
    DomainCtx, ExecHook, ExecOptions, FileAttr, LabelFacts, LabelRecord, Plan, PlannedResource,
    Probe, ProcessInfo, SecurityDriver,
};
use svirt_core::host::Host;
use svirt_core::store::LabelStore;
use svirt_core::Result;

use crate::attr::{value, DacAttr};
use crate::config::DacConfig;
use crate::error::DacError;
use crate::hook::DacHook;
use crate::ids::{check_initial_userns, check_static_owner, parse_owner, IdRange};
use crate::wall::{DacMarker, DacWall};

const POOL: &str = "dac-uid";

/// How long a release waits, at most, for every process a hold reached to show stopped
/// ([`DacDriver::continue_held`]).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// The facts the DAC driver keeps with its label (`groups` in the record).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DacFacts {
    /// The supplementary groups of the VM process.
    pub groups: Vec<u32>,
}

impl DacFacts {
    /// These facts as a label's.
    pub fn to_facts(&self) -> Result<LabelFacts> {
        LabelFacts::of("dac", self)
    }
}

/// The supplementary groups recorded with a DAC label (none for a record that kept no facts).
fn groups_of(label: &LabelRecord) -> Result<Vec<u32>> {
    Ok(label
        .facts
        .get::<DacFacts>("dac")?
        .map(|f| f.groups)
        .unwrap_or_default())
}

/// Owner-and-mode confinement with a uid per VM.
#[derive(Debug)]
pub struct DacDriver {
    config: DacConfig,
    range: IdRange,
    shared_gid: u32,
    store: Arc<dyn LabelStore>,
    host: Arc<dyn Host>,
    attr: Arc<DacAttr>,
    host_paths: HostPaths,
}

impl DacDriver {
    /// A driver over the build context's host, store and state directory.
    pub fn new(config: DacConfig, range: IdRange, shared_gid: u32, ctx: &BuildContext) -> Self {
        DacDriver {
            config,
            range,
            shared_gid,
            store: ctx.store.clone(),
            host: ctx.host.clone(),
            attr: Arc::new(DacAttr::for_pool(range.lo, range.hi, shared_gid)),
            host_paths: ctx.host_paths.clone(),
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

    /// The uid drawn for the domain alone: a dynamic label's, from this driver's pool.
    fn drawn_uid(&self, ctx: DomainCtx<'_>) -> Result<Option<u32>> {
        if ctx.label.kind != LabelType::Dynamic {
            return Ok(None);
        }
        self.pooled_uid(ctx)
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

    /// Continue what a hold of the uids `held_uids` stopped: every process the scan `held`
    /// (made while they were held) shows stopped, unless the scan `before` the hold showed it
    /// stopped already (stopped on purpose: it stays so). Each is continued as the sender that
    /// stopped it: first as the held uids it runs with, then (a process of a user namespace a
    /// held uid owns runs with none of them) as each held uid in turn until one reaches it.
    ///
    /// First the hold must have settled. A process the hold reached in the middle of a fork
    /// stops only once the fork returns, and its child is born with the stop pending and stops
    /// when it first runs: a scan made before that shows the parent running or only stopping
    /// (the SIGSTOP pending), and since a scan lists the processes before it reads them, it
    /// may miss the child even where the parent reads stopped. A release from such a scan
    /// would leave the child stopped for good. So while the scan shows a process the hold
    /// reached (a held uid as its real or saved uid, any process with a stop pending, any
    /// stopped since the scan `before`) that has not stopped yet, the scan is made again; and a
    /// scan where all have stopped stands once the next one lists the same processes. At most for [`SETTLE`]: such a process
    /// carries the uid (the stop is refused anyway) or is held in the kernel until the release
    /// (a vfork parent whose child the hold stopped). Where the hold reached no process (the
    /// uid's domain is gone), the first scan stands: a fork under way has its parent listed.
    fn continue_held(
        &self,
        held_uids: &[u32],
        sender: u32,
        before: &[ProcessInfo],
        held: &[ProcessInfo],
    ) -> Result<()> {
        // A traced process read stopped may only sit in a tracer's stop (a syscall stop): the
        // hold's SIGSTOP then stops it for good unless the release continues it.
        let stopped_before: std::collections::HashSet<u32> = before
            .iter()
            .filter(|p| p.stopped && !p.traced)
            .map(|p| p.pid)
            .collect();
        let held_set: std::collections::HashSet<u32> = held_uids.iter().copied().collect();
        // What the hold may have reached: a process of a held uid, one with a stop pending, and
        // one stopped since the scan before it (root inside a user namespace a held uid owns).
        let reached = |p: &ProcessInfo| {
            p.stopping
                || held_set.contains(&p.uids[0])
                || held_set.contains(&p.uids[2])
                || (p.stopped && !stopped_before.contains(&p.pid))
        };
        let unsettled = |scan: &[ProcessInfo]| scan.iter().any(|p| reached(p) && !p.halted());
        let reached_pids = |scan: &[ProcessInfo]| -> std::collections::BTreeSet<u32> {
            scan.iter().filter(|p| reached(p)).map(|p| p.pid).collect()
        };
        let mut rescan: Option<Vec<ProcessInfo>> = None;
        let mut confirming = None;
        let mut kernel = std::collections::HashSet::new();
        let deadline = std::time::Instant::now() + SETTLE;
        loop {
            let scan = rescan.as_deref().unwrap_or(held);
            let settled = !unsettled(scan);
            let pids = reached_pids(scan);
            // A scan lists the processes first and reads each one after: a child born of a
            // fork that was under way when the list was made is missing from it, though its
            // parent reads stopped by then. So a settled scan that shows processes the hold
            // reached stands only once a scan made after it lists the same ones.
            if settled && (pids.is_empty() || confirming.as_ref() == Some(&pids)) {
                break;
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
            if !settled {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            confirming = settled.then_some(pids);
            let next = svirt_core::driver::scan_processes(self.host.as_ref(), false, &mut kernel)
                .map_err(|e| svirt_core::Error::host("list the processes in", "/proc", e))?;
            rescan = Some(next);
        }
        let held = rescan.as_deref().unwrap_or(held);
        if rescan.is_some() {
            tracing::debug!(
                settled = !unsettled(held),
                "the processes the hold reached were scanned again until they all had stopped"
            );
        }
        // Only what a hold of these uids could have stopped: a process whose real or saved uid
        // is one (the effective uid the kernel checks a sender's against), or one of a user
        // namespace whose outermost ancestor below svirt's own one owns. SIGCONT reaches any
        // process of svirt's session too, and a process stopped since the scan before, on
        // purpose (another domain's VMM paused by its manager), stays stopped: after an svirt
        // killed in the hold, "since" is until the next operation.
        // And another svirt in the middle of its own hold: the kernel lets a sender signal a
        // process whose real or saved uid is the sender's real uid (`sender`, a signalling
        // uid, which two svirt processes of the same pid in two pid namespaces share). It is
        // continued as that uid.
        let of_sender = |p: &ProcessInfo| p.uids[0] == sender || p.uids[2] == sender;
        let could_hold = |p: &ProcessInfo| {
            held_set.contains(&p.uids[0])
                || held_set.contains(&p.uids[2])
                || of_sender(p)
                || self
                    .host
                    .userns_signaller(p.pid)
                    .is_ok_and(|o| o.is_some_and(|o| held_set.contains(&o)))
        };
        let left: Vec<&ProcessInfo> = held
            .iter()
            .filter(|p| p.stopped && !stopped_before.contains(&p.pid) && could_hold(p))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        // The held uids they run with first; then the others (a process of a user namespace a
        // held uid owns runs with none of them).
        let (mut uids, others): (Vec<u32>, Vec<u32>) = held_uids
            .iter()
            .partition(|&&u| left.iter().any(|p| p.uids.contains(&u)));
        uids.extend(others);
        if left.iter().any(|p| of_sender(p)) && !uids.contains(&sender) {
            uids.push(sender);
        }
        let pids: Vec<u32> = left.iter().map(|p| p.pid).collect();
        self.host.continue_as(&uids, &pids).map(drop).map_err(|e| {
            svirt_core::Error::host(
                "continue the processes of",
                format!("the uids {}", id_list(held_uids)),
                e,
            )
        })
    }

    /// The owner and mode of one resource, following libvirt's `virSecurityDACSetImageLabelInternal`
    /// and the per-device `virSecurityDACSet*Label` helpers for what is labeled and which device
    /// seclabel governs it. svirt gives each VM its own uid, so resources several VMs may open
    /// (shared disks, read-only content, backing layers) go to root and the shared group instead
    /// of to one VM's uid.
    fn plan_resource(&self, ctx: DomainCtx<'_>, res: &Resource) -> Result<Plan> {
        if ctx.label.kind == LabelType::None || !ctx.label.relabel {
            return Ok(Plan::Skip("relabeling is off for this domain".into()));
        }
        if matches!(res.derive, Some(Derive::Sgx { .. })) {
            // virSecurityDACSetMemoryLabel: SGX nodes only inside QEMU's private /dev.
            return Ok(Plan::Skip(
                "SGX nodes are chowned only inside a private /dev, which svirt does not create"
                    .into(),
            ));
        }
        let (uid, gid) = self.owner_of(ctx.label, &ctx.domain.name)?;
        Ok(match res.choice("dac") {
            DeviceChoice::Skip(why) => Plan::Skip(why),
            DeviceChoice::Label(l) => {
                let (u, g) = parse_owner(l, &self.config.passwd, &self.config.group)?;
                Plan::Set(value(u, g, 0o600))
            }
            DeviceChoice::Default => Plan::Set(match res.access {
                Access::Private => value(uid, gid, 0o600),
                Access::Shared => value(0, self.shared_gid, 0o660),
                Access::ReadOnly => value(0, self.shared_gid, 0o440),
            }),
        })
    }

    fn resources(&self, ctx: DomainCtx<'_>) -> Result<Vec<Resource>> {
        ctx.domain
            .resources_on(self.host.as_ref(), &self.host_paths)
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
                // A static uid in the pool is reserved against dynamic domains; a gid there
                // would be another domain's uid when drawn (a uid's own gid reserves with it).
                let (uid, gid) = owner;
                if gid != uid && (self.range.lo..=self.range.hi).contains(&gid) {
                    return Err(DacError::AccountLabel {
                        label: l.clone(),
                        reason: format!(
                            "gid {gid} lies in the VM uid pool {}-{}, where it would be another domain's uid; choose a gid outside it, or the uid's own",
                            self.range.lo, self.range.hi
                        ),
                    }
                    .into());
                }
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
                let shared = self.shared_gid;
                let uid = self.store.allocate_id(
                    POOL,
                    self.range.lo,
                    self.range.hi,
                    &domain.name,
                    &|id| id == shared,
                )?;
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
        let facts = DacFacts { groups }.to_facts()?;
        Ok(LabelRecord {
            model: "dac".into(),
            kind,
            imagelabel: (seclabel.relabel() && kind != LabelType::None).then(|| label.clone()),
            label,
            relabel: seclabel.relabel(),
            facts,
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

    fn carriers(&self, ctx: DomainCtx<'_>, procs: &[ProcessInfo]) -> Vec<u32> {
        let Ok(Some(uid)) = self.drawn_uid(ctx) else {
            return Vec::new();
        };
        procs
            .iter()
            .filter(|p| p.carries_id(uid))
            .map(|p| p.pid)
            .collect()
    }

    /// The drawn uid: every process of it is stopped at once.
    fn carrier_ids(&self, ctx: DomainCtx<'_>) -> Result<Vec<u32>> {
        Ok(self.drawn_uid(ctx)?.into_iter().collect())
    }

    /// Every pool uid no process of the scan `seen` carries (as any of its uids or gids), held
    /// uid by uid.
    fn unseen_ids(&self, seen: &[ProcessInfo]) -> Vec<u32> {
        let taken: std::collections::HashSet<u32> =
            seen.iter().flat_map(ProcessInfo::ids).collect();
        (self.range.lo..=self.range.hi)
            .filter(|&id| self.in_pool(id) && !taken.contains(&id))
            .collect()
    }

    fn hold_ids(&self, ids: &[u32]) -> Result<()> {
        self.host.hold_uids(ids).map_err(|e| {
            svirt_core::Error::host(
                "stop, for the process scan, the processes of",
                format!("the uids {}", id_list(ids)),
                e,
            )
        })
    }

    /// What the hold stopped is continued: every process stopped in the scan `held` that was
    /// not stopped before it and that a hold of `ids` could have stopped.
    fn release_ids(
        &self,
        ids: &[u32],
        sender: u32,
        before: &[ProcessInfo],
        held: &[ProcessInfo],
    ) -> Result<()> {
        self.continue_held(ids, sender, before, held)
    }

    async fn reconcile(&self, live: &[(Domain, LabelRecord)], procs: &[ProcessInfo]) -> Result<()> {
        let names: Vec<&str> = live.iter().map(|(d, _)| d.name.as_str()).collect();
        let mut recorded = Vec::new();
        for (d, l) in live {
            if let Some(uid) = self.pooled_uid(DomainCtx {
                domain: d,
                seclabel: &SecLabel::implicit("dac"),
                label: l,
            })? {
                recorded.push((uid, d.name.clone()));
            }
        }
        let shared = self.shared_gid;
        self.update_pool(&mut |p| {
            for holders in p.held.values_mut() {
                holders.retain(|h| names.contains(&h.as_str()));
            }
            p.held.retain(|_, h| !h.is_empty());
            // Rebuilt from the records: a lost pool never hands out a live domain's uid.
            for (uid, name) in &recorded {
                let holders = p.held.entry(*uid).or_default();
                if !holders.contains(name) {
                    holders.push(name.clone());
                }
            }
            // And from the processes: a uid of the pool that a process runs with (as any of
            // its uids or gids: it may switch to it at will) stays taken.
            for pr in procs {
                for id in pr.ids() {
                    if (p.lo..=p.hi).contains(&id) && id != shared && !p.held.contains_key(&id) {
                        tracing::info!(
                            pid = pr.pid,
                            uid = id,
                            "reserved the uid of a running process no record explains"
                        );
                        p.held.insert(id, vec![format!("process {}", pr.pid)]);
                    }
                }
            }
            // An id keeps its shared mark only while held; an id the records put back (the pool
            // had lost it) is not marked, so no one joins it until its holders restart.
            let held: Vec<u32> = p.held.keys().copied().collect();
            p.shared.retain(|id| held.contains(id));
            Ok(())
        })
    }

    async fn release_label(&self, ctx: DomainCtx<'_>) -> Result<()> {
        match self.pooled_uid(ctx)? {
            Some(uid) => self
                .store
                .release_id(POOL, self.range.lo, self.range.hi, uid, &ctx.domain.name)
                .map(drop),
            None => Ok(()),
        }
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
            let mut p = PlannedResource {
                path: r.path.clone(),
                kind: r.kind,
                model: "dac".into(),
                label: None,
                owner: None,
                mode: None,
                skipped: None,
            };
            match self.plan_resource(ctx, &r)? {
                Plan::Set(v) => {
                    let mut it = v.rsplitn(2, ':');
                    p.mode = it.next().map(str::to_owned);
                    p.owner = it.next().map(str::to_owned);
                    p.label = Some(v);
                }
                Plan::Skip(why) => p.skipped = Some(why),
            }
            out.push(p);
        }
        Ok(out)
    }

    fn wall(&self, ctx: DomainCtx<'_>, _opts: &WallOptions) -> Result<Option<Box<dyn Wall>>> {
        if ctx.label.kind == LabelType::None {
            return Ok(None);
        }
        let (uid, gid) = self.owner_of(ctx.label, &ctx.domain.name)?;
        Ok(Some(Box::new(DacWall::new(
            uid,
            gid,
            &groups_of(ctx.label)?,
        ))))
    }

    fn marker(&self) -> Option<Box<dyn Marker>> {
        Some(Box::new(DacMarker {
            range: self.range,
            shared_gid: self.shared_gid,
            passwd: self.config.passwd.clone(),
            group: self.config.group.clone(),
        }))
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
        let groups = groups_of(ctx.label)?;
        Ok(Some(Box::new(DacHook::new(
            uid,
            gid,
            &groups,
            &opts.keep_fds,
        ))))
    }

    async fn process_label(&self, pid: u32) -> Result<Option<String>> {
        let (uid, gid) = self.host.pid_owner(pid).map_err(|e| {
            svirt_core::Error::host("read the owner of process", format!("/proc/{pid}"), e)
        })?;
        Ok(Some(format!("+{uid}:+{gid}")))
    }
}

/// Uids for a message: `a, b, c`, at most eight of them and how many more.
fn id_list(ids: &[u32]) -> String {
    let mut s: Vec<String> = ids.iter().take(8).map(u32::to_string).collect();
    if ids.len() > 8 {
        s.push(format!("and {} more", ids.len() - 8));
    }
    s.join(", ")
}
