//! The command line (clap) and the dispatch of each command.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::json;
use svirt_core::domain::{Access, Domain};

use crate::output::{json as print_json, out};
use crate::{run, setup};

/// A usage error (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for UsageError {}

/// svirt: keep virtual machines apart with per-VM security labels.
#[derive(Debug, Parser)]
#[command(name = "svirt", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (default: /etc/svirt/svirt.toml if present, else probe the host).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State directory (overrides the configuration; default /var/lib/svirt).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log what happens on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the compiled drivers, the probe result of each, and why one is unavailable.
    Drivers,
    /// Validate a domain (.toml, or .xml in libvirt's format) against the configuration. Changes nothing.
    Verify { domain_file: PathBuf },
    /// Generate labels, label every resource, and record the domain as running.
    Start { domain_file: PathBuf },
    /// Restore every resource and release the labels.
    Stop { name: String },
    /// Replace svirt with CMD running under NAME's labels.
    Exec {
        name: String,
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
    /// Start an ad-hoc domain, run CMD under its labels, wait, stop, and exit with CMD's status.
    Run {
        /// Domain name (default: run-PID).
        #[arg(long)]
        name: Option<String>,
        /// A private read-write file.
        #[arg(long = "rw", value_name = "PATH")]
        rw: Vec<PathBuf>,
        /// Read-only content.
        #[arg(long = "ro", value_name = "PATH")]
        ro: Vec<PathBuf>,
        /// A read-write file shared with other domains.
        #[arg(long = "shared", value_name = "PATH")]
        shared: Vec<PathBuf>,
        #[arg(last = true, required = true)]
        cmd: Vec<OsString>,
    },
    /// Show running domains, their labels, pids and resources.
    Status { name: Option<String> },
    /// Restore and release every domain whose process is gone or whose start/stop was interrupted.
    Recover {
        /// Also restore, from their `trusted.svirt.*` marks, the files under DIR that no
        /// recorded domain holds (when the state database was lost). Repeatable.
        #[arg(long, value_name = "DIR")]
        scan: Vec<PathBuf>,
    },
    /// Label one more disk of a running domain (hotplug).
    Attach {
        name: String,
        path: PathBuf,
        #[arg(long, conflicts_with = "shareable")]
        readonly: bool,
        #[arg(long)]
        shareable: bool,
    },
    /// Restore one disk of a running domain (hot-unplug).
    Detach { name: String, path: PathBuf },
    /// What could a compromised VM open? Walk the roots and decide, for every file and
    /// directory, whether each running domain's process (or the identity given) could open it
    /// for reading and for writing, combining every wall svirt sets. Exit 1 on a violation.
    Audit {
        /// Audit this running domain only (default: every running domain).
        #[arg(long, conflicts_with_all = ["label", "uid", "groups"])]
        domain: Option<String>,
        /// Audit a process with this SELinux context instead of a running domain.
        #[arg(long, value_name = "CONTEXT")]
        label: Option<String>,
        /// Audit a process with this uid instead of a running domain.
        #[arg(long, value_name = "UID")]
        uid: Option<u32>,
        /// Every group of that process, primary first (default: the gid equal to the uid).
        #[arg(long, value_name = "G,...", value_delimiter = ',', requires = "uid")]
        groups: Vec<u32>,
        /// A directory to walk (repeatable; default: the directories holding the domains'
        /// resources, /etc, /home, /root and /var/lib).
        #[arg(long = "root", value_name = "DIR")]
        roots: Vec<PathBuf>,
        /// The binary SELinux policy to decide against (default: the loaded one where SELinux
        /// runs, else /etc/selinux/TYPE/policy/policy.NN).
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

impl Command {
    /// True for the commands that change no file and no reservation: only these may be ended by
    /// a closed pipe.
    pub fn only_reads(&self) -> bool {
        matches!(
            self,
            Command::Drivers
                | Command::Verify { .. }
                | Command::Status { .. }
                | Command::Audit { .. }
                | Command::Completions { .. }
                | Command::Man
        )
    }

    /// True for the commands that wait on the runtime's I/O, signal or process drivers: `run`
    /// waits for its command and forwards signals to it. The others run without them.
    pub fn needs_reactor(&self) -> bool {
        matches!(self, Command::Run { .. })
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p)
    } else {
        Ok(std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p))
    }
}

/// Run one command.
pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let json_out = cli.json;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "svirt", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Drivers => {
            return drivers(cli.config.as_deref(), cli.state_dir.as_deref(), json_out).await
        }
        _ => {}
    }
    // Never dropped: the process ends with the command, and the kernel lets go of the state
    // database's files, locks and mappings at once. Every write is synced before it is
    // reported; closing the connection would only free memory and unmap its index, a tenth
    // of a lifecycle command's time (docs/performance.md).
    let env = std::mem::ManuallyDrop::new(
        setup::load(cli.config.as_deref(), cli.state_dir.as_deref()).await?,
    );
    match cli.command {
        Command::Verify { domain_file } => {
            let d = Domain::from_file(&domain_file)?;
            env.domains.manager().verify(&d).await?;
            let plan = env.domains.plan(&d).await?;
            env.domains.check_paths(&d).await?;
            if json_out {
                print_json(&json!({
                    "name": d.name,
                    "valid": true,
                    "resources": d.resources(),
                    "plan": plan,
                }));
            } else {
                out(&format!(
                    "{}: valid ({} resources)",
                    d.name,
                    d.resources().len()
                ));
                crate::output::print_plan(&plan);
            }
        }
        Command::Start { domain_file } => {
            let d = Domain::from_file(&domain_file)?;
            let rec = env.domains.start(d).await?;
            crate::output::print_started(&rec, json_out);
        }
        Command::Stop { name } => {
            let report = env.domains.stop(&name).await?;
            if json_out {
                print_json(&json!({"name": name, "stopped": true, "report": report}));
            } else {
                out(&format!("{name}: stopped, resources restored"));
                crate::output::print_stop_report(&report);
            }
        }
        Command::Exec { name, cmd } => {
            return run::exec(&env, &name, &cmd)
                .await
                .map(|_| ExitCode::SUCCESS)
        }
        Command::Run {
            name,
            rw,
            ro,
            shared,
            cmd,
        } => {
            let name = name.unwrap_or_else(|| format!("run-{}", std::process::id()));
            let mut disks = Vec::new();
            for (paths, access) in [
                (rw, Access::Private),
                (ro, Access::ReadOnly),
                (shared, Access::Shared),
            ] {
                for p in paths {
                    disks.push((absolute(p)?, access));
                }
            }
            return run::run(&env, &name, disks, &cmd, json_out).await;
        }
        Command::Status { name } => {
            let domains = env.domains.status(name.as_deref()).await?;
            if json_out {
                print_json(&json!({ "domains": domains }));
            } else {
                crate::output::print_status(&domains);
            }
        }
        Command::Recover { scan } => {
            let r = env.domains.recover().await;
            let mut dirs = Vec::new();
            for d in scan {
                dirs.push(absolute(d)?);
            }
            let scanned = if dirs.is_empty() {
                Vec::new()
            } else {
                env.domains.scan(dirs).await?
            };
            let r = r?;
            if json_out {
                let mut v = serde_json::to_value(&r)?;
                v["scanned"] = json!(scanned
                    .iter()
                    .map(|p| p.to_string_lossy())
                    .collect::<Vec<_>>());
                print_json(&v);
            } else {
                for p in &scanned {
                    out(&format!(
                        "  restored from its mark: {}",
                        crate::output::shown(p)
                    ));
                }
                out(&format!(
                    "recovered {} domain(s), {} orphaned file(s)",
                    r.domains.len(),
                    r.orphans.len()
                ));
                for d in &r.domains {
                    out(&format!("  domain {d}"));
                }
                for o in &r.orphans {
                    out(&format!("  file {o}"));
                }
                crate::output::print_stop_report(&r.report);
            }
        }
        Command::Attach {
            name,
            path,
            readonly,
            shareable,
        } => {
            let access = Access::from_flags(readonly, shareable);
            let reports = env.domains.attach(&name, &absolute(path)?, access).await?;
            if json_out {
                print_json(&json!({ "name": name, "resources": reports }));
            } else {
                for r in reports {
                    out(&format!(
                        "{} {} {}",
                        r.model,
                        crate::output::shown(&r.path),
                        r.label
                    ));
                }
            }
        }
        Command::Detach { name, path } => {
            let report = env.domains.detach(&name, &absolute(path)?).await?;
            if json_out {
                print_json(&json!({"name": name, "detached": true, "report": report}));
            } else {
                out(&format!("{name}: detached"));
                crate::output::print_stop_report(&report);
            }
        }
        Command::Audit {
            domain,
            label,
            uid,
            groups,
            roots,
            policy,
        } => {
            let who = match (domain, label.is_some() || uid.is_some()) {
                (Some(d), _) => crate::audit::Who::Domain(d),
                (None, true) => crate::audit::Who::Identity { label, uid, groups },
                (None, false) => crate::audit::Who::All,
            };
            return crate::audit::audit(&env, who, &roots, policy, json_out).await;
        }
        Command::Completions { .. } | Command::Man | Command::Drivers => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn drivers(
    config: Option<&std::path::Path>,
    state_dir: Option<&std::path::Path>,
    json_out: bool,
) -> Result<ExitCode> {
    let tmp_state = state_dir
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(svirt_core::config::DEFAULT_STATE_DIR));
    let build = svirt_core::config::BuildContext::new(
        tmp_state.clone(),
        std::sync::Arc::new(svirt_core::host::LinuxHost::default()),
        std::sync::Arc::new(svirt_core::store::MemoryStore::default()),
    );
    let configured: Vec<String> = match config {
        Some(p) => svirt_core::config::Config::from_file(p)?
            .drivers
            .iter()
            .filter_map(|d| d.build(&build).ok().map(|x| x.model().to_owned()))
            .collect(),
        None => Vec::new(),
    };
    let mut rows = Vec::new();
    for (name, cfg) in setup::compiled() {
        let (available, detail) = match cfg.build(&build) {
            Ok(d) => {
                let p = d.probe().await;
                (p.available, p.detail)
            }
            Err(e) => (false, svirt_core::display_chain(&e)),
        };
        rows.push(json!({"driver": name, "available": available, "detail": detail, "configured": configured.iter().any(|c| c == name)}));
    }
    if json_out {
        print_json(&json!({ "drivers": rows }));
    } else {
        for r in rows {
            out(&format!(
                "{:<9} {:<12} {}",
                r["driver"].as_str().unwrap_or(""),
                if r["available"].as_bool() == Some(true) {
                    "available"
                } else {
                    "unavailable"
                },
                r["detail"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}
