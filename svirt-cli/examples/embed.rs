//! A Rust VM manager embedding svirt instead of calling the CLI: build a driver stack, start a
//! domain, run its "VMM" under the domain's labels, and stop it.
//!
//! `cargo run -p svirt-cli --example embed -- IMAGE [CMD...]` (as root). It uses the DAC driver,
//! and Landlock too when the kernel has it, with its state in a temporary directory. The
//! default command reads the image, then tries /etc/shadow.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::db::Db;
use svirt_core::domain::{Access, Disk, Domain};
use svirt_core::domains::Domains;
use svirt_core::driver::ExecOptions;
use svirt_core::host::{Host, LinuxHost};
use svirt_core::manager::SecurityManager;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let image = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: embed IMAGE [CMD...]"))?,
    );
    let image = std::fs::canonicalize(&image)?;
    let cmd: Vec<String> = args.collect();
    let cmd = if cmd.is_empty() {
        vec![
            "sh".into(),
            "-c".into(),
            format!("id; cat {}; cat /etc/shadow", image.display()),
        ]
    } else {
        cmd
    };

    // The drivers, as a manager would choose them in its own configuration.
    let state = tempfile::tempdir()?;
    let host: Arc<dyn Host> = Arc::new(LinuxHost::default());
    let db = Arc::new(Db::open(state.path())?);
    let ctx = BuildContext::new(state.path().to_owned(), host.clone(), db.clone());
    let mut drivers = vec![svirt_dac::DacConfig::default().build(&ctx)?];
    let landlock = svirt_landlock::LandlockConfig::default().build(&ctx)?;
    if landlock.probe().await.available {
        drivers.push(landlock);
    }
    let manager = SecurityManager::new(drivers, true)?;
    let domains = Domains::new(manager, host, db, state.path(), None);

    // The domain, as the manager knows it.
    let domain = Domain {
        disks: vec![Disk::new(&image, Access::Private)],
        ..Domain::from_toml("name = \"embedded\"\n", "embed")?
    };
    let rec = domains.start(domain).await?;
    for l in &rec.labels {
        println!("label {} {}", l.model, l.label);
    }
    for r in &rec.resources {
        println!("resource {} {} {}", r.model, r.path.display(), r.label);
    }

    // The VMM, forked and exec'd under the domain's labels.
    let hooks = domains.prepare_exec(&rec, &ExecOptions::default())?;
    let mut vmm = Command::new(&cmd[0]);
    vmm.args(&cmd[1..]);
    svirt_core::exec::attach_hooks(&mut vmm, hooks);
    let status = vmm.status()?;
    println!("vmm exited: {status}");

    // Teardown: every original back, labels released.
    domains.stop(&rec.domain.name).await?;
    println!("restored");
    Ok(())
}
