//! A progress bar on stderr for long relabels (directory shares), shown only on a terminal and
//! only for trees large enough to take a moment; quiet otherwise.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressStyle};
use svirt_core::engine::ProgressFn;

/// Trees smaller than this are relabeled without a bar.
const MIN_ITEMS: u64 = 2000;

/// A progress callback drawing a bar, when stderr is a terminal.
pub fn terminal_bar() -> Option<ProgressFn> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar: Arc<Mutex<Option<ProgressBar>>> = Arc::new(Mutex::new(None));
    Some(Arc::new(move |done: u64, total: u64| {
        if total < MIN_ITEMS {
            return;
        }
        let mut slot = bar.lock().unwrap_or_else(|p| p.into_inner());
        let b = slot.get_or_insert_with(|| {
            let b = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("relabeling {bar:40} {pos}/{len} files ({eta})")
            {
                b.set_style(style);
            }
            b
        });
        b.set_position(done);
        if done >= total {
            b.finish_and_clear();
            *slot = None;
        }
    }))
}
