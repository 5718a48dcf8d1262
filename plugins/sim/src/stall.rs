//! The stall watchdog. One task runs at a time on sim, and it gives the CPU up only
//! at a switch point (a weft call). A task that waits for another in a loop without a
//! weft call (`while (!flag) {}`), which works on OS threads, spins for ever here, and
//! so would the process, silently. A thread beside the scheduler watches the step
//! counter: when it has not moved for `$WEFT_SIM_STALL_MS` of real time (default 5 s,
//! 0: never) while other tasks could run, it prints what ran, the seed and the replay
//! line, and exits with status 88. The scheduler's own waits for IO do not count.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit status of a stall.
pub(crate) const EXIT_STALL: i32 = 88;

/// Default `$WEFT_SIM_STALL_MS`: under `weft-sim explore`'s default timeout (10 s).
pub(crate) const DEFAULT_STALL_MS: u64 = 5000;

/// What the scheduler publishes at each step, for the watchdog's thread.
pub(crate) struct Published {
    step: AtomicU64,
    task_id: AtomicU64,
    /// Another task is runnable, or waits for a deadline or an fd: it could run if the
    /// running one reached a switch point.
    others_wait: AtomicBool,
    /// The scheduler waits in `poll` for the fds tasks wait on: no task runs.
    polling: AtomicBool,
    /// The running task's name, set when another task starts running.
    name: Mutex<String>,
    stop: Mutex<bool>,
    stopped: Condvar,
}

impl Published {
    /// At the end of a step: `id` runs next, named `name` (called only when it changed).
    pub(crate) fn step(&self, step: u64, id: u64, name: Option<&str>, others_wait: bool) {
        if let Some(name) = name {
            let mut held = self.name.lock().unwrap_or_else(|e| e.into_inner());
            held.clear();
            held.push_str(name);
        }
        self.task_id.store(id, Relaxed);
        self.others_wait.store(others_wait, Relaxed);
        self.step.store(step, Relaxed);
    }

    pub(crate) fn polling(&self, on: bool) {
        self.polling.store(on, Relaxed);
    }
}

/// The watchdog's thread; stopped and joined when dropped.
pub(crate) struct Watchdog {
    published: Arc<Published>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching, unless `$WEFT_SIM_STALL_MS` is 0 (or the thread cannot start:
    /// then the run is only unwatched). `replay` is the report's last line.
    pub(crate) fn start(stall_ms: u64, seed: u64, replay: String) -> Option<Watchdog> {
        if stall_ms == 0 {
            return None;
        }
        let published = Arc::new(Published {
            step: AtomicU64::new(0),
            task_id: AtomicU64::new(0),
            others_wait: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            name: Mutex::new("main".into()),
            stop: Mutex::new(false),
            stopped: Condvar::new(),
        });
        let watched = published.clone();
        // The host's signal handlers never run there, beside the one running task.
        let thread = weft_platform::os_thread::with_signals_blocked(|| {
            std::thread::Builder::new()
                .name("weft-sim-stall".into())
                .spawn(move || watch(&watched, Duration::from_millis(stall_ms), seed, &replay))
        })
        .ok()?;
        Some(Watchdog { published, thread: Some(thread) })
    }

    pub(crate) fn published(&self) -> &Published {
        &self.published
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.published.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.published.stopped.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn watch(p: &Published, limit: Duration, seed: u64, replay: &str) {
    let tick = (limit / 8).clamp(Duration::from_millis(1), Duration::from_millis(250));
    let mut seen = p.step.load(Relaxed);
    let mut since = Instant::now();
    let mut stop = p.stop.lock().unwrap_or_else(|e| e.into_inner());
    while !*stop {
        stop = p.stopped.wait_timeout(stop, tick).unwrap_or_else(|e| e.into_inner()).0;
        let step = p.step.load(Relaxed);
        if step != seen || p.polling.load(Relaxed) || !p.others_wait.load(Relaxed) {
            seen = step;
            since = Instant::now();
            continue;
        }
        if since.elapsed() >= limit && !*stop {
            let name = p.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let report = format!(
                "weft sim: stall: task {} \"{name}\" ran {} ms of real time without a switch point while other \
                 tasks waited to run: it spins without calling weft, or blocks in a system call (one task runs at \
                 a time on sim: a loop that waits for another task must call weft, weft_yield for one, and a wait \
                 for an fd must be weft_fd_wait on a non-blocking fd; $WEFT_SIM_STALL_MS sets the limit, 0 turns \
                 it off)\nweft sim: seed {seed}, step {step}; {replay}\n",
                p.task_id.load(Relaxed),
                since.elapsed().as_millis(),
            );
            crate::exit::report_and_exit(&report, EXIT_STALL)
        }
    }
}
