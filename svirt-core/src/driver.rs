//! The [`SecurityDriver`] trait: one object-safe interface over the whole VM lifecycle, modeled on
//! libvirt's security driver table.
//!
//! Mandatory (no default): [`SecurityDriver::model`], [`SecurityDriver::probe`] and
//! [`SecurityDriver::generate_label`]. Everything else defaults to doing nothing, which is right
//! for a driver that changes nothing on disk (Landlock) or keeps no label state. A driver that
//! changes files names its [`FileAttr`] and plans each resource; the lifecycle
//! ([`crate::domains::Domains`]) does the changing, remembering and restoring for every driver.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::attr::{FileAttr, Plan};
use crate::domain::{Domain, LabelType, Resource, ResourceKind, SecLabel};
use crate::error::{Error, Result};

/// What a probe found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub available: bool,
    /// Why it is (not) available, and details such as an ABI version.
    pub detail: String,
}

/// The label a driver generated for a domain; kept per driver model in the domain's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub model: String,
    #[serde(rename = "type")]
    pub kind: LabelType,
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imagelabel: Option<String>,
    pub relabel: bool,
    /// The driver's own facts (an ABI version, a rule list, supplementary groups).
    #[serde(flatten, default)]
    pub facts: LabelFacts,
}

/// Facts a driver keeps with its label, as the driver's own serde type: written with
/// [`LabelFacts::of`] and read back with [`LabelFacts::get`]. Core never looks inside them. In the
/// record (and in `start --json`) their fields sit beside the label's own, as `abi`, `rules` or
/// `groups`, which is why they are kept as that type's encoding rather than as a value of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LabelFacts(BTreeMap<String, serde_json::Value>);

impl LabelFacts {
    /// The facts of `model`, from the driver's own type (which must encode as a JSON object).
    pub fn of<T: Serialize>(model: &str, facts: &T) -> Result<Self> {
        let err = |source| Error::LabelFacts {
            model: model.to_owned(),
            source,
        };
        match serde_json::to_value(facts).map_err(err)? {
            serde_json::Value::Object(map) => Ok(LabelFacts(map.into_iter().collect())),
            _ => Err(err(<serde_json::Error as serde::ser::Error>::custom(
                "the facts are not an object",
            ))),
        }
    }

    /// The facts as `model`'s own type; `None` when the label carries none (a record written
    /// before the driver kept any). Facts that do not read as that type are an error, never a
    /// default.
    pub fn get<T: DeserializeOwned>(&self, model: &str) -> Result<Option<T>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let map: serde_json::Map<String, serde_json::Value> = self.0.clone().into_iter().collect();
        serde_json::from_value(serde_json::Value::Object(map))
            .map(Some)
            .map_err(|source| Error::LabelFacts {
                model: model.to_owned(),
                source,
            })
    }

    /// True when the label carries no facts.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A process of the host, as `recover` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Its SELinux label, where the kernel has one and a driver reads it
    /// ([`SecurityDriver::reads_process_labels`]).
    pub label: Option<String>,
    /// Its real, effective, saved and filesystem uids and gids: a process may act as any of
    /// them (it can switch between them at will).
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    /// Its supplementary groups.
    pub groups: Vec<u32>,
    /// Stopped by a signal (or in a tracer's stop) when read, or stopping (a SIGSTOP pending).
    pub stopped: bool,
    /// A SIGSTOP pending while no thread has stopped yet (see [`crate::host::ProcCreds`]).
    pub stopping: bool,
    /// Traced: its stops come and go with its tracer's (a syscall stop reads stopped too), so
    /// one stopped before a hold was not stopped on purpose.
    #[serde(default)]
    pub traced: bool,
}

impl ProcessInfo {
    /// Stopped, not only stopping: one of its threads has acted on the stop.
    pub fn halted(&self) -> bool {
        self.stopped && !self.stopping
    }

    /// Every uid and gid it carries: its real, effective, saved and filesystem uids and gids,
    /// and its supplementary groups.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.uids
            .iter()
            .chain(&self.gids)
            .chain(&self.groups)
            .copied()
    }

    /// True when it carries `id` (see [`ProcessInfo::ids`]).
    pub fn carries_id(&self, id: u32) -> bool {
        self.ids().any(|i| i == id)
    }
}

/// Every process of the host, each as `/proc/PID/status` shows it, with its label where
/// `labels` asks for one (and the kernel has one). A process that exits while being read is
/// left out, and so is a kernel thread: it runs as root and no signal stops it. `kernel`
/// gathers the kernel threads' pids, and a pid already in it is not read again: a scan made
/// again in the same operation, moments later, skips them (a pid is reused only once the
/// kernel's counter has gone round every other).
pub fn scan_processes(
    host: &dyn crate::host::Host,
    labels: bool,
    kernel: &mut std::collections::HashSet<u32>,
) -> std::io::Result<Vec<ProcessInfo>> {
    let mut out = Vec::new();
    for pid in host.pids()? {
        if kernel.contains(&pid) {
            continue;
        }
        let Ok(c) = host.pid_creds(pid) else {
            continue;
        };
        if c.kernel {
            kernel.insert(pid);
            continue;
        }
        out.push(ProcessInfo {
            pid,
            label: labels.then(|| host.pid_label(pid).ok()).flatten(),
            uids: c.uids,
            gids: c.gids,
            groups: c.groups,
            stopped: c.stopped,
            stopping: c.stopping,
            traced: c.traced,
        });
    }
    Ok(out)
}

/// What a driver did to one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceReport {
    pub path: PathBuf,
    pub model: String,
    pub label: String,
    pub skipped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The path as the domain gave it, when it resolved to another (`path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given: Option<PathBuf>,
    /// Parts of a directory share left alone (mount points inside it), with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Excluded>,
}

/// A path inside a resource that was deliberately left alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Excluded {
    /// A share entry's name need not be UTF-8: written lossily.
    #[serde(serialize_with = "crate::domains::lossy::path")]
    pub path: PathBuf,
    pub reason: String,
}

/// What a driver would do to one resource: the plan `svirt verify` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedResource {
    pub path: PathBuf,
    pub kind: ResourceKind,
    pub model: String,
    /// The label (SELinux context, or the driver's value) it would get; `None` when skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The owner (`uid:gid`) it would get, for drivers that change owners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The permission bits (octal) it would get, for drivers that change them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Why it is left alone, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Everything a driver needs about the domain it works on.
#[derive(Clone, Copy, Debug)]
pub struct DomainCtx<'a> {
    pub domain: &'a Domain,
    /// The domain-level seclabel for this driver (explicit or implicit).
    pub seclabel: &'a SecLabel,
    /// The label this driver generated.
    pub label: &'a LabelRecord,
}

/// Options for the exec hooks.
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    /// File descriptors the manager passes to the VMM on purpose; others are closed at exec.
    pub keep_fds: Vec<RawFd>,
}

/// When an exec hook runs, relative to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExecPhase {
    /// Set labels that need the manager's identity (SELinux exec context).
    Label,
    /// Change identity (groups, gid, uid, capabilities).
    Identity,
    /// Confine what the process can reach (Landlock), last.
    Confine,
}

/// Work done in the forked child just before exec. Everything is prepared before the fork:
/// [`ExecHook::apply`] must only make async-signal-safe syscalls (no allocation, no locks).
pub trait ExecHook: Send + Sync + Debug {
    /// Which phase the hook belongs to.
    fn phase(&self) -> ExecPhase;
    /// Apply it in the child; returns the errno of the first failing call.
    fn apply(&self) -> std::result::Result<(), i32>;
}

/// A security driver. See the module docs for which methods are mandatory.
#[async_trait]
pub trait SecurityDriver: Send + Sync + Debug {
    /// The model name domains refer to (`selinux`, `dac`, `landlock`, `none`).
    fn model(&self) -> &str;

    /// Whether the driver can work on this host.
    async fn probe(&self) -> Probe;

    /// Whether this driver confines anything. A driver that does not (`none`) gets every
    /// domain's seclabel as type `none` without relabeling, and a domain may always name its
    /// model, as libvirt allows `model='none'`.
    fn confines(&self) -> bool {
        true
    }

    /// Check a domain's seclabel and resources against this driver. Changes nothing.
    async fn verify(&self, _domain: &Domain, _seclabel: &SecLabel) -> Result<()> {
        Ok(())
    }

    /// Generate (and reserve) the domain's label at start.
    async fn generate_label(&self, domain: &Domain, seclabel: &SecLabel) -> Result<LabelRecord>;

    /// Mark a running domain's label as in use again, after a manager restart. `pid` is the
    /// running VMM, whose live label the driver may read.
    async fn reserve_label(&self, _ctx: DomainCtx<'_>, _pid: Option<u32>) -> Result<()> {
        Ok(())
    }

    /// Make the label store agree with the domains that are really running or held (`live`)
    /// and with the processes of the host (`procs`): drop reservations nobody holds any more
    /// (after crashes), keep those of live domains, and reserve every identity of this driver
    /// that a process still carries, recorded or not (a lost state must never hand out a
    /// running VM's identity).
    async fn reconcile(
        &self,
        _live: &[(Domain, LabelRecord)],
        _procs: &[ProcessInfo],
    ) -> Result<()> {
        Ok(())
    }

    /// Release the label at stop.
    async fn release_label(&self, _ctx: DomainCtx<'_>) -> Result<()> {
        Ok(())
    }

    /// The processes among `procs` that run with the identity this driver drew for the domain
    /// alone (a dynamic label's uid or pair): a stop never releases that identity, nor gives
    /// files back under it, while a process carries it (a child that outlived the VMM may
    /// still write what it mapped). None by default.
    fn carriers(&self, _ctx: DomainCtx<'_>, _procs: &[ProcessInfo]) -> Vec<u32> {
        Vec::new()
    }

    /// The ids whose processes may carry the identity this driver drew for the domain alone:
    /// they are held still ([`SecurityDriver::hold_ids`]) before a scan
    /// [`SecurityDriver::carriers`] reads, since a process that forks and exits as the scan goes
    /// is at no pid the scan reads unless it is stopped first. None by default.
    fn carrier_ids(&self, _ctx: DomainCtx<'_>) -> Result<Vec<u32>> {
        Ok(Vec::new())
    }

    /// The ids this driver hands out that the scan `seen` shows no process with: they are held
    /// still before the scan [`SecurityDriver::reconcile`] reads (a process that forks and
    /// exits as a scan goes is at no pid the scan reads, and a lost state would hand out the
    /// identity it runs with). None by default.
    fn unseen_ids(&self, _seen: &[ProcessInfo]) -> Vec<u32> {
        Vec::new()
    }

    /// Hold still every process that may carry one of `ids` (from
    /// [`SecurityDriver::carrier_ids`] or [`SecurityDriver::unseen_ids`]). Nothing by default.
    fn hold_ids(&self, _ids: &[u32]) -> Result<()> {
        Ok(())
    }

    /// Let go what [`SecurityDriver::hold_ids`] of `ids` stopped: `sender` is the real uid the
    /// hold's signals went out with ([`crate::host::Host::signal_sender`] of the process that
    /// held), `before` the scan made before the hold (a process stopped then was stopped on
    /// purpose, and stays so), `held` one made since: while they were held, or, when the svirt
    /// that held them was killed, by the next operation. Depends on `ids` and `sender` alone,
    /// not on the configuration (the next operation may run under another pool). Nothing by
    /// default.
    fn release_ids(
        &self,
        _ids: &[u32],
        _sender: u32,
        _before: &[ProcessInfo],
        _held: &[ProcessInfo],
    ) -> Result<()> {
        Ok(())
    }

    /// Whether [`SecurityDriver::carriers`] and [`SecurityDriver::reconcile`] read
    /// [`ProcessInfo::label`]: a process's label is read only when a driver of the stack does
    /// (the kernel runs the LSM that labels processes). False by default.
    fn reads_process_labels(&self) -> bool {
        false
    }

    /// The file attribute this driver changes on resources (an SELinux label; an owner and
    /// mode), if any. The lifecycle remembers, applies and restores it; drivers only plan.
    fn file_attr(&self) -> Option<Arc<dyn FileAttr>> {
        None
    }

    /// What one resource of the domain gets from this driver.
    fn plan(&self, _ctx: DomainCtx<'_>, _res: &Resource) -> Result<Plan> {
        Ok(Plan::Skip("this driver changes no files".into()))
    }

    /// What the lifecycle would do to each resource, changing nothing (`svirt verify`). Drivers
    /// that label nothing return an empty plan.
    async fn plan_all(&self, _ctx: DomainCtx<'_>) -> Result<Vec<PlannedResource>> {
        Ok(Vec::new())
    }

    /// Prepare the hook that labels the VMM in the forked child before exec.
    fn prepare_exec(
        &self,
        _ctx: DomainCtx<'_>,
        _opts: &ExecOptions,
    ) -> Result<Option<Box<dyn ExecHook>>> {
        Ok(None)
    }

    /// Read the label of a running process, as this driver sees it.
    async fn process_label(&self, _pid: u32) -> Result<Option<String>> {
        Ok(None)
    }

    /// The wall this driver sets around the domain's process, for `svirt audit`. Default: this
    /// driver sets no wall (it is then not counted).
    fn wall(
        &self,
        _ctx: DomainCtx<'_>,
        _opts: &crate::audit::WallOptions,
    ) -> Result<Option<Box<dyn crate::audit::Wall>>> {
        Ok(None)
    }

    /// The reader of the marks this driver puts on files (whose a file is). Default: none.
    fn marker(&self) -> Option<Box<dyn crate::audit::Marker>> {
        None
    }
}

#[cfg(test)]
mod facts_tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Facts {
        abi: i32,
        groups: Vec<u32>,
    }

    #[test]
    fn label_facts_read_back_as_their_type_beside_the_label_fields() {
        let facts = LabelFacts::of(
            "x",
            &Facts {
                abi: 7,
                groups: vec![1, 2],
            },
        )
        .unwrap();
        let rec = LabelRecord {
            model: "x".into(),
            kind: LabelType::Dynamic,
            label: "l".into(),
            imagelabel: None,
            relabel: true,
            facts,
        };
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(
            json["abi"], 7,
            "the facts' keys sit beside the label's: {json}"
        );
        assert_eq!(json["groups"], serde_json::json!([1, 2]));
        let back: LabelRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
        assert_eq!(
            back.facts.get::<Facts>("x").unwrap(),
            Some(Facts {
                abi: 7,
                groups: vec![1, 2]
            })
        );
    }

    #[test]
    fn missing_facts_read_as_none_and_wrong_facts_as_an_error_naming_the_model() {
        assert_eq!(LabelFacts::default().get::<Facts>("x").unwrap(), None);
        let wrong = LabelFacts::of("x", &serde_json::json!({"abi": "seven"})).unwrap();
        let e = wrong.get::<Facts>("dac").unwrap_err();
        assert!(
            matches!(&e, Error::LabelFacts { model, .. } if model == "dac"),
            "{e}"
        );
        assert!(LabelFacts::of("x", &5).is_err(), "facts must be an object");
    }
}
