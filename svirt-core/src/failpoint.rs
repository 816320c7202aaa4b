//! Crash injection for tests (feature `failpoints`): with `SVIRT_FAILPOINT="point:count"`, the
//! count-th pass through `point` kills the process with SIGKILL, as a crash would. Without the
//! feature, [`hit`] is an empty inline function.

/// Every point the code passes through, for tests that cover them all.
pub const POINTS: &[&str] = &[
    "relabel.journaled",
    "relabel.applied",
    "restore.released",
    "restore.put-back",
    "state.labels-generated",
    "state.record-written",
    "dac.owner-changed",
    "hold.held",
];

/// Pass through a named point.
#[cfg(feature = "failpoints")]
pub fn hit(point: &str) {
    use std::sync::Mutex;
    static COUNTS: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    let Ok(spec) = std::env::var("SVIRT_FAILPOINT") else {
        return;
    };
    let Some((name, count)) = spec.split_once(':') else {
        return;
    };
    if name != point {
        return;
    }
    let want: u32 = count.parse().unwrap_or(1);
    let mut g = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let n = match g.iter_mut().find(|(p, _)| p == point) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            g.push((point.to_owned(), 1));
            1
        }
    };
    if n == want {
        tracing::error!(point, "failpoint: killing svirt");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Pass through a named point (no-op without the `failpoints` feature).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_point: &str) {}
