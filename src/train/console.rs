//! The terminal face of `memtrain train`: a progress line (step, phase, loss or reward, ETA) on
//! stderr, and Ctrl-C that asks the loop to checkpoint and stop (a second Ctrl-C quits at once).

use super::trainer::TrainEvent;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Sets the returned flag on the first SIGINT; exits with status 130 on the second.
pub fn install_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // SAFETY: the handler only touches an atomic and calls `_exit`, both async-signal-safe.
    let registered = unsafe {
        signal_hook_registry::register(libc::SIGINT, move || {
            if f.swap(true, Ordering::SeqCst) {
                libc::_exit(130);
            }
        })
    };
    if let Err(e) = registered {
        eprintln!("note: Ctrl-C will not checkpoint ({e})");
    }
    flag
}

pub struct Progress {
    start: Instant,
    first_step: Option<usize>,
    tty: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { start: Instant::now(), first_step: None, tty: std::io::stderr().is_terminal() }
    }
}

fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    if s >= 3600 { format!("{}h{:02}m", s / 3600, s / 60 % 60) } else { format!("{}m{:02}s", s / 60, s % 60) }
}

impl Progress {
    pub fn on_event(&mut self, event: TrainEvent) {
        let mut err = std::io::stderr();
        match event {
            TrainEvent::Step { record, total, lr } => {
                let step = record.step as usize + 1;
                let first = *self.first_step.get_or_insert(step - 1);
                let per_step = self.start.elapsed().as_secs_f64() / (step - first).max(1) as f64;
                let what = match record.phase.as_deref() {
                    Some("grpo") => format!("reward {:.3} EM {:.2} recall {}", record.reward_blended.unwrap_or(record.reward_end_to_end).mean, record.exact_match, record.recall.map_or("-".into(), |r| format!("{r:.2}"))),
                    _ => format!("loss {}", record.loss.map_or("-".into(), |l| format!("{l:.4}"))),
                };
                let skipped = record.skipped.as_deref().map(|s| format!(" (skipped: {s})")).unwrap_or_default();
                let line = format!("step {step}/{total} [{}] {what} lr {lr:.2e} | {per_step:.1} s/step ETA {}{skipped}", record.phase.as_deref().unwrap_or("?"), clock(per_step * (total - step) as f64));
                // On a terminal the line rewrites itself; in a log every step is kept.
                let _ = if self.tty { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
            }
            TrainEvent::Evaluated(e) => {
                let _ = writeln!(err, "{}held-out at step {}: {}", if self.tty { "\n" } else { "" }, e.step, e.summary_line());
            }
            TrainEvent::Checkpoint { step, path } => {
                if !self.tty {
                    let _ = writeln!(err, "checkpoint at step {step}: {}", path.display());
                }
            }
        }
    }
}
