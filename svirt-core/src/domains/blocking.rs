//! Where an operation's blocking work runs, and how that work waits for the driver stack's
//! futures.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use tokio::runtime::Handle;

use crate::error::{Error, Result};

/// Where [`Domains`](super::Domains) runs an operation's blocking work: file changes, fsyncs,
/// database transactions and `/proc` scans.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Blocking {
    /// On tokio's blocking pool: the caller's executor stays free while an operation runs. The
    /// default, and the only right choice for a caller whose executor runs anything else.
    #[default]
    Pool,
    /// On the calling task's thread: each call blocks the caller's executor until the operation
    /// ends. For a process whose executor has nothing else to run while it waits (the `svirt`
    /// command runs one operation per process): a blocking-pool thread cost it about a quarter
    /// of a millisecond per call, its creation and the wakeups across CPUs
    /// (docs/performance.md). The driver stack's futures are then polled on that thread too,
    /// so a driver whose future waits on the runtime's I/O or timers cannot be used inline
    /// (none of the drivers here does).
    Inline,
}

impl Blocking {
    /// Run `f` as this policy says, from async code.
    pub(super) async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce(&Waiter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        match self {
            Blocking::Inline => f(&Waiter::Parked),
            Blocking::Pool => {
                let waiter = Waiter::Runtime(Handle::current());
                tokio::task::spawn_blocking(move || f(&waiter))
                    .await
                    .map_err(|e| Error::TaskFailed {
                        reason: e.to_string(),
                    })?
            }
        }
    }
}

/// How blocking work waits for a future of the driver stack.
pub(super) enum Waiter {
    /// From a blocking-pool thread: through the runtime, which keeps driving its I/O and
    /// timers on its own thread meanwhile.
    Runtime(Handle),
    /// On the calling task's thread ([`Blocking::Inline`]): polled here, the thread parked
    /// between polls.
    Parked,
}

impl Waiter {
    /// Wait for `f`'s output.
    pub(super) fn block_on<F: Future>(&self, f: F) -> F::Output {
        match self {
            Waiter::Runtime(rt) => rt.block_on(f),
            Waiter::Parked => park_on(f),
        }
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Poll `f` on this thread until it is ready, parking between polls (a spurious unpark only
/// costs one more poll).
fn park_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_wait_returns_a_ready_futures_output() {
        assert_eq!(Waiter::Parked.block_on(async { 41 + 1 }), 42);
    }

    #[test]
    fn a_parked_wait_sleeps_until_another_thread_wakes_it() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(20));
            tx.send(7).ok();
        });
        let got = Waiter::Parked.block_on(rx);
        sender.join().ok();
        assert_eq!(got.ok(), Some(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn inline_work_runs_on_the_calling_thread_and_pool_work_does_not() {
        let me = thread::current().id();
        let inline = Blocking::Inline
            .run(|_| Ok(thread::current().id()))
            .await
            .ok();
        let pooled = Blocking::Pool
            .run(|_| Ok(thread::current().id()))
            .await
            .ok();
        assert_eq!(inline, Some(me));
        assert!(pooled.is_some() && pooled != Some(me));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_inline_operation_waits_for_a_driver_future_that_uses_the_blocking_pool() {
        let got = Blocking::Inline
            .run(|w| Ok(w.block_on(async { tokio::task::spawn_blocking(|| 5).await.unwrap_or(0) })))
            .await
            .ok();
        assert_eq!(got, Some(5));
    }
}
