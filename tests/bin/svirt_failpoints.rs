//! `svirt` with crash injection compiled in (`SVIRT_FAILPOINT=point:count`), for the tests.

fn main() -> std::process::ExitCode {
    svirt_cli::main()
}
