//! Live numbers of a running run, for a progress display: per job, what it created so
//! far of what it will, its errors, its pods seen Ready, and what it is doing now.
//!
//! The job engine and the measurement stage update them with relaxed atomics; a display
//! reads them whenever it likes. Nothing here waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A job's counters, as the job engine keeps them.
#[derive(Debug, Default)]
pub struct Counters {
    pub created: AtomicU64,
    pub errors: AtomicU64,
    pub retries: AtomicU64,
}

/// What a job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Preparing,
    Creating,
    Acting,
    Waiting,
    Churning,
    Verifying,
    CleaningUp,
    Pausing,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Preparing => "preparing",
            Phase::Creating => "creating",
            Phase::Acting => "acting",
            Phase::Waiting => "waiting for readiness",
            Phase::Churning => "churning",
            Phase::Verifying => "verifying",
            Phase::CleaningUp => "garbage collection",
            Phase::Pausing => "pausing",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug)]
pub struct JobProgress {
    pub name: String,
    /// Objects the job will create or act on.
    pub expected: u64,
    pub counters: Counters,
    /// The job's pods the watch has seen Ready (with `podLatency`).
    pub pods_ready: AtomicU64,
    started: Instant,
    /// The phase, and how long creating took once it is over.
    phase: Mutex<(Phase, Option<Duration>)>,
}

impl JobProgress {
    pub fn set_phase(&self, phase: Phase) {
        let mut current = self.phase.lock().expect("no panic while holding the lock");
        let creating_took = match current.0 {
            Phase::Creating if phase != Phase::Creating => Some(self.started.elapsed()),
            _ => current.1,
        };
        *current = (phase, creating_took);
    }

    pub fn phase(&self) -> Phase {
        self.phase
            .lock()
            .expect("no panic while holding the lock")
            .0
    }

    /// Objects created per second, over the time creating took (so far).
    pub fn rate(&self) -> f64 {
        let (_, creating_took) = *self.phase.lock().expect("no panic while holding the lock");
        let seconds = creating_took
            .unwrap_or_else(|| self.started.elapsed())
            .as_secs_f64();
        self.created() as f64 / seconds.max(1e-3)
    }

    pub fn created(&self) -> u64 {
        self.counters.created.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.counters.errors.load(Ordering::Relaxed)
    }

    pub fn pods_ready(&self) -> u64 {
        self.pods_ready.load(Ordering::Relaxed)
    }
}

/// The jobs of a run, in the order they started.
#[derive(Debug, Default)]
pub struct RunProgress {
    jobs: Mutex<Vec<Arc<JobProgress>>>,
}

impl RunProgress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A job starts now.
    pub fn start_job(&self, name: &str, expected: u64) -> Arc<JobProgress> {
        let job = Arc::new(JobProgress {
            name: name.to_string(),
            expected,
            counters: Counters::default(),
            pods_ready: AtomicU64::new(0),
            started: Instant::now(),
            phase: Mutex::new((Phase::Preparing, None)),
        });
        self.jobs
            .lock()
            .expect("no panic while holding the lock")
            .push(job.clone());
        job
    }

    /// The job of that name that started last.
    pub fn job(&self, name: &str) -> Option<Arc<JobProgress>> {
        let jobs = self.jobs.lock().expect("no panic while holding the lock");
        jobs.iter().rev().find(|j| j.name == name).cloned()
    }

    pub fn jobs(&self) -> Vec<Arc<JobProgress>> {
        self.jobs
            .lock()
            .expect("no panic while holding the lock")
            .clone()
    }
}
