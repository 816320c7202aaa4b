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

/// One malloc arena: a CLI call runs one short blocking task at a time, and a second arena for
/// its thread costs more page faults and `mprotect`s than the contention it would save.
pub(crate) fn one_malloc_arena() {
    // SAFETY: called first thing in `main`, before any thread exists; M_ARENA_MAX only limits
    // how many arenas glibc creates later, and a refusal (return 0) changes nothing.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
