//! The live progress display of `burner init`: one line per job on stderr, redrawn four
//! times a second (objects created of expected, rate, pods Ready, errors, what the job is
//! doing). Log lines go through [`LogWriter`], which prints them above the lines without
//! tearing them. Nothing is drawn when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::{JobProgress, Phase, RunProgress};

const REDRAW: Duration = Duration::from_millis(250);

/// The display being drawn, for log lines to print above.
static ACTIVE: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// The running display; [`Display::finish`] removes it.
pub struct Display {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts drawing `progress` on stderr, unless stderr is not a terminal.
pub fn start(progress: Arc<RunProgress>) -> Option<Display> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    *ACTIVE.lock().expect("no panic while holding the lock") = Some(bars.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut shown: Vec<(Arc<JobProgress>, ProgressBar)> = Vec::new();
        while !stopping.load(Ordering::Relaxed) {
            for job in progress.jobs().into_iter().skip(shown.len()) {
                let bar = bars.add(new_bar(&job));
                shown.push((job, bar));
            }
            for (job, bar) in &shown {
                update(job, bar);
            }
            std::thread::sleep(REDRAW);
        }
        for (job, bar) in &shown {
            update(job, bar);
            bar.finish();
        }
        let _ = bars.clear();
    });
    Some(Display { stop, thread })
}

impl Display {
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        *ACTIVE.lock().expect("no panic while holding the lock") = None;
    }
}

fn new_bar(job: &JobProgress) -> ProgressBar {
    let (bar, template) = if job.expected > 0 {
        (
            ProgressBar::new(job.expected),
            "{prefix:.bold} [{bar:30}] {pos}/{len} {msg}",
        )
    } else {
        (ProgressBar::new_spinner(), "{prefix:.bold} {spinner} {msg}")
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{:<24}", job.name));
    bar
}

fn update(job: &JobProgress, bar: &ProgressBar) {
    let created = job.created();
    bar.set_position(created);
    let mut message = String::new();
    if job.expected > 0 {
        message.push_str(&format!("{:.1}/s", job.rate()));
    }
    if job.pods_ready() > 0 {
        message.push_str(&format!("  {} pods ready", job.pods_ready()));
    }
    if job.errors() > 0 {
        message.push_str(&format!("  {} errors", job.errors()));
    }
    message.push_str(&format!("  {}", job.phase().as_str()));
    bar.set_message(message);
    if job.phase() != Phase::Done {
        bar.tick();
    }
}

/// stderr for log lines: while the display is drawn, each line is printed above it.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let active = ACTIVE
            .lock()
            .expect("no panic while holding the lock")
            .clone();
        match active {
            Some(bars) => bars.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
