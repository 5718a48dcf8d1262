//! The planted bugs of `tests/sim/*.c`, in Rust against shuttle 0.9: for each bug and
//! strategy (random, PCT depth 3), one exploration of up to 1000 schedules (seed 1),
//! and the number of schedules and the wall time to the first failure, printed as a
//! Markdown table.
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use shuttle::scheduler::{PctScheduler, RandomScheduler, Scheduler};
use shuttle::sync::atomic::{AtomicBool, Ordering::SeqCst};
use shuttle::sync::{mpsc, Arc, Condvar, Mutex};
use shuttle::{thread, Config, Runner};

fn lost_update() {
    let counter = Arc::new(Mutex::new(0i64));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let counter = Arc::clone(&counter);
            thread::spawn(move || {
                for _ in 0..3 {
                    let seen = *counter.lock().unwrap();
                    *counter.lock().unwrap() = seen + 1;
                }
            })
        })
        .collect();
    tasks.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(*counter.lock().unwrap(), 6, "lost update");
}

fn lock_order() {
    let a = Arc::new(Mutex::new(()));
    let b = Arc::new(Mutex::new(()));
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    let t1 = thread::spawn(move || {
        let _a = a2.lock().unwrap();
        let _b = b2.lock().unwrap();
    });
    let t2 = thread::spawn(move || {
        let _b = b.lock().unwrap();
        let _a = a.lock().unwrap();
    });
    t1.join().unwrap();
    t2.join().unwrap();
}

fn lost_wakeup() {
    let state = Arc::new((Mutex::new(()), Condvar::new(), AtomicBool::new(false)));
    let s = Arc::clone(&state);
    let consumer = thread::spawn(move || {
        let mut g = s.0.lock().unwrap();
        while !s.2.load(SeqCst) {
            g = s.1.wait(g).unwrap();
        }
    });
    let s = Arc::clone(&state);
    let producer = thread::spawn(move || {
        s.2.store(true, SeqCst); // not under the mutex
        s.1.notify_one();
    });
    consumer.join().unwrap();
    producer.join().unwrap();
}

fn if_not_while() {
    let state = Arc::new((Mutex::new(0i32), Condvar::new()));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let s = Arc::clone(&state);
            thread::spawn(move || {
                let mut items = s.0.lock().unwrap();
                if *items == 0 {
                    items = s.1.wait(items).unwrap();
                }
                *items -= 1;
                assert!(*items >= 0, "took an item that was not there");
            })
        })
        .collect();
    for _ in 0..2 {
        *state.0.lock().unwrap() += 1;
        state.1.notify_all();
    }
    consumers.into_iter().for_each(|t| t.join().unwrap());
}

fn chan_close_race() {
    let (tx, rx) = mpsc::sync_channel::<i64>(4);
    let producers: Vec<_> = (1..=2)
        .map(|v| {
            let tx = tx.clone();
            thread::spawn(move || tx.send(v).expect("send failed: channel closed"))
        })
        .collect();
    drop(tx);
    rx.recv().unwrap();
    drop(rx); // closes the channel: the other producer may not have sent yet
    producers.into_iter().for_each(|t| t.join().unwrap());
}

fn double_receive() {
    let queue = Arc::new(Mutex::new(VecDeque::from([7i64])));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let q = Arc::clone(&queue);
            thread::spawn(move || {
                let seen = !q.lock().unwrap().is_empty();
                if seen {
                    q.lock().unwrap().pop_front().expect("the element we saw was gone");
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|t| t.join().unwrap());
}

fn unjoined_shutdown() {
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    thread::spawn(move || {
        for _ in 0..3 {
            thread::yield_now();
        }
        d.store(true, SeqCst);
    });
    thread::yield_now();
    assert!(done.load(SeqCst), "shutdown raced the detached worker");
}

static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many schedules of one exploration of up to 1000 (one scheduler, as shuttle is
/// meant to be used: its PCT learns a run's length from the schedules before) run until
/// the first failure, and the time taken.
fn first_failure(test: fn(), scheduler: impl Scheduler + 'static) -> (Option<u64>, f64) {
    let start = Instant::now();
    RUNS.store(0, std::sync::atomic::Ordering::SeqCst);
    let runner = Runner::new(scheduler, Config::new());
    let counted = move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        test()
    };
    let failed = catch_unwind(AssertUnwindSafe(|| runner.run(counted))).is_err();
    let runs = RUNS.load(std::sync::atomic::Ordering::SeqCst);
    (failed.then_some(runs), start.elapsed().as_secs_f64())
}

fn main() {
    std::panic::set_hook(Box::new(|_| {}));
    let bugs: [(&str, fn()); 7] = [
        ("lost_update", lost_update),
        ("lock_order", lock_order),
        ("lost_wakeup", lost_wakeup),
        ("if_not_while", if_not_while),
        ("chan_close_race", chan_close_race),
        ("double_receive", double_receive),
        ("unjoined_shutdown", unjoined_shutdown),
    ];
    println!("| bug | shuttle random: schedules | time | shuttle pct: schedules | time |");
    println!("|---|---|---|---|---|");
    let show = |(seed, secs): (Option<u64>, f64)| match seed {
        Some(s) => (s.to_string(), format!("{secs:.3} s")),
        None => ("not found in 1000".to_string(), format!("{secs:.3} s")),
    };
    for (name, test) in bugs {
        let random = show(first_failure(test, RandomScheduler::new_from_seed(1, 1000)));
        let pct = show(first_failure(test, PctScheduler::new_from_seed(1, 3, 1000)));
        println!("| {name} | {} | {} | {} | {} |", random.0, random.1, pct.0, pct.1);
    }
}
