//! The `svirt` command line: argument parsing, output, and the lifecycle commands. The binary
//! is [`main`]; the test crate builds a second binary from it with crash injection enabled.

mod audit;
mod cli;
mod output;
mod progress;
mod run;
mod setup;
mod sys;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Colour on a stream only when it is a terminal and `NO_COLOR` is unset or empty
/// (<https://no-color.org>).
fn colour(is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Standard error for log events, dropping what cannot be written: a reader that went away
/// must not end a start or stop half-way (tracing-subscriber panics when it cannot even report
/// a failed write).
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Run `svirt` with the process's arguments.
pub fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            use clap::error::ErrorKind;
            let shown = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
            // `--json` asked for one JSON document on standard output, also when the
            // arguments around it do not parse.
            if !shown && std::env::args_os().skip(1).any(|a| a == "--json") {
                let rendered = e.render().to_string();
                let (first, rest) = rendered.split_once('\n').unwrap_or((&rendered, ""));
                let mut texts = vec![first.strip_prefix("error: ").unwrap_or(first).to_owned()];
                texts.extend(
                    Some(rest.trim())
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned),
                );
                output::json_failure(&texts, e.exit_code());
            }
            e.exit()
        }
    };
    if args.command.only_reads() {
        sys::default_sigpipe();
    }
    let filter = if args.verbose > 0 { "debug" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(|| QuietStderr)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SVIRT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .init();
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if args.command.needs_reactor() {
        // Only `run` waits on I/O and signals; setting the drivers up (an epoll instance, a
        // socket pair for signals, a timer wheel) is otherwise a cost every call paid for
        // nothing.
        builder.enable_all();
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error_line(&format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let json = args.json;
    let code = match rt.block_on(cli::dispatch(args)) {
        Ok(code) => code,
        Err(e) => {
            output::report(&e);
            let code = output::exit_code(&e);
            if json {
                output::json_error(&e, code);
            }
            ExitCode::from(code)
        }
    };
    // Not shut down: its idle blocking threads end with the process (shutting it down joins
    // each of them).
    std::mem::forget(rt);
    code
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
        assert!(!colour(false, Some("".into())));
    }
}
