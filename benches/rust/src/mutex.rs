//! Mutexes from Rust: weft's through the C ABI vs parking_lot::Mutex and
//! std::sync::Mutex. Same shapes as the C binary (benches/c/mutex.c). The contended
//! kind also times parking_lot's own lock called through out-of-line `extern "C"`
//! functions, as weft's is: what the call alone costs a lock in the machine's current
//! mode (docs/performance.md, "The ceiling of a lock that is called; another host
//! CPU").
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::time::{Duration, Instant};

use parking_lot::lock_api::RawMutex as _;

use crate::weft::{self, check, RawWeftMutex};
use crate::{rt, Kind, Params, Sample};

/// The lock types under test, all used the same way: lock, run the critical section,
/// unlock.
trait BenchLock: Sync + Send {
    fn fresh() -> Self;
    /// Called once the lock is at its final address.
    fn setup(&self) {}
    fn teardown(&self) {}
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R;
}

struct Weft(RawWeftMutex);
struct ParkingLot(parking_lot::RawMutex);
struct Std(std::sync::Mutex<()>);
struct ParkingLotCall(parking_lot::RawMutex);

impl BenchLock for Weft {
    fn fresh() -> Self {
        Weft(RawWeftMutex::zeroed())
    }
    fn setup(&self) {
        // SAFETY: the mutex stays at this address until teardown.
        check("weft_mutex_init", unsafe { weft::weft_mutex_init(rt(), self.0.ptr(), 0) });
    }
    fn teardown(&self) {
        // SAFETY: initialised by setup, unlocked.
        check("weft_mutex_destroy", unsafe { weft::weft_mutex_destroy(self.0.ptr()) });
    }
    #[inline(always)]
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: initialised by setup.
        check("weft_mutex_lock", unsafe { weft::weft_mutex_lock(self.0.ptr()) });
        let r = f();
        // SAFETY: locked above by this thread.
        check("weft_mutex_unlock", unsafe { weft::weft_mutex_unlock(self.0.ptr()) });
        r
    }
}

impl BenchLock for ParkingLot {
    fn fresh() -> Self {
        ParkingLot(parking_lot::RawMutex::INIT)
    }
    #[inline(always)]
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.lock();
        let r = f();
        // SAFETY: locked above by this thread.
        unsafe { self.0.unlock() };
        r
    }
}

/// parking_lot's lock and unlock behind a call each, as a C host calls a library's
/// mutex: the same code as `ParkingLot`, not inlined into the loop.
#[inline(never)]
extern "C" fn parking_lot_lock(m: &parking_lot::RawMutex) -> i32 {
    m.lock();
    0
}

#[inline(never)]
extern "C" fn parking_lot_unlock(m: &parking_lot::RawMutex) -> i32 {
    // SAFETY: the caller locked it with parking_lot_lock.
    unsafe { m.unlock() };
    0
}

impl BenchLock for ParkingLotCall {
    fn fresh() -> Self {
        ParkingLotCall(parking_lot::RawMutex::INIT)
    }
    #[inline(always)]
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
        check("parking_lot_lock", parking_lot_lock(black_box(&self.0)));
        let r = f();
        check("parking_lot_unlock", parking_lot_unlock(black_box(&self.0)));
        r
    }
}

impl BenchLock for Std {
    fn fresh() -> Self {
        Std(std::sync::Mutex::new(()))
    }
    #[inline(always)]
    fn critical<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.0.lock().unwrap();
        f()
    }
}

// ---- uncontended: one thread, a free mutex, lock then unlock, n times ----------------

fn uncontended<L: BenchLock>(p: &Params) -> Sample {
    let lock = Box::new(Line(L::fresh()));
    lock.0.setup();
    let l = black_box(&lock.0);
    let t0 = Instant::now();
    for _ in 0..p.n {
        l.critical(|| ());
    }
    let ns = t0.elapsed().as_nanos() as f64;
    lock.0.teardown();
    Sample { value: ns / p.n as f64, extra: 0.0 }
}

// ---- contended: T threads, L locks, for a fixed time (see benches/c/mutex.c) ------------

/// 128 bytes: a pair of cache lines, which the CPU's adjacent-line prefetch fetches
/// together (see benches/c/mutex.c).
#[repr(align(128))]
struct Line<T>(T);

struct Slot<L> {
    lock: Line<L>,
    count: Line<UnsafeCell<u64>>,
}

// SAFETY: `count` is only touched under `lock`.
unsafe impl<L: Sync> Sync for Slot<L> {}

fn contended<L: BenchLock>(p: &Params) -> Sample {
    assert!(p.locks.is_power_of_two() && p.locks <= 64, "locks: a power of two <= 64");
    let slots: Vec<Slot<L>> =
        (0..p.locks).map(|_| Slot { lock: Line(L::fresh()), count: Line(UnsafeCell::new(0)) }).collect();
    for s in &slots {
        s.lock.0.setup();
    }
    let mask = p.locks - 1;
    let ready = AtomicUsize::new(0);
    let start = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (ops, elapsed) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..p.threads)
            .map(|t| {
                let (slots, ready, start, stop) = (&slots, &ready, &start, &stop);
                scope.spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(t as u64 + 1);
                    let mut ops = 0u64;
                    ready.fetch_add(1, Release);
                    while !start.load(Acquire) {
                        std::hint::spin_loop();
                    }
                    while !stop.load(Relaxed) {
                        let k = if mask == 0 {
                            0
                        } else {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            (seed >> 20) as usize & mask
                        };
                        let slot = &slots[k];
                        // SAFETY: the counter is only touched under its lock.
                        slot.lock.0.critical(|| unsafe { *slot.count.0.get() += 1 });
                        ops += 1;
                    }
                    ops
                })
            })
            .collect();
        while ready.load(Acquire) < p.threads {
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        start.store(true, Release);
        std::thread::sleep(Duration::from_millis(p.ms));
        stop.store(true, Relaxed);
        let elapsed = t0.elapsed();
        (handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<u64>>(), elapsed)
    });
    let total: u64 = ops.iter().sum();
    let counted: u64 = slots.iter().map(|s| unsafe { *s.count.0.get() }).sum();
    assert_eq!(counted, total, "contended: counters do not add up");
    for s in &slots {
        s.lock.0.teardown();
    }
    let (lo, hi) = (*ops.iter().min().unwrap(), *ops.iter().max().unwrap());
    let mean = total as f64 / p.threads as f64;
    Sample {
        value: total as f64 / elapsed.as_secs_f64(),
        extra: if mean > 0.0 { 100.0 * (hi - lo) as f64 / mean } else { 0.0 },
    }
}

pub fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "mutex_uncontended",
            unit: "ns per lock+unlock pair (one thread, free mutex)",
            better: "lower",
            extra_unit: None,
            variants: vec![
                ("weft", uncontended::<Weft>),
                ("parking_lot", uncontended::<ParkingLot>),
                ("std", uncontended::<Std>),
            ],
        },
        Kind {
            name: "mutex_contended",
            unit: "lock+unlock pairs per second, all threads together",
            better: "higher",
            extra_unit: Some("fairness spread: (max - min) / mean ops per thread, %"),
            variants: vec![
                ("weft", contended::<Weft>),
                ("parking_lot", contended::<ParkingLot>),
                ("parking_lot_call", contended::<ParkingLotCall>),
                ("std", contended::<Std>),
            ],
        },
    ]
}
