//! The only unsafe code of svirt-cli.

/// Die quietly of SIGPIPE when the reader of our output goes away (`svirt status | head`), as
/// other Unix tools do, instead of the Rust runtime's ignore-and-panic. Only for commands that
/// change nothing: a command that labels files must never be ended half-way by a closed pipe.
pub(crate) fn default_sigpipe() {
    // SAFETY: called early in `main`, before any thread exists; SIG_DFL is a valid
    // disposition and installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
