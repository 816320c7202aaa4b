//! The only unsafe code of svirt-cli.

/// Die quietly of SIGPIPE when the reader of our output goes away (`svirt status | head`), as
/// other Unix tools do, instead of the Rust runtime's ignore-and-panic.
pub(crate) fn default_sigpipe() {
    // SAFETY: called first thing in `main`, before any thread exists; SIG_DFL is a valid
    // disposition and installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
