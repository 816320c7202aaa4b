//! `svirt audit`: what could a compromised VM process open on this host as it is now?

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use svirt_core::audit::{self, Known, Marker, Report, Subject, WallOptions};
use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::domain::{Domain, LabelType, SecLabel};
use svirt_core::driver::{DomainCtx, LabelRecord, SecurityDriver};
use svirt_core::store::MemoryStore;

use crate::cli::UsageError;
use crate::output;
use crate::setup::Env;

/// The host directories always audited, besides those holding the domains' resources.
pub const DEFAULT_ROOTS: [&str; 4] = ["/etc", "/home", "/root", "/var/lib"];

/// Whom to audit.
#[derive(Debug, Clone)]
pub enum Who {
    /// Every running domain.
    All,
    /// One running domain.
    Domain(String),
    /// A process identity given by hand: an SELinux label and/or a uid with its groups.
    Identity {
        label: Option<String>,
        uid: Option<u32>,
        groups: Vec<u32>,
    },
}

/// The domains svirt runs, with their labels, from their records. The one place `svirt audit`
/// reads records, so it follows the records wherever they move.
async fn running_domains(env: &Env) -> Result<Vec<(Domain, Vec<LabelRecord>)>> {
    Ok(env
        .domains
        .records()
        .await?
        .into_iter()
        .map(|r| (r.domain, r.labels))
        .collect())
}

/// The driver that knows `model`'s wall: the configured one, else that driver built for
/// auditing only (SELinux offline when the kernel does not run it: it labels nothing here).
fn driver_for(env: &Env, model: &str) -> Result<Arc<dyn SecurityDriver>> {
    if let Some(d) = env
        .domains
        .manager()
        .drivers()
        .iter()
        .find(|d| d.model() == model)
    {
        return Ok(d.clone());
    }
    let build = BuildContext::new(
        env.state_dir.clone(),
        env.host.clone(),
        Arc::new(MemoryStore::default()),
    );
    let cfg: Box<dyn DriverConfig> = match model {
        "selinux" => Box::new(svirt_selinux::SelinuxConfig {
            offline: svirt_selinux::Kernel::mode(&svirt_selinux::LibSelinux).is_none(),
            ..Default::default()
        }),
        "dac" => Box::new(svirt_dac::DacConfig::default()),
        "landlock" => Box::new(svirt_landlock::LandlockConfig::default()),
        _ => Box::new(svirt_core::noop::NoopConfig {}),
    };
    cfg.build(&build)
        .with_context(|| format!("cannot build the {model} driver to audit its wall"))
}

/// Build one subject: a wall from each label's driver.
fn subject(
    env: &Env,
    opts: &WallOptions,
    name: &str,
    domain: &Domain,
    labels: &[LabelRecord],
    markers: &mut Vec<Box<dyn Marker>>,
) -> Result<Subject> {
    let mut walls = Vec::new();
    for l in labels {
        let driver = driver_for(env, &l.model)?;
        if let Some(m) = driver.marker() {
            if !markers.iter().any(|x| x.model() == m.model()) {
                markers.push(m);
            }
        }
        let seclabel = domain
            .seclabel(&l.model)
            .cloned()
            .unwrap_or_else(|| SecLabel::implicit(&l.model));
        let ctx = DomainCtx {
            domain,
            seclabel: &seclabel,
            label: l,
        };
        if let Some(w) = driver
            .wall(ctx, opts)
            .with_context(|| format!("cannot build the {} wall of {name}", l.model))?
        {
            walls.push(w);
        }
    }
    Ok(Subject {
        name: name.to_owned(),
        walls,
        resources: domain.resources(),
        labels: labels.to_vec(),
    })
}

/// The labels an identity given by hand stands for, as the drivers record them.
fn identity_labels(
    label: &Option<String>,
    uid: Option<u32>,
    groups: &[u32],
) -> svirt_core::Result<Vec<LabelRecord>> {
    let mut out = Vec::new();
    if let Some(l) = label {
        out.push(LabelRecord {
            model: "selinux".into(),
            kind: LabelType::Static,
            label: l.clone(),
            imagelabel: None,
            relabel: false,
            facts: Default::default(),
        });
    }
    if let Some(uid) = uid {
        let gid = groups.first().copied().unwrap_or(uid);
        let facts = svirt_dac::DacFacts {
            groups: groups.to_vec(),
        }
        .to_facts()?;
        out.push(LabelRecord {
            model: "dac".into(),
            kind: LabelType::Static,
            label: format!("+{uid}:+{gid}"),
            imagelabel: None,
            relabel: false,
            facts,
        });
    }
    Ok(out)
}

fn roots(env: &Env, given: &[PathBuf], known: &[Known]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if given.is_empty() {
        let holders = known
            .iter()
            .flat_map(|k| &k.resources)
            .filter_map(|r| r.path.parent().map(Path::to_owned));
        for p in holders.chain(DEFAULT_ROOTS.iter().map(PathBuf::from)) {
            if let Ok(c) = env.host.canonicalize(&p) {
                out.push(c);
            }
        }
    } else {
        for p in given {
            let c = env
                .host
                .canonicalize(p)
                .map_err(|e| UsageError(format!("--root {}: {e}", p.display())))?;
            out.push(c);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Run the audit and print it; exit 1 when it finds a violation.
pub async fn audit(
    env: &Env,
    who: Who,
    given_roots: &[PathBuf],
    policy: Option<PathBuf>,
    json_out: bool,
) -> Result<ExitCode> {
    if let Some(p) = &policy {
        if !p.is_file() {
            return Err(UsageError(format!("--policy {}: no such file", p.display())).into());
        }
    }
    let running = running_domains(env).await?;
    let known: Vec<Known> = running
        .iter()
        .map(|(d, labels)| Known {
            name: d.name.clone(),
            resources: d.resources(),
            labels: labels.clone(),
        })
        .collect();
    let opts = WallOptions {
        host: env.host.clone(),
        policy,
    };
    let mut markers: Vec<Box<dyn Marker>> = Vec::new();
    let mut subjects = Vec::new();
    match &who {
        Who::All | Who::Domain(_) => {
            for (domain, labels) in &running {
                if matches!(&who, Who::Domain(n) if *n != domain.name) {
                    continue;
                }
                subjects.push(subject(
                    env,
                    &opts,
                    &domain.name,
                    domain,
                    labels,
                    &mut markers,
                )?);
            }
            if let (Who::Domain(n), true) = (&who, subjects.is_empty()) {
                return Err(svirt_core::Error::NoSuchDomain { name: n.clone() }.into());
            }
        }
        Who::Identity { label, uid, groups } => {
            let labels = identity_labels(label, *uid, groups)?;
            let mut name = Vec::new();
            if let Some(l) = label {
                name.push(l.clone());
            }
            if let Some(u) = uid {
                name.push(format!("uid {u}"));
                if !groups.is_empty() {
                    let g: Vec<String> = groups.iter().map(u32::to_string).collect();
                    name.push(format!("groups {}", g.join(",")));
                }
            }
            let domain = Domain::from_toml("name = \"audit-identity\"\n", "svirt audit")?;
            let mut s = subject(env, &opts, &name.join(" "), &domain, &labels, &mut markers)?;
            s.resources.clear();
            subjects.push(s);
        }
    }
    // Every configured driver's marks tell whose files are whose, audited or not.
    for d in env.domains.manager().drivers() {
        if let Some(m) = d.marker() {
            if !markers.iter().any(|x| x.model() == m.model()) {
                markers.push(m);
            }
        }
    }
    let roots = roots(env, given_roots, &known)?;
    let host = env.host.clone();
    let report = tokio::task::spawn_blocking(move || {
        audit::run(host.as_ref(), &roots, &subjects, &known, &markers)
    })
    .await
    .context("the audit walk stopped")?;
    if json_out {
        output::json_of(&report)?;
    } else {
        print_report(&report);
    }
    Ok(if report.violations > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many host-readable files the table lists before it only counts them.
const READABLE_SHOWN: usize = 10;

fn print_report(r: &Report) {
    use svirt_core::audit::Class;
    let roots: Vec<String> = r.roots.iter().map(|p| p.display().to_string()).collect();
    output::out(&format!(
        "walked {} files and directories under {} ({} symlinks not followed, {} unreadable)",
        r.walked,
        roots.join(", "),
        r.symlinks,
        r.unreadable.len()
    ));
    for u in &r.unreadable {
        output::out(&format!(
            "  unreadable {}: {}",
            output::shown(&u.path),
            u.error
        ));
    }
    if r.subjects.is_empty() {
        output::out("no domain to audit (none running; give --label or --uid for an identity)");
    }
    for s in &r.subjects {
        let walls = if s.walls.is_empty() {
            "none".to_owned()
        } else {
            s.walls.join(", ")
        };
        output::out("");
        output::out(&format!("{} (walls: {walls})", s.name));
        let mut classes: Vec<Class> = s.entries.iter().map(|e| e.class).collect();
        classes.dedup();
        for c in classes {
            let all: Vec<_> = s.entries.iter().filter(|e| e.class == c).collect();
            output::out(&format!("  {} [{}]", c.title(), all.len()));
            let shown = if c == Class::HostReadable {
                READABLE_SHOWN
            } else {
                all.len()
            };
            for e in all.iter().take(shown) {
                let access = format!(
                    "{}{}",
                    if e.read { 'r' } else { '-' },
                    if e.write { 'w' } else { '-' }
                );
                let owner = match (&e.owner, c) {
                    (Some(o), _) => format!(" ({o})"),
                    (None, Class::Isolated | Class::StaleMark) => " (no running VM)".into(),
                    (None, _) => String::new(),
                };
                output::out(&format!(
                    "    {access} {}{owner}  {} {}:{} {}",
                    output::shown(&e.path),
                    e.label.as_deref().unwrap_or("-"),
                    e.uid,
                    e.gid,
                    e.mode
                ));
                if c.is_violation() || c == Class::Isolated {
                    output::out(&format!("         {}", e.reason));
                }
            }
            if all.len() > shown {
                output::out(&format!(
                    "    ... {} more (--json lists every one)",
                    all.len() - shown
                ));
            }
        }
        output::out(&format!("  unreachable: {} other files", s.unreachable));
    }
    if !r.findings.is_empty() {
        output::out("");
        output::out("host-wide findings");
        for f in &r.findings {
            output::out(&format!("  {}", f.class.title()));
            output::out(&format!("    {}: {}", output::shown(&f.path), f.detail));
        }
    }
    output::out("");
    output::out(&format!("{} violation(s)", r.violations));
}
