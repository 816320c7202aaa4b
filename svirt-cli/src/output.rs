//! Printing results and errors. Results go to stdout; errors, one cause per line, to stderr.

use std::io::Write;

use svirt_core::Error;

/// `println!` that never panics: a reader that went away (or a full disk) loses the text, not the
/// outcome, which the exit status carries.
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `eprintln!` that never panics, for the same reason.
macro_rules! errln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Print a result line.
pub fn out(text: &str) {
    outln!("{text}");
}

/// A path as one line of text: control characters (a newline in a name the guest chose could
/// otherwise forge a line of the report) are written escaped, as `\n`, `\u{1b}`.
pub fn shown(p: &std::path::Path) -> String {
    let text = p.to_string_lossy();
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    text.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Print a JSON value.
pub fn json(v: &serde_json::Value) {
    outln!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Print a serializable value as JSON, its fields in declaration order.
pub fn json_of<T: serde::Serialize>(v: &T) -> serde_json::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Print one error line.
pub fn error_line(text: &str) {
    errln!("svirt: {text}");
}

/// An error's text and its causes' texts, outermost first. A wrapper that shows its cause's
/// text (a rollback without failures) adds nothing, so a text equal to the one before is left
/// out.
fn chain_texts(e: &anyhow::Error) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if texts.last() != Some(&text) {
            texts.push(text);
        }
    }
    texts
}

/// Print an error and its whole cause chain, one cause per line.
pub fn report(e: &anyhow::Error) {
    for (i, text) in chain_texts(e).iter().enumerate() {
        match i {
            0 => errln!("svirt: error: {text}"),
            _ => errln!("  caused by: {text}"),
        }
    }
}

/// An error as `--json` prints it on standard output (its text goes to standard error too):
/// `{"error": ..., "causes": [...], "exit": ...}`, so a script reading the output of a command
/// that failed still reads JSON.
pub fn json_error(e: &anyhow::Error, exit: u8) {
    json_failure(&chain_texts(e), i32::from(exit));
}

/// [`json_error`] from the error's texts, outermost first (a usage error of the arguments has
/// no `anyhow::Error`).
pub fn json_failure(texts: &[String], exit: i32) {
    json(&serde_json::json!({
        "error": texts.first().map_or("", String::as_str),
        "causes": texts.get(1..).unwrap_or_default(),
        "exit": exit,
    }));
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
    outln!("{}: started", rec.domain.name);
    for l in &rec.labels {
        outln!("  {:<9} {:<8} {}", l.model, l.kind.as_str(), l.label);
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
            .map(|g| format!(" (given as {})", shown(g)))
            .unwrap_or_default();
        outln!("  {:<9} {}{given} {}", r.model, shown(&r.path), how);
        for x in &r.excluded {
            outln!(
                "  {:<9}   excluded {}: {}",
                r.model,
                shown(&x.path),
                x.reason
            );
        }
    }
}

/// Print `status` in text.
pub fn print_status(domains: &[svirt_core::domains::Status]) {
    if domains.is_empty() {
        outln!("no domains running");
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
        outln!("{} ({phase}, {pid})", d.name);
        if let Some(why) = &d.held {
            outln!("  held: its labels stay reserved until this is restored: {why}");
        }
        for l in &d.labels {
            outln!("  {:<9} {}", l.model, l.label);
        }
        for r in &d.resources {
            outln!("  {:<9} {} {}", r.model, shown(&r.path), r.label);
        }
    }
}

/// Print what a stop found beyond putting originals back.
pub fn print_stop_report(r: &svirt_core::domains::StopReport) {
    for (then, now) in &r.moved {
        outln!(
            "  moved: {} was found at {} and restored there",
            shown(then),
            shown(now)
        );
    }
    for p in &r.reclaimed {
        outln!(
            "  reclaimed from the VM: {} (share owner, default label, no setuid/setgid)",
            shown(p)
        );
    }
    for p in &r.privileges_dropped {
        outln!(
            "  changed while the VM held it, setuid/setgid not restored: {}",
            shown(p)
        );
    }
    for (p, why) in &r.left {
        outln!("  left alone: {} ({why})", shown(p));
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
        outln!("  {:<9} {:<11} {} {how}", p.model, kind, shown(&p.path));
    }
}

#[cfg(test)]
mod tests {
    use super::shown;
    use std::path::Path;

    #[test]
    fn a_path_is_shown_on_one_line_whatever_its_names_hold() {
        assert_eq!(shown(Path::new("/srv/share/a b")), "/srv/share/a b");
        assert_eq!(
            shown(Path::new("/srv/x\n  dac       /etc/shadow 0:0:0600")),
            "/srv/x\\n  dac       /etc/shadow 0:0:0600"
        );
        assert_eq!(shown(Path::new("a\u{1b}[2Jb\rc")), "a\\u{1b}[2Jb\\rc");
        assert!(!shown(Path::new("\t\n\r\u{7f}"))
            .chars()
            .any(char::is_control));
    }
}
