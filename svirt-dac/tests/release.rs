//! What the DAC driver continues after a hold (`release_ids`), over the fake host: only what a
//! hold of its uids could have stopped (the kernel lets a sender with effective uid U signal a
//! process whose real or saved uid is U, and, through the sender's real uid, another svirt in
//! the middle of its own hold: that uid, no other signalling uid), and nothing that was
//! stopped before the hold, unless it was only traced (a tracer's stop reads stopped too).

use std::sync::Arc;

use svirt_core::config::{BuildContext, DriverConfig};
use svirt_core::db::Db;
use svirt_core::driver::ProcessInfo;
use svirt_core::host::fake::FakeHost;
use svirt_core::host::{ProcCreds, SIGNAL_SENDER_UIDS};
use svirt_dac::DacConfig;

fn creds(uids: [u32; 4], stopped: bool, traced: bool) -> ProcCreds {
    ProcCreds {
        uids,
        gids: uids,
        groups: Vec::new(),
        stopped,
        stopping: false,
        kernel: false,
        traced,
    }
}

fn info(pid: u32, c: &ProcCreds) -> ProcessInfo {
    ProcessInfo {
        pid,
        label: None,
        uids: c.uids,
        gids: c.gids,
        groups: c.groups.clone(),
        stopped: c.stopped,
        stopping: c.stopping,
        traced: c.traced,
    }
}

#[test]
fn a_release_continues_only_what_a_hold_of_its_uids_could_have_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(FakeHost::new());
    let state = dir.path().join("state");
    let db = Arc::new(Db::open(&state).unwrap());
    let ctx = BuildContext::new(state, host.clone(), db);
    let config = DacConfig {
        uid_range: "64000-64010".into(),
        shared_group: None,
        passwd: dir.path().join("passwd"),
        group: dir.path().join("group"),
        login_defs: dir.path().join("login.defs"),
        proc: "/proc".into(),
    };
    let driver = config.build(&ctx).unwrap();
    // The hold's sender, and another signalling uid (a process root gave it, or an svirt the
    // hold did not reach).
    let (u, other, svirt, not_sender) = (
        64_003,
        64_005,
        *SIGNAL_SENDER_UIDS.start() + 5,
        *SIGNAL_SENDER_UIDS.start() + 6,
    );
    // As the scan before the hold read them.
    let before = [
        (10, creds([u; 4], true, false)),  // stopped on purpose
        (14, creds([u; 4], true, true)),   // in its tracer's stop
        (16, creds([0; 4], false, false)), // a root job
    ];
    // As the scan while held reads them (the fake host lists the same).
    let held = [
        (10, creds([u; 4], true, false)),
        (11, creds([u; 4], true, false)),
        (12, creds([0, 0, u, 0], true, false)), // u as its saved uid
        (13, creds([other; 4], true, false)),   // another domain's, paused meanwhile
        (14, creds([u; 4], true, true)),
        (15, creds([svirt, 64_007, 0, 64_007], true, false)), // another svirt mid-hold
        (16, creds([0; 4], true, false)),                     // the root job, paused meanwhile
        (17, creds([not_sender, 64_007, 0, 64_007], true, false)), // out of the hold's reach
    ];
    for (pid, c) in &held {
        host.add_process_creds(*pid, c.clone());
    }
    let before: Vec<ProcessInfo> = before.iter().map(|(p, c)| info(*p, c)).collect();
    let held: Vec<ProcessInfo> = held.iter().map(|(p, c)| info(*p, c)).collect();
    driver.release_ids(&[u], svirt, &before, &held).unwrap();
    let continued: Vec<String> = host
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("continue_as"))
        .collect();
    assert_eq!(
        continued,
        vec![format!(
            "continue_as uids=[{u}, {svirt}] pids=[11, 12, 14, 15]"
        )],
        "continued, as which uids"
    );
}
