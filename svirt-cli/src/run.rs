//! `svirt exec` and `svirt run`: a command under a domain's labels.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use svirt_core::domain::{Access, Disk, Domain};
use svirt_core::driver::ExecOptions;
use tokio::signal::unix::{signal, SignalKind};
use tracing::warn;

use svirt_core::domains::Record;

use crate::setup::Env;

/// A command line is bytes, as `execve(2)` takes them: a program or argument need not be UTF-8.
fn command(env: &Env, rec: &Record, cmd: &[OsString]) -> Result<std::process::Command> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| anyhow!("no command given"))?;
    let hooks = env.domains.prepare_exec(rec, &ExecOptions::default())?;
    let mut c = std::process::Command::new(prog);
    c.args(args);
    svirt_core::exec::attach_hooks(&mut c, hooks);
    Ok(c)
}

/// Replace svirt with `cmd` under `name`'s labels, recording this pid (which `cmd` keeps).
pub async fn exec(env: &Env, name: &str, cmd: &[OsString]) -> Result<()> {
    let rec = env.domains.set_pid(name, std::process::id()).await?;
    let err = command(env, &rec, cmd)?.exec();
    Err(anyhow::Error::new(err).context(format!(
        "cannot exec {} for domain {name}",
        Path::new(&cmd[0]).display()
    )))
}

/// Every signal whose default action ends a process and that svirt can catch without harm. Each
/// is caught before anything is labeled and forwarded to the command like SIGTERM, so no signal
/// can end svirt before it has restored everything. Not here: SIGKILL and SIGSTOP (they cannot
/// be caught), the fault signals SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS and SIGABRT
/// (delivered by the kernel for svirt's own faults; catching them would loop), SIGPIPE (the Rust
/// runtime ignores it, so it cannot end svirt), and the real-time signals (libc reserves some,
/// and nothing uses them to stop a program).
pub const FORWARDED: &[Signal] = &[
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGXFSZ,
    Signal::SIGIO,
    Signal::SIGPWR,
    Signal::SIGSTKFLT,
];

/// Catch every signal of [`FORWARDED`]; each arrival is sent on the returned channel.
fn catch_all() -> Result<tokio::sync::mpsc::UnboundedReceiver<Signal>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    for &sig in FORWARDED {
        let mut s = signal(SignalKind::from_raw(sig as i32))
            .with_context(|| format!("cannot catch {sig}"))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while s.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// Start an ad-hoc domain with `disks`, run `cmd` under it, forward every terminating signal
/// svirt can catch ([`FORWARDED`]), stop the domain (also when svirt itself is signalled), and
/// exit with the command's status.
pub async fn run(
    env: &Env,
    name: &str,
    disks: Vec<(PathBuf, Access)>,
    cmd: &[OsString],
    _json: bool,
) -> Result<ExitCode> {
    let domain = Domain {
        name: name.to_owned(),
        disks: disks
            .into_iter()
            .map(|(path, access)| Disk::new(path, access))
            .collect(),
        ..Domain::default()
    };
    // Catch the signals before labeling anything, so none of them can cut the run short of stop.
    let mut signals = catch_all()?;
    let rec = env.domains.start(domain).await?;
    let outcome: Result<std::process::ExitStatus> = async {
        let std_cmd = command(env, &rec, cmd)?;
        let mut child = tokio::process::Command::from(std_cmd)
            .spawn()
            .with_context(|| format!("cannot start {}", Path::new(&cmd[0]).display()))?;
        let pid = child.id().unwrap_or(0);
        env.domains.set_pid(name, pid).await?;
        loop {
            let sig = tokio::select! {
                status = child.wait() => return Ok(status?),
                Some(sig) = signals.recv() => sig,
            };
            if let Err(e) = kill(Pid::from_raw(pid as i32), sig) {
                warn!(pid, signal = %sig, error = %e, "cannot forward signal");
            }
        }
    }
    .await;
    let stopped = env.domains.stop(name).await;
    let status = outcome?;
    stopped?;
    let code = match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 1,
    };
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
