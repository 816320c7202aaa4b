//! Printing results and errors. Results go to stdout; errors, one cause per line, to stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use svirt_core::Error;

/// Print a result line.
pub fn out(text: &str) {
    println!("{text}");
}

/// Print a JSON value.
pub fn json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Print a serializable value as JSON, its fields in declaration order.
pub fn json_of<T: serde::Serialize>(v: &T) -> serde_json::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Print one error line.
pub fn error_line(text: &str) {
    eprintln!("svirt: {text}");
}

/// Print an error and its whole cause chain, one cause per line.
pub fn report(e: &anyhow::Error) {
    let mut last: Option<String> = None;
    for cause in e.chain() {
        let text = cause.to_string();
        match &last {
            None => eprintln!("svirt: error: {text}"),
            // A wrapper that shows its cause's text (a rollback without failures) adds nothing.
            Some(prev) if *prev == text => continue,
            Some(_) => eprintln!("  caused by: {text}"),
        }
        last = Some(text);
    }
}

/// 2 for usage and configuration errors, 1 for everything else.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(se) = cause.downcast_ref::<Error>() {
            // The outermost svirt error decides: its own causes are what it wraps.
            return if se.is_usage() { 2 } else { 1 };
        }
        if cause.downcast_ref::<crate::cli::UsageError>().is_some() {
            return 2;
        }
    }
    1
}

/// Print what `start` assigned.
pub fn print_started(rec: &svirt_core::domains::Record, as_json: bool) {
    if as_json {
        json(&serde_json::json!({
            "name": rec.domain.name,
            "labels": rec.labels,
            "resources": rec.resources,
        }));
        return;
    }
    println!("{}: started", rec.domain.name);
    for l in &rec.labels {
        println!("  {:<9} {:<8} {}", l.model, l.kind.as_str(), l.label);
    }
    for r in &rec.resources {
        let how = if r.skipped {
            format!("skipped: {}", r.reason.clone().unwrap_or_default())
        } else {
            r.label.clone()
        };
        let given = r
            .given
            .as_ref()
            .map(|g| format!(" (given as {})", g.display()))
            .unwrap_or_default();
        println!("  {:<9} {}{given} {}", r.model, r.path.display(), how);
        for x in &r.excluded {
            println!(
                "  {:<9}   excluded {}: {}",
                r.model,
                x.path.display(),
                x.reason
            );
        }
    }
}

/// Print `status` in text.
pub fn print_status(domains: &[svirt_core::domains::Status]) {
    if domains.is_empty() {
        println!("no domains running");
    }
    for d in domains {
        let pid = match (d.pid, d.alive) {
            (Some(p), Some(true)) => format!("pid {p} alive"),
            (Some(p), _) => format!("pid {p} dead"),
            _ => "no process recorded".into(),
        };
        let phase = serde_json::to_value(d.phase)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!("{} ({phase}, {pid})", d.name);
        if let Some(why) = &d.held {
            println!("  held: its labels stay reserved until this is restored: {why}");
        }
        for l in &d.labels {
            println!("  {:<9} {}", l.model, l.label);
        }
        for r in &d.resources {
            println!("  {:<9} {} {}", r.model, r.path.display(), r.label);
        }
    }
}

/// Print what a stop found beyond putting originals back.
pub fn print_stop_report(r: &svirt_core::domains::StopReport) {
    for (then, now) in &r.moved {
        println!(
            "  moved: {} was found at {} and restored there",
            then.display(),
            now.display()
        );
    }
    for p in &r.reclaimed {
        println!(
            "  reclaimed from the VM: {} (share owner, default label, no setuid/setgid)",
            p.display()
        );
    }
    for p in &r.privileges_dropped {
        println!(
            "  changed while the VM held it, setuid/setgid not restored: {}",
            p.display()
        );
    }
    for (p, why) in &r.left {
        println!("  left alone: {} ({why})", p.display());
    }
}

/// Print what `start` would do to each resource, per driver: the label (and owner and mode), or
/// why the resource is left alone.
pub fn print_plan(plan: &[svirt_core::driver::PlannedResource]) {
    for p in plan {
        let kind = serde_json::to_value(p.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let how = match (&p.skipped, &p.owner, &p.mode, &p.label) {
            (Some(why), ..) => format!("skip: {why}"),
            (None, Some(owner), Some(mode), _) => format!("owner {owner} mode {mode}"),
            (None, _, _, Some(label)) => format!("label {label}"),
            _ => String::new(),
        };
        println!("  {:<9} {:<11} {} {how}", p.model, kind, p.path.display());
    }
}
