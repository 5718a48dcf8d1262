//! Channel stress aimed at the boundary between the lock-free fast path and the waiting
//! path of buffered channels: many producers and consumers on tiny capacities, random
//! deadlines (try, short, forever), closes in mid-flight, selects mixing buffered and
//! rendezvous channels, cancellation of blocked tasks, and `elem_drop` on what is left.
//! Every test checks exact accounting (each message received once, or kept by its
//! sender, or dropped once) and per-producer order, never timing.
mod common;

use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;

use common::{close, last_error, open, Rt, SendPtr};
use weft::*;

/// Aborts the test process if the test has not finished after `seconds` (a generous
/// bound: a lost wake-up would otherwise hang `cargo test`).
fn watchdog(name: &'static str, seconds: u64) -> Arc<AtomicU8> {
    let done = Arc::new(AtomicU8::new(0));
    let flag = done.clone();
    std::thread::spawn(move || {
        for _ in 0..seconds * 10 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if flag.load(SeqCst) != 0 {
                return;
            }
        }
        eprintln!("{name}: still running after {seconds} s: a lost wake-up?");
        std::process::abort();
    });
    done
}

/// A channel handle shared by the threads of one test (weft channels are thread-safe).
#[derive(Clone, Copy)]
struct Ch(*mut weft_chan_t);
// SAFETY: every weft channel call may be made from any thread.
unsafe impl Send for Ch {}
unsafe impl Sync for Ch {}

const CAPACITIES: [usize; 5] = [1, 2, 3, 8, WEFT_CHAN_UNBOUNDED];

/// The 16-byte element: which producer sent it, and its sequence number there.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct Msg {
    producer: u64,
    seq: u64,
}

fn new_chan(rt: Rt, elem_size: usize, capacity: usize, opts: Option<&weft_chan_opts_t>) -> Ch {
    let mut ch = ptr::null_mut();
    let opts = opts.map_or(ptr::null(), |o| o as *const weft_chan_opts_t);
    // SAFETY: a live runtime; `ch` is a valid out-pointer.
    let status = unsafe { weft_chan_new(rt.0, elem_size, capacity, opts, &mut ch) };
    assert_eq!(status, WEFT_OK, "weft_chan_new: {}", last_error());
    Ch(ch)
}

/// xorshift64: a cheap per-thread random stream, seeded for reproducible mixes.
struct Rng(u64, bool);

impl Rng {
    /// Odd rounds wait forever on every call: there a lost wake-up cannot be rescued
    /// by another caller's retry, and hangs the test (see `watchdog`).
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, false)
    }
    fn for_round(round: usize, seed: u64) -> Rng {
        Rng(Rng::new(round as u64 * 1000 + seed).0, round % 2 == 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Now and then a producer pauses, so that consumers run dry and park: the send
    /// after the pause must wake one of them by itself.
    fn maybe_pause(&mut self) {
        if self.below(200) == 0 {
            std::thread::sleep(std::time::Duration::from_micros(100 + self.below(200)));
        }
    }
    /// A deadline: a quarter "try" (already past), a quarter within 20 us, else forever.
    fn deadline(&mut self, rt: Rt) -> i64 {
        if self.1 {
            return WEFT_FOREVER;
        }
        match self.below(4) {
            0 => 0,
            // SAFETY: a live runtime.
            1 => (unsafe { weft_now(rt.0) }) + self.below(20_000) as i64,
            _ => WEFT_FOREVER,
        }
    }
}

/// One flag per message a test may send: set once on receipt.
struct Ledger {
    per_producer: u64,
    seen: Vec<AtomicU8>,
}

impl Ledger {
    fn new(producers: u64, per_producer: u64) -> Ledger {
        Ledger { per_producer, seen: (0..producers * per_producer).map(|_| AtomicU8::new(0)).collect() }
    }
    fn receive(&self, m: Msg) {
        assert!(m.seq < self.per_producer, "a message that was never sent: {m:?}");
        let before = self.seen[(m.producer * self.per_producer + m.seq) as usize].fetch_add(1, SeqCst);
        assert_eq!(before, 0, "message {m:?} received twice");
    }
    /// Producer `p` completed exactly its first `sent` sends: those, and nothing else,
    /// were received.
    fn check(&self, p: u64, sent: u64) {
        for seq in 0..self.per_producer {
            let seen = self.seen[(p * self.per_producer + seq) as usize].load(SeqCst);
            assert_eq!(
                seen,
                (seq < sent) as u8,
                "producer {p}, message {seq}: sent {}, received {seen} times",
                seq < sent
            );
        }
    }
}

/// Per-consumer FIFO check: each producer's sequence numbers arrive increasing.
struct Order(Vec<Option<u64>>);

impl Order {
    fn new(producers: u64) -> Order {
        Order(vec![None; producers as usize])
    }
    fn see(&mut self, m: Msg) {
        let last = &mut self.0[m.producer as usize];
        assert!(last.is_none_or(|l| l < m.seq), "producer {} out of order: {} after {:?}", m.producer, m.seq, last);
        *last = Some(m.seq);
    }
}

/// Sends until accepted or closed, with random deadlines; returns false once closed.
fn send_retrying(rt: Rt, ch: Ch, m: &Msg, rng: &mut Rng) -> bool {
    rng.maybe_pause();
    loop {
        // SAFETY: a live channel; `m` is 16 bytes.
        match unsafe { weft_chan_send(ch.0, m as *const Msg as *const c_void, rng.deadline(rt)) } {
            WEFT_OK => return true,
            WEFT_ECLOSED => return false,
            WEFT_ETIMEDOUT => std::thread::yield_now(),
            other => panic!("weft_chan_send: {other}: {}", last_error()),
        }
    }
}

/// Receives until a message comes or the channel is closed and empty.
fn recv_retrying(rt: Rt, ch: Ch, rng: &mut Rng) -> Option<Msg> {
    let mut m = Msg::default();
    loop {
        // SAFETY: a live channel; `m` is 16 bytes.
        match unsafe { weft_chan_recv(ch.0, &mut m as *mut Msg as *mut c_void, rng.deadline(rt)) } {
            WEFT_OK => return Some(m),
            WEFT_ECLOSED => return None,
            WEFT_ETIMEDOUT => std::thread::yield_now(),
            other => panic!("weft_chan_recv: {other}: {}", last_error()),
        }
    }
}

/// 4 producers x 4 consumers on every small capacity, random deadlines on both sides,
/// the channel closed once the consumers have taken a random share: each message sent
/// is received exactly once and in order per producer, none that failed is.
#[test]
fn exact_accounting_with_deadlines_and_close() {
    let done = watchdog("exact_accounting_with_deadlines_and_close", 120);
    let rt = open();
    const P: u64 = 4;
    const C: usize = 4;
    const PER: u64 = 3000;
    for (round, &capacity) in CAPACITIES.iter().chain(&CAPACITIES).enumerate() {
        let ch = new_chan(rt, std::mem::size_of::<Msg>(), capacity, None);
        let ledger = Arc::new(Ledger::new(P, PER));
        let received = Arc::new(AtomicU64::new(0));
        // Close after a random share (sometimes never, before every send is in).
        let close_at = [P * PER / 3, P * PER + 1, P * PER * 9 / 10, P * PER + 1][round % 4];
        let producers: Vec<_> = (0..P)
            .map(|p| {
                std::thread::spawn(move || {
                    let mut rng = Rng::for_round(round, p);
                    let mut sent = 0;
                    while sent < PER && send_retrying(rt, ch, &Msg { producer: p, seq: sent }, &mut rng) {
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        let consumers: Vec<_> = (0..C)
            .map(|c| {
                let (ledger, received) = (ledger.clone(), received.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::for_round(round, 50 + c as u64);
                    let mut order = Order::new(P);
                    while let Some(m) = recv_retrying(rt, ch, &mut rng) {
                        order.see(m);
                        ledger.receive(m);
                        if received.fetch_add(1, SeqCst) + 1 == close_at {
                            // SAFETY: a live channel.
                            assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
                        }
                    }
                })
            })
            .collect();
        let sent: Vec<u64> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        if close_at > P * PER {
            // Closed only once everything is received, so that the consumers must be
            // woken by the sends themselves, not rescued by the close.
            while received.load(SeqCst) < P * PER {
                std::thread::yield_now();
            }
            // SAFETY: a live channel; every producer is done.
            assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
        }
        consumers.into_iter().for_each(|t| t.join().unwrap());
        for (p, &n) in sent.iter().enumerate() {
            ledger.check(p as u64, n);
        }
        assert_eq!(received.load(SeqCst), sent.iter().sum::<u64>());
        // SAFETY: the last reference; nobody uses the channel any more.
        unsafe {
            assert_eq!(weft_chan_len(ch.0), 0);
            weft_chan_release(ch.0);
        }
    }
    close(rt);
    done.store(1, SeqCst);
}

/// Producers and consumers select over a buffered channel and a rendezvous one (the
/// buffered side's completions race with the rendezvous hand-offs for one decision
/// word), with random deadlines, some consumers with plain receives; both channels
/// closed mid-flight. Exactly-once and per-channel order hold.
#[test]
fn select_mixing_buffered_and_rendezvous() {
    let done = watchdog("select_mixing_buffered_and_rendezvous", 120);
    let rt = open();
    const P: u64 = 3;
    const C: usize = 3;
    const PER: u64 = 2000;
    for (round, &capacity) in CAPACITIES.iter().chain(&CAPACITIES).enumerate() {
        let chans = [
            new_chan(rt, std::mem::size_of::<Msg>(), capacity, None),
            new_chan(rt, std::mem::size_of::<Msg>(), 0, None),
        ];
        let ledger = Arc::new(Ledger::new(P, PER));
        let received = Arc::new(AtomicU64::new(0));
        let close_at = [P * PER / 2, P * PER + 1, P * PER + 1, P * PER / 3][round % 4];
        let producers: Vec<_> = (0..P)
            .map(|p| {
                std::thread::spawn(move || {
                    let mut rng = Rng::for_round(round, p);
                    let mut sent = 0;
                    'messages: while sent < PER {
                        rng.maybe_pause();
                        let mut m = Msg { producer: p, seq: sent };
                        let buf = &mut m as *mut Msg as *mut c_void;
                        let mut cases =
                            [chans[0], chans[1]].map(|ch| weft_select_case_t { chan: ch.0, op: WEFT_SELECT_SEND, buf });
                        loop {
                            let mut chosen = usize::MAX;
                            // SAFETY: live channels; `m` outlives the call.
                            match unsafe { weft_select(cases.as_mut_ptr(), 2, rng.deadline(rt), 0, &mut chosen) } {
                                WEFT_OK => break,
                                WEFT_ECLOSED => break 'messages,
                                WEFT_ETIMEDOUT => std::thread::yield_now(),
                                other => panic!("weft_select (send): {other}: {}", last_error()),
                            }
                        }
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        let consumers: Vec<_> = (0..C)
            .map(|c| {
                let (ledger, received) = (ledger.clone(), received.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::for_round(round, 500 + c as u64);
                    let mut order = [Order::new(P), Order::new(P)];
                    let mut open = [true, true];
                    while open.iter().any(|&o| o) {
                        let mut m = [Msg::default(); 2];
                        let (which, status) = if c == 0 {
                            // Plain receives, on whichever channel is still open.
                            let which = if open[0] && (!open[1] || rng.below(2) == 0) { 0 } else { 1 };
                            // SAFETY: a live channel; `m[which]` is 16 bytes.
                            (which, unsafe {
                                weft_chan_recv(
                                    chans[which].0,
                                    &mut m[which] as *mut Msg as *mut c_void,
                                    rng.deadline(rt),
                                )
                            })
                        } else {
                            let mut cases: Vec<weft_select_case_t> = (0..2)
                                .filter(|&i| open[i])
                                .map(|i| weft_select_case_t {
                                    chan: chans[i].0,
                                    op: WEFT_SELECT_RECV,
                                    buf: &mut m[i] as *mut Msg as *mut c_void,
                                })
                                .collect();
                            let index: Vec<usize> = (0..2).filter(|&i| open[i]).collect();
                            let mut chosen = usize::MAX;
                            // SAFETY: live channels; `m` outlives the call.
                            let status = unsafe {
                                weft_select(cases.as_mut_ptr(), cases.len(), rng.deadline(rt), 0, &mut chosen)
                            };
                            (if chosen < index.len() { index[chosen] } else { usize::MAX }, status)
                        };
                        match status {
                            WEFT_OK => {
                                order[which].see(m[which]);
                                ledger.receive(m[which]);
                                if received.fetch_add(1, SeqCst) + 1 == close_at {
                                    // SAFETY: live channels.
                                    unsafe {
                                        assert_eq!(weft_chan_close(chans[1].0), WEFT_OK);
                                        assert_eq!(weft_chan_close(chans[0].0), WEFT_OK);
                                    }
                                }
                            }
                            WEFT_ECLOSED => open[which] = false,
                            WEFT_ETIMEDOUT => std::thread::yield_now(),
                            other => panic!("receive: {other}: {}", last_error()),
                        }
                    }
                })
            })
            .collect();
        let sent: Vec<u64> = producers.into_iter().map(|t| t.join().unwrap()).collect();
        if close_at > P * PER {
            // As in `exact_accounting_with_deadlines_and_close`.
            while received.load(SeqCst) < P * PER {
                std::thread::yield_now();
            }
        }
        // SAFETY: live channels (closing twice is allowed).
        unsafe {
            assert_eq!(weft_chan_close(chans[0].0), WEFT_OK);
            assert_eq!(weft_chan_close(chans[1].0), WEFT_OK);
        }
        consumers.into_iter().for_each(|t| t.join().unwrap());
        for (p, &n) in sent.iter().enumerate() {
            ledger.check(p as u64, n);
        }
        for ch in chans {
            // SAFETY: the last reference.
            unsafe { weft_chan_release(ch.0) };
        }
    }
    close(rt);
    done.store(1, SeqCst);
}

/// What a consumer task shares with the test.
struct TaskArgs {
    rt: Rt,
    ch: Ch,
    ledger: Arc<Ledger>,
    taken: AtomicUsize,
}

unsafe extern "C" fn consume_until_cancelled(arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
    let args = &*(arg as *const TaskArgs);
    let mut order = Order::new(4);
    let mut m = Msg::default();
    loop {
        match weft_chan_recv(args.ch.0, &mut m as *mut Msg as *mut c_void, WEFT_FOREVER) {
            WEFT_OK => {
                order.see(m);
                args.ledger.receive(m);
                args.taken.fetch_add(1, SeqCst);
            }
            WEFT_ECANCELED => return 0,
            WEFT_ECLOSED => return 1,
            other => return other,
        }
    }
}

/// Consumer tasks blocked in receives (and taking what is ready at once) are cancelled
/// one by one while producers keep sending; the main thread then drains the rest. A
/// cancelled receive takes nothing: every message is received exactly once.
#[test]
fn cancelled_receivers_lose_nothing() {
    let done = watchdog("cancelled_receivers_lose_nothing", 120);
    let rt = open();
    const P: u64 = 4;
    const PER: u64 = 3000;
    const TASKS: usize = 4;
    for (round, &capacity) in CAPACITIES.iter().chain(&CAPACITIES).enumerate() {
        let ch = new_chan(rt, std::mem::size_of::<Msg>(), capacity, None);
        let ledger = Arc::new(Ledger::new(P, PER));
        let args: Vec<Arc<TaskArgs>> = (0..TASKS)
            .map(|_| Arc::new(TaskArgs { rt, ch, ledger: ledger.clone(), taken: AtomicUsize::new(0) }))
            .collect();
        let tasks: Vec<SendPtr> = args
            .iter()
            .map(|a| {
                let mut t = ptr::null_mut();
                // SAFETY: a live runtime; `a` outlives the task (joined below).
                let status = unsafe {
                    weft_spawn(
                        a.rt.0,
                        Some(consume_until_cancelled),
                        Arc::as_ptr(a) as *mut c_void,
                        ptr::null(),
                        &mut t,
                    )
                };
                assert_eq!(status, WEFT_OK, "weft_spawn: {}", last_error());
                SendPtr(t as *mut c_void)
            })
            .collect();
        let producers: Vec<_> = (0..P)
            .map(|p| {
                std::thread::spawn(move || {
                    let mut rng = Rng::for_round(round, p);
                    for seq in 0..PER {
                        assert!(send_retrying(rt, ch, &Msg { producer: p, seq }, &mut rng));
                    }
                })
            })
            .collect();
        // Cancel the tasks one by one as the messages flow.
        let mut rng = Rng::new(round as u64 + 7);
        for (i, t) in tasks.iter().enumerate() {
            let target = (i as u64 + 1) * P * PER / (TASKS as u64 + 2) + rng.below(100);
            while (args.iter().map(|a| a.taken.load(SeqCst)).sum::<usize>() as u64) < target {
                std::thread::yield_now();
            }
            // SAFETY: a live task handle.
            assert_eq!(unsafe { weft_cancel(t.0 as *mut weft_task_t) }, WEFT_OK);
        }
        let mut order = Order::new(P);
        let mut main_taken = 0u64;
        let total_taken = |main: u64| main + args.iter().map(|a| a.taken.load(SeqCst) as u64).sum::<u64>();
        let mut drain_rng = Rng::new(round as u64 + 99);
        while total_taken(main_taken) < P * PER {
            if let Some(m) = {
                let mut m = Msg::default();
                // SAFETY: a live channel.
                match unsafe { weft_chan_recv(ch.0, &mut m as *mut Msg as *mut c_void, drain_rng.deadline(rt).min(1)) }
                {
                    WEFT_OK => Some(m),
                    WEFT_ETIMEDOUT => None,
                    other => panic!("weft_chan_recv: {other}: {}", last_error()),
                }
            } {
                order.see(m);
                ledger.receive(m);
                main_taken += 1;
            } else {
                std::thread::yield_now();
            }
        }
        producers.into_iter().for_each(|t| t.join().unwrap());
        for t in tasks {
            let (mut code, mut result) = (-1, ptr::null_mut());
            // SAFETY: a handle from weft_spawn, joined once.
            assert_eq!(unsafe { weft_join(t.0 as *mut weft_task_t, WEFT_FOREVER, &mut code, &mut result) }, WEFT_OK);
            assert_eq!(code, 0, "a consumer task ended without its cancellation");
        }
        for p in 0..P {
            ledger.check(p, PER);
        }
        // SAFETY: the last reference.
        unsafe { weft_chan_release(ch.0) };
    }
    close(rt);
    done.store(1, SeqCst);
}

/// Counts `elem_drop` calls on boxed ids and frees them.
struct Drops {
    dropped: AtomicU64,
    ledger: Ledger,
}

unsafe extern "C" fn drop_boxed(elem: *mut c_void, ud: *mut c_void) {
    let drops = &*(ud as *const Drops);
    let boxed = Box::from_raw(*(elem as *mut *mut Msg));
    drops.ledger.receive(*boxed);
    drops.dropped.fetch_add(1, SeqCst);
}

/// A channel of owned pointers closed mid-flight, consumers stopping early, then
/// released: every pointer is freed exactly once, by its receiver, by its sender (a send
/// that failed keeps its element) or by `elem_drop` (no leak, no double free).
#[test]
fn moved_pointers_freed_exactly_once() {
    let done = watchdog("moved_pointers_freed_exactly_once", 120);
    let rt = open();
    const P: u64 = 4;
    const PER: u64 = 2000;
    for (round, &capacity) in CAPACITIES.iter().chain(&CAPACITIES).enumerate() {
        let drops = Box::new(Drops { dropped: AtomicU64::new(0), ledger: Ledger::new(P, PER) });
        let opts = weft_chan_opts_t {
            elem_drop: Some(drop_boxed),
            drop_ud: &*drops as *const Drops as *mut c_void,
            ..Default::default()
        };
        let ch = new_chan(rt, std::mem::size_of::<*mut Msg>(), capacity, Some(&opts));
        let drops_at = SendPtr(&*drops as *const Drops as *mut c_void);
        let producers: Vec<_> = (0..P)
            .map(|p| {
                std::thread::spawn(move || {
                    let (ch, drops_at) = (ch, drops_at);
                    // SAFETY: `drops` outlives the threads (joined below).
                    let drops = unsafe { &*(drops_at.0 as *const Drops) };
                    let mut rng = Rng::for_round(round, p);
                    for seq in 0..PER {
                        rng.maybe_pause();
                        let boxed = Box::into_raw(Box::new(Msg { producer: p, seq }));
                        loop {
                            // SAFETY: a live channel; the pointer is the element.
                            match unsafe {
                                weft_chan_send(ch.0, &boxed as *const *mut Msg as *const c_void, rng.deadline(rt))
                            } {
                                WEFT_OK => break,
                                WEFT_ETIMEDOUT => std::thread::yield_now(),
                                WEFT_ECLOSED => {
                                    // Not taken: still the sender's. The rest are never made.
                                    // SAFETY: made above, not sent.
                                    drops.ledger.receive(*unsafe { Box::from_raw(boxed) });
                                    for never in seq + 1..PER {
                                        drops.ledger.receive(Msg { producer: p, seq: never });
                                    }
                                    return;
                                }
                                other => panic!("weft_chan_send: {other}: {}", last_error()),
                            }
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3u64)
            .map(|c| {
                std::thread::spawn(move || {
                    let (ch, drops_at) = (ch, drops_at);
                    // SAFETY: as above.
                    let drops = unsafe { &*(drops_at.0 as *const Drops) };
                    let mut rng = Rng::for_round(round, 5 + c);
                    let stop_after = PER * (c + 1) / 2;
                    for n in 0.. {
                        let mut boxed: *mut Msg = ptr::null_mut();
                        // SAFETY: a live channel; `boxed` receives the element.
                        match unsafe {
                            weft_chan_recv(ch.0, &mut boxed as *mut *mut Msg as *mut c_void, rng.deadline(rt))
                        } {
                            // SAFETY: a pointer made by a producer, received once.
                            WEFT_OK => drops.ledger.receive(*unsafe { Box::from_raw(boxed) }),
                            WEFT_ETIMEDOUT => std::thread::yield_now(),
                            WEFT_ECLOSED => return,
                            other => panic!("weft_chan_recv: {other}: {}", last_error()),
                        }
                        if n == stop_after && c == 0 {
                            // SAFETY: a live channel.
                            assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
                        }
                        if n > stop_after {
                            return;
                        }
                    }
                })
            })
            .collect();
        consumers.into_iter().for_each(|t| t.join().unwrap());
        // SAFETY: a live channel; the producers still blocked get ECLOSED.
        assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
        producers.into_iter().for_each(|t| t.join().unwrap());
        // SAFETY: the last reference: runs elem_drop on what is left.
        unsafe { weft_chan_release(ch.0) };
        for p in 0..P {
            drops.ledger.check(p, PER);
        }
    }
    close(rt);
    done.store(1, SeqCst);
}

/// 0-byte elements (a bare count) through bounded and unbounded channels, with a
/// close in mid-flight: the number received equals the number sent.
#[test]
fn zero_size_counts_exactly() {
    let done = watchdog("zero_size_counts_exactly", 120);
    let rt = open();
    const P: u64 = 4;
    const PER: u64 = 5000;
    for (round, &capacity) in CAPACITIES.iter().chain(&CAPACITIES).enumerate() {
        let ch = new_chan(rt, 0, capacity, None);
        let received = Arc::new(AtomicU64::new(0));
        let producers: Vec<_> = (0..P)
            .map(|p| {
                std::thread::spawn(move || {
                    let ch = ch;
                    let mut rng = Rng::for_round(round, p);
                    let mut sent = 0u64;
                    while sent < PER {
                        rng.maybe_pause();
                        // SAFETY: a live channel of 0-byte elements: NULL is allowed.
                        match unsafe { weft_chan_send(ch.0, ptr::null(), rng.deadline(rt)) } {
                            WEFT_OK => sent += 1,
                            WEFT_ETIMEDOUT => std::thread::yield_now(),
                            WEFT_ECLOSED => break,
                            other => panic!("weft_chan_send: {other}: {}", last_error()),
                        }
                    }
                    sent
                })
            })
            .collect();
        let consumers: Vec<_> = (0..3u64)
            .map(|c| {
                let received = received.clone();
                std::thread::spawn(move || {
                    let ch = ch;
                    let mut rng = Rng::for_round(round, 5 + c);
                    loop {
                        // SAFETY: as above.
                        match unsafe { weft_chan_recv(ch.0, ptr::null_mut(), rng.deadline(rt)) } {
                            WEFT_OK => {
                                if received.fetch_add(1, Relaxed) + 1 == P * PER * 2 / 3 {
                                    // SAFETY: a live channel.
                                    assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
                                }
                            }
                            WEFT_ETIMEDOUT => std::thread::yield_now(),
                            WEFT_ECLOSED => return,
                            other => panic!("weft_chan_recv: {other}: {}", last_error()),
                        }
                    }
                })
            })
            .collect();
        let sent: u64 = producers.into_iter().map(|t| t.join().unwrap()).sum();
        // SAFETY: a live channel.
        assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
        consumers.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(received.load(SeqCst), sent);
        // SAFETY: the last reference.
        unsafe { weft_chan_release(ch.0) };
    }
    close(rt);
    done.store(1, SeqCst);
}

/// Ping-pong through two buffered channels, every call waiting forever: almost every
/// receive finds the channel empty and parks just as its partner sends, which is the
/// race between announcing a waiter and a lock-free send (a lost wake-up hangs here).
/// One side receives with a select over its channel and an idle one.
#[test]
fn ping_pong_parks_and_wakes() {
    let done = watchdog("ping_pong_parks_and_wakes", 120);
    let rt = open();
    const TRIPS: u64 = 20_000;
    for (round, &capacity) in CAPACITIES.iter().enumerate() {
        let elem = if round == 2 { 0 } else { 8 };
        let (ping, pong, idle) = (
            new_chan(rt, elem, capacity, None),
            new_chan(rt, elem, capacity, None),
            new_chan(rt, elem, capacity, None),
        );
        let partner = std::thread::spawn(move || {
            let (ping, pong, idle) = (ping, pong, idle);
            let mut v = 0u64;
            for i in 0..TRIPS {
                let mut cases = [
                    weft_select_case_t { chan: idle.0, op: WEFT_SELECT_RECV, buf: &mut v as *mut u64 as *mut c_void },
                    weft_select_case_t { chan: ping.0, op: WEFT_SELECT_RECV, buf: &mut v as *mut u64 as *mut c_void },
                ];
                let mut chosen = usize::MAX;
                // SAFETY: live channels; `v` outlives the call.
                assert_eq!(
                    unsafe { weft_select(cases.as_mut_ptr(), 2, WEFT_FOREVER, 0, &mut chosen) },
                    WEFT_OK,
                    "{}",
                    last_error()
                );
                assert_eq!(chosen, 1);
                if elem != 0 {
                    assert_eq!(v, i);
                }
                // SAFETY: a live channel.
                assert_eq!(unsafe { weft_chan_send(pong.0, &v as *const u64 as *const c_void, WEFT_FOREVER) }, WEFT_OK);
            }
        });
        for i in 0..TRIPS {
            let mut v = i;
            // SAFETY: live channels; `v` is 8 bytes (or ignored).
            unsafe {
                assert_eq!(weft_chan_send(ping.0, &v as *const u64 as *const c_void, WEFT_FOREVER), WEFT_OK);
                assert_eq!(weft_chan_recv(pong.0, &mut v as *mut u64 as *mut c_void, WEFT_FOREVER), WEFT_OK);
            }
            if elem != 0 {
                assert_eq!(v, i);
            }
        }
        partner.join().unwrap();
        for ch in [ping, pong, idle] {
            // SAFETY: the last reference.
            unsafe { weft_chan_release(ch.0) };
        }
    }
    close(rt);
    done.store(1, SeqCst);
}

/// A bounded buffer of a few MiB (its pages committed ahead of the pushes as the first
/// lap goes, then reused), filled and drained three times over by 4 producers and
/// 4 consumers: exact accounting and per-producer order.
#[test]
fn large_buffer_laps() {
    let done = watchdog("large_buffer_laps", 120);
    let rt = open();
    const P: u64 = 4;
    const PER: u64 = 60_000;
    let ch = new_chan(rt, std::mem::size_of::<Msg>(), 70_001, None);
    let ledger = Arc::new(Ledger::new(P, PER));
    let producers: Vec<_> = (0..P)
        .map(|p| {
            std::thread::spawn(move || {
                let mut rng = Rng::new(p);
                for seq in 0..PER {
                    assert!(send_retrying(rt, ch, &Msg { producer: p, seq }, &mut rng));
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..4u64)
        .map(|c| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(10 + c);
                let mut order = Order::new(P);
                while let Some(m) = recv_retrying(rt, ch, &mut rng) {
                    order.see(m);
                    ledger.receive(m);
                }
            })
        })
        .collect();
    producers.into_iter().for_each(|t| t.join().unwrap());
    // SAFETY: a live channel; every producer is done.
    assert_eq!(unsafe { weft_chan_close(ch.0) }, WEFT_OK);
    consumers.into_iter().for_each(|t| t.join().unwrap());
    for p in 0..P {
        ledger.check(p, PER);
    }
    // SAFETY: the last reference.
    unsafe { weft_chan_release(ch.0) };
    close(rt);
    done.store(1, SeqCst);
}
