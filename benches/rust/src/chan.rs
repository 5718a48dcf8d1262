//! Channels in crossbeam-channel's benchmark shapes (see benches/c/chan.c for the weft
//! side from C): crossbeam-channel, flume, and weft's channels through the C ABI when
//! the header has them (`cfg(weft_chan)`), all with `usize` messages. The time runs from
//! before the first spawn to after the last join; the figure is ns per message.
use std::time::Instant;

use crate::{Kind, Params, Sample};

/// One channel implementation: a sender and a receiver shared by reference among
/// scoped threads.
trait ChanImpl {
    type Tx: Sync;
    type Rx: Sync;
    fn new(cap: Option<usize>) -> (Self::Tx, Self::Rx);
    fn send(tx: &Self::Tx, v: usize);
    fn recv(rx: &Self::Rx) -> usize;
}

struct Crossbeam;
struct Flume;

impl ChanImpl for Crossbeam {
    type Tx = crossbeam_channel::Sender<usize>;
    type Rx = crossbeam_channel::Receiver<usize>;
    fn new(cap: Option<usize>) -> (Self::Tx, Self::Rx) {
        match cap {
            None => crossbeam_channel::unbounded(),
            Some(c) => crossbeam_channel::bounded(c),
        }
    }
    #[inline(always)]
    fn send(tx: &Self::Tx, v: usize) {
        tx.send(v).unwrap();
    }
    #[inline(always)]
    fn recv(rx: &Self::Rx) -> usize {
        rx.recv().unwrap()
    }
}

impl ChanImpl for Flume {
    type Tx = flume::Sender<usize>;
    type Rx = flume::Receiver<usize>;
    fn new(cap: Option<usize>) -> (Self::Tx, Self::Rx) {
        match cap {
            None => flume::unbounded(),
            Some(c) => flume::bounded(c),
        }
    }
    #[inline(always)]
    fn send(tx: &Self::Tx, v: usize) {
        tx.send(v).unwrap();
    }
    #[inline(always)]
    fn recv(rx: &Self::Rx) -> usize {
        rx.recv().unwrap()
    }
}

#[cfg(weft_chan)]
mod weft_impl {
    use std::ffi::c_void;

    use crate::weft::chan::*;
    use crate::weft::{check, WEFT_FOREVER};

    /// A weft channel handle shared by the threads of one run; released on drop.
    pub struct WeftChan(pub *mut Chan);
    // SAFETY: weft channels are made to be used from any thread.
    unsafe impl Sync for WeftChan {}
    unsafe impl Send for WeftChan {}

    impl Drop for WeftChan {
        fn drop(&mut self) {
            // SAFETY: the handle made by weft_chan_new, released once.
            unsafe { weft_chan_release(self.0) };
        }
    }

    impl WeftChan {
        pub fn new(cap: Option<usize>) -> WeftChan {
            let mut ch = std::ptr::null_mut();
            let cap = cap.unwrap_or(WEFT_CHAN_UNBOUNDED);
            // SAFETY: NULL options = defaults; `ch` is a valid out-pointer.
            check("weft_chan_new", unsafe {
                weft_chan_new(crate::rt(), std::mem::size_of::<usize>(), cap, std::ptr::null(), &mut ch)
            });
            WeftChan(ch)
        }
    }

    pub struct Weft;

    /// weft has one handle for both ends: the receiver side owns it (and releases it),
    /// the sender side borrows it for the run.
    pub struct Borrowed(pub *mut Chan);
    // SAFETY: as WeftChan.
    unsafe impl Sync for Borrowed {}
    unsafe impl Send for Borrowed {}

    impl super::ChanImpl for Weft {
        type Tx = Borrowed;
        type Rx = WeftChan;
        fn new(cap: Option<usize>) -> (Borrowed, WeftChan) {
            let ch = WeftChan::new(cap);
            (Borrowed(ch.0), ch)
        }
        #[inline(always)]
        fn send(tx: &Borrowed, v: usize) {
            // SAFETY: the channel outlives the run (the receiver side owns it).
            check("weft_chan_send", unsafe { weft_chan_send(tx.0, &v as *const usize as *const c_void, WEFT_FOREVER) });
        }
        #[inline(always)]
        fn recv(rx: &WeftChan) -> usize {
            let mut v = 0usize;
            // SAFETY: as above; `v` is an elem_size-byte buffer.
            check("weft_chan_recv", unsafe { weft_chan_recv(rx.0, &mut v as *mut usize as *mut c_void, WEFT_FOREVER) });
            v
        }
    }

    /// weft_select over k receive cases, n/k messages per channel from one producer each.
    pub fn select(p: &crate::Params) -> crate::Sample {
        let k = p.chans;
        let per = p.n / k;
        let t0 = std::time::Instant::now();
        let chans: Vec<WeftChan> = (0..k).map(|_| WeftChan::new(p.cap)).collect();
        let mut bufs = vec![0usize; k];
        let mut cases: Vec<SelectCase> = chans
            .iter()
            .zip(bufs.iter_mut())
            .map(|(c, b)| SelectCase { chan: c.0, op: WEFT_SELECT_RECV, buf: b as *mut usize as *mut c_void })
            .collect();
        let mut sum = 0u64;
        std::thread::scope(|scope| {
            for c in &chans {
                let tx = Borrowed(c.0);
                scope.spawn(move || {
                    for i in 0..per {
                        <Weft as super::ChanImpl>::send(&tx, i);
                    }
                });
            }
            for _ in 0..per * k {
                let mut chosen = usize::MAX;
                // SAFETY: `cases` points at live channels and k buffers of elem_size bytes.
                check("weft_select", unsafe { weft_select(cases.as_mut_ptr(), k, WEFT_FOREVER, 0, &mut chosen) });
                assert!(chosen < k, "weft_select: chosen out of range");
                // SAFETY: the chosen case's buffer was written by weft_select.
                sum += unsafe { *(cases[chosen].buf as *const usize) } as u64;
            }
        });
        drop(cases);
        drop(chans);
        let s = super::finish(t0, per * k);
        super::check_sum(sum, per, k);
        s
    }
}

fn finish(t0: Instant, messages: usize) -> Sample {
    Sample { value: t0.elapsed().as_nanos() as f64 / messages as f64, extra: 0.0 }
}

/// The sum of 0..per-1 sent by each of `senders`.
fn check_sum(got: u64, per: usize, senders: usize) {
    let want = senders as u64 * (per as u64 * (per as u64).saturating_sub(1) / 2);
    assert_eq!(got, want, "channel: the received values do not add up");
}

fn seq<C: ChanImpl>(p: &Params) -> Sample {
    let t0 = Instant::now();
    let (tx, rx) = C::new(p.cap);
    for i in 0..p.n {
        C::send(&tx, i);
    }
    let mut sum = 0u64;
    for _ in 0..p.n {
        sum += C::recv(&rx) as u64;
    }
    drop((tx, rx));
    let s = finish(t0, p.n);
    check_sum(sum, p.n, 1);
    s
}

/// `producers` sender threads; `consumers` receiver threads, or the calling thread
/// receives everything when 0.
fn fan<C: ChanImpl>(p: &Params, producers: usize, consumers: usize) -> Sample {
    let per = p.n / producers;
    let total = per * producers;
    let t0 = Instant::now();
    let (tx, rx) = C::new(p.cap);
    let sum = std::thread::scope(|scope| {
        for _ in 0..producers {
            let tx = &tx;
            scope.spawn(move || {
                for i in 0..per {
                    C::send(tx, i);
                }
            });
        }
        if consumers == 0 {
            let mut sum = 0u64;
            for _ in 0..total {
                sum += C::recv(&rx) as u64;
            }
            sum
        } else {
            let handles: Vec<_> = (0..consumers)
                .map(|_| {
                    let rx = &rx;
                    scope.spawn(move || {
                        let mut sum = 0u64;
                        for _ in 0..total / consumers {
                            sum += C::recv(rx) as u64;
                        }
                        sum
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        }
    });
    drop((tx, rx));
    let s = finish(t0, total);
    check_sum(sum, per, producers);
    s
}

fn spsc<C: ChanImpl>(p: &Params) -> Sample {
    fan::<C>(p, 1, 0)
}
fn mpsc<C: ChanImpl>(p: &Params) -> Sample {
    fan::<C>(p, p.threads, 0)
}
fn mpmc<C: ChanImpl>(p: &Params) -> Sample {
    fan::<C>(p, p.threads, p.threads)
}

/// crossbeam's Select over k receivers (built once), one producer per channel.
fn select_crossbeam(p: &Params) -> Sample {
    let k = p.chans;
    let per = p.n / k;
    let t0 = Instant::now();
    let chans: Vec<_> = (0..k).map(|_| Crossbeam::new(p.cap)).collect();
    let mut sum = 0u64;
    std::thread::scope(|scope| {
        for (tx, _) in &chans {
            scope.spawn(move || {
                for i in 0..per {
                    tx.send(i).unwrap();
                }
            });
        }
        let mut sel = crossbeam_channel::Select::new();
        for (_, rx) in &chans {
            sel.recv(rx);
        }
        for _ in 0..per * k {
            let oper = sel.select();
            let i = oper.index();
            sum += oper.recv(&chans[i].1).unwrap() as u64;
        }
    });
    drop(chans);
    let s = finish(t0, per * k);
    check_sum(sum, per, k);
    s
}

const UNIT: &str = "ns per message (first spawn to last join, / messages)";

pub fn kinds() -> Vec<Kind> {
    let kind = |name, variants| Kind { name, unit: UNIT, better: "lower", extra_unit: None, variants };
    #[allow(unused_mut)]
    let mut all = vec![
        kind("chan_seq", vec![("crossbeam", seq::<Crossbeam> as crate::VariantFn), ("flume", seq::<Flume>)]),
        kind("chan_spsc", vec![("crossbeam", spsc::<Crossbeam> as crate::VariantFn), ("flume", spsc::<Flume>)]),
        kind("chan_mpsc", vec![("crossbeam", mpsc::<Crossbeam> as crate::VariantFn), ("flume", mpsc::<Flume>)]),
        kind("chan_mpmc", vec![("crossbeam", mpmc::<Crossbeam> as crate::VariantFn), ("flume", mpmc::<Flume>)]),
        kind("chan_select", vec![("crossbeam", select_crossbeam as crate::VariantFn)]),
    ];
    #[cfg(weft_chan)]
    {
        use weft_impl::Weft;
        let weft: [crate::VariantFn; 5] = [seq::<Weft>, spsc::<Weft>, mpsc::<Weft>, mpmc::<Weft>, weft_impl::select];
        for (k, f) in all.iter_mut().zip(weft) {
            k.variants.insert(0, ("weft", f));
        }
    }
    all
}
