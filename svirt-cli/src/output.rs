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
pub fn print_started(rec: &crate::state::Record, as_json: bool) {
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
pub fn print_status(domains: &[serde_json::Value]) {
    if domains.is_empty() {
        println!("no domains running");
    }
    for d in domains {
        let pid = match (d["pid"].as_u64(), d["alive"].as_bool()) {
            (Some(p), Some(true)) => format!("pid {p} alive"),
            (Some(p), _) => format!("pid {p} dead"),
            _ => "no process recorded".into(),
        };
        println!(
            "{} ({}, {pid})",
            d["name"].as_str().unwrap_or(""),
            d["phase"].as_str().unwrap_or("")
        );
        for l in d["labels"].as_array().into_iter().flatten() {
            println!(
                "  {:<9} {}",
                l["model"].as_str().unwrap_or(""),
                l["label"].as_str().unwrap_or("")
            );
        }
        for r in d["resources"].as_array().into_iter().flatten() {
            println!(
                "  {:<9} {} {}",
                r["model"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
                r["label"].as_str().unwrap_or("")
            );
        }
    }
}
