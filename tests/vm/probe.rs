//! `svirt-probe REPORT PATH...`: runs as a VM process (svirt_t) inside the test guest. Writes to
//! REPORT (one of its own private disks) its SELinux context, its uid, gid and groups, and for
//! each PATH whether it can be opened for reading and for writing. Opening changes nothing.

use std::fs::OpenOptions;
use std::io::Write;

fn result(r: std::io::Result<std::fs::File>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(libc::EACCES) => "EACCES".into(),
            Some(libc::EPERM) => "EPERM".into(),
            Some(libc::ENOENT) => "ENOENT".into(),
            Some(libc::EISDIR) => "EISDIR".into(),
            Some(n) => format!("errno{n}"),
            None => "error".into(),
        },
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((report, paths)) = args.split_first() else {
        std::process::exit(2);
    };
    let mut out = String::new();
    let ctx = std::fs::read("/proc/self/attr/current").unwrap_or_default();
    out.push_str(&format!(
        "context {}\n",
        String::from_utf8_lossy(&ctx).trim_end_matches(['\0', '\n'])
    ));
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for key in ["Uid:", "Gid:", "Groups:", "NoNewPrivs:"] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or("")
            .trim();
        out.push_str(&format!(
            "{} {v}\n",
            key.trim_end_matches(':').to_lowercase()
        ));
    }
    for p in paths {
        let read = result(OpenOptions::new().read(true).open(p));
        let write = result(OpenOptions::new().write(true).open(p));
        out.push_str(&format!("path {p} read={read} write={write}\n"));
    }
    match OpenOptions::new().write(true).truncate(true).open(report) {
        Ok(mut f) => {
            let _ = f.write_all(out.as_bytes());
        }
        Err(_) => std::process::exit(3),
    }
}
