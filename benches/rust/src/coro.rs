//! Context switching with corosensei alone: the floor under the green platform's yield
//! (which adds its scheduler: run queue, the task's weft context, bookkeeping).
use std::time::Instant;

use corosensei::{Coroutine, CoroutineResult};

use crate::{Kind, Params, Sample};

/// Two coroutines driven alternately by this thread, each suspending `n` times: a
/// suspend and the resume of the other is one switch from a coroutine to another, as a
/// green yield is. ns per such switch.
fn corosensei_switch(p: &Params) -> Sample {
    let n = p.n;
    let make = || {
        Coroutine::new(move |y: &corosensei::Yielder<(), ()>, ()| {
            for _ in 0..n {
                y.suspend(());
            }
        })
    };
    let (mut a, mut b) = (make(), make());
    let t0 = Instant::now();
    loop {
        let ra = a.resume(());
        let rb = b.resume(());
        if matches!((ra, rb), (CoroutineResult::Return(()), CoroutineResult::Return(()))) {
            break;
        }
    }
    Sample { value: t0.elapsed().as_nanos() as f64 / (2 * n) as f64, extra: 0.0 }
}

pub fn kinds() -> Vec<Kind> {
    vec![Kind {
        name: "yield_switch",
        unit: "ns per yield between two tasks",
        better: "lower",
        extra_unit: None,
        variants: vec![("corosensei", corosensei_switch)],
    }]
}
