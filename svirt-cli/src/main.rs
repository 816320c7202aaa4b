//! `svirt`: security labels for VM managers. See `svirt --help` and docs/managers.md.

fn main() -> std::process::ExitCode {
    svirt_cli::main()
}
