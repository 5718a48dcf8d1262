#!/usr/bin/env python3
"""weft's side-by-side benchmark driver (standard library only).

Runs every case against its peers with the programs that `./dev bench` built:
  target/bench/weftbench         C: weft through weft.h vs pthread, glibc, Boehm GC
  target/bench/weftbench-static  the same, linked with libweft.a instead of libweft.so
  target/bench/rust/release/weftbench-rs   Rust: weft through the C ABI vs parking_lot,
                                 std, crossbeam-channel, flume
  target/bench/gobench           Go 1.19 channels
Prints a table of ratios weft/peer (each the median of interleaved repeated runs, weft
and its peer alternately), and writes target/bench/results.json and
target/bench/results.svg.

Usage: benches/run.py [--quick] [--only SUBSTRING] [--out DIR]
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINS = {
    "c": os.path.join(ROOT, "target/bench/weftbench"),
    # The same C program on the green platform (M:N tasks) instead of native.
    "cg": os.path.join(ROOT, "target/bench/weftbench"),
    # The same C program linked with libweft.a (the static library's fast paths).
    "cs": os.path.join(ROOT, "target/bench/weftbench-static"),
    "rs": os.path.join(ROOT, "target/bench/rust/release/weftbench-rs"),
    "go": os.path.join(ROOT, "target/bench/gobench"),
}
LANG = {"c": "C", "cg": "C on green", "cs": "C, libweft.a", "rs": "Rust", "go": "Go"}
ENV = {"c": {"WEFT_PLATFORM": "native"}, "cg": {"WEFT_PLATFORM": "green"}, "cs": {"WEFT_PLATFORM": "native", "WEFT_PLUGIN_PATH": os.path.join(ROOT, "target/release")}}

# ---- the cases ---------------------------------------------------------------------
#
# A case is one workload. Its runs are (binary, kind, arguments); a case with one run
# interleaves its variants inside that process (--rounds R); a case with several runs
# (channels: Rust, Go, C) calls each binary once per round, in rotating order, so the
# processes interleave too. Its rows are the ratios reported: (weft sample set, peer
# sample set, goal), and optionally a note for the row's title (a reference row, whose
# first side is not weft). Sample sets are named "binary/variant".

MESSAGES_FULL = 5_000_000


def sizes(quick):
    """Iterations per run. Full: the sizes the figures in docs/performance.md used."""
    if quick:
        return dict(parked=100_000, skynet=100_000, spawn_task=20_000, switch=200_000, rounds=3, chan_rounds=3, case_budget_s=4, total_budget_s=50, uncontended=1_000_000, contended_ms=40, pingpong=5_000, pipeline=500, spawn=500,
                    now=1_000_000, yield_=100_000, poll=10_000_000, stops=20, msgs=50_000, msgs_sync=5_000,
                    msgs_select=5_000, psum_mid=1_000_000, psum_big=10_000_000, park=100_000)
    return dict(parked=1_000_000, skynet=1_000_000, spawn_task=200_000, switch=2_000_000, rounds=7, chan_rounds=5, case_budget_s=25, total_budget_s=13 * 60, uncontended=10_000_000, contended_ms=200, pingpong=50_000, pipeline=5_000, spawn=5_000,
                now=10_000_000, yield_=1_000_000, poll=100_000_000, stops=100, msgs=MESSAGES_FULL, msgs_sync=200_000,
                msgs_select=200_000, psum_mid=1_000_000, psum_big=100_000_000, park=1_000_000)


def goal(op, value, on="ratio", text=None):
    return {"op": op, "value": value, "on": on, "text": text or f"{op} {value}x"}


UNCONTENDED = goal("<=", 1.15, text="<= 1.15x pthread")
ERRORCHECK = goal("<=", 1.0, text="<= 1.0x errorcheck")
CONTENDED = goal(">=", 0.9, text=">= 0.9x each peer")
CONDVAR = goal("<=", 1.1, text="<= 1.1x pthread")
SPAWN = goal("<=", 1.1, text="<= 1.1x pthread")
CROSSBEAM = goal("<=", 1.25, text="<= 1.25x crossbeam")
GO = goal("<=", 1.0, text="<= 1.0x Go")
CALLPATH = goal("<=", 1.0, on="delta", text="<= 1 ns over the direct call")
YIELD = goal("<=", 5.0, on="delta", text="<= 5 ns over the direct call")


def build_cases(s):
    cases = []

    def case(id, title, runs, rows, what):
        cases.append(dict(id=id, title=title, runs=runs, rows=rows, what=what))

    r = str(s["rounds"])
    case("mutex_uncontended/c", "mutex lock+unlock, uncontended (C)",
         [("c", "mutex_uncontended", ["--n", str(s["uncontended"]), "--rounds", r])],
         [("c/weft", "c/pthread", UNCONTENDED), ("c/weft", "c/errorcheck", ERRORCHECK)],
         "one thread, a free mutex: weft_mutex_lock+weft_mutex_unlock vs pthread_mutex_lock+unlock "
         "(glibc, default type, and PTHREAD_MUTEX_ERRORCHECK, the like-for-like peer); ns per pair")
    case("mutex_uncontended/static", "mutex lock+unlock, uncontended (C, libweft.a)",
         [("cs", "mutex_uncontended", ["--n", str(s["uncontended"]), "--rounds", r])],
         [("cs/weft", "cs/pthread", UNCONTENDED), ("cs/weft", "cs/errorcheck", ERRORCHECK)],
         "the same, with the benchmark program linked statically against libweft.a (the plugin is "
         "still loaded at open); ns per pair")
    case("mutex_uncontended/rs", "mutex lock+unlock, uncontended (Rust)",
         [("rs", "mutex_uncontended", ["--n", str(s["uncontended"]), "--rounds", r])],
         [("rs/weft", "rs/parking_lot", None), ("rs/weft", "rs/std", None)],
         "one thread, a free mutex: weft_mutex_lock+unlock through the C ABI vs parking_lot::Mutex "
         "(raw lock+unlock) and std::sync::Mutex (lock, drop the guard); ns per pair")
    for threads in (2, 4):
        for locks in (1, 64):
            args = ["--threads", str(threads), "--locks", str(locks), "--ms", str(s["contended_ms"]), "--rounds", r]
            what = (f"{threads} threads, {locks} lock(s) for {s['contended_ms']} ms: each thread loops lock "
                    f"(lock 0, or a random one of {locks}), increment the counter it guards, unlock; "
                    "lock+unlock pairs per second, all threads; fairness spread = (max-min)/mean ops per thread")
            case(f"mutex_contended/t{threads}_l{locks}/c", f"mutex contended, {threads} threads, {locks} lock(s) (C)",
                 [("c", "mutex_contended", args)], [("c/weft", "c/pthread", CONTENDED)], what)
            case(f"mutex_contended/t{threads}_l{locks}/rs", f"mutex contended, {threads} threads, {locks} lock(s) (Rust)",
                 [("rs", "mutex_contended", args)],
                 [("rs/weft", "rs/parking_lot", CONTENDED), ("rs/weft", "rs/std", CONTENDED),
                  ("rs/parking_lot_call", "rs/parking_lot", None, "reference: parking_lot called out of line")],
                 what + "; the reference row times parking_lot's own lock called through out-of-line functions, "
                 "as a host calls weft's, against itself inlined: what the call alone costs in the machine's mode")
    case("cond_pingpong", "condition variable ping-pong",
         [("c", "cond_pingpong", ["--n", str(s["pingpong"]), "--rounds", r])],
         [("c/weft", "c/pthread", CONDVAR)],
         "two weft tasks (two pthreads) hand a turn back and forth under one mutex and one condition "
         "(wait while not my turn, flip, signal); ns per round trip A->B->A")
    case("spawn_join", "spawn + join of an empty task",
         [("c", "spawn_join", ["--n", str(s["spawn"]), "--rounds", r])],
         [("c/weft", "c/pthread", SPAWN)],
         "weft_spawn(NULL options)+weft_join vs pthread_create(default attributes)+pthread_join, timed in "
         "one loop of alternating blocks of 16; ns per pair")
    case("callpath_now", "call path: weft_now vs clock_gettime",
         [("c", "callpath_now", ["--n", str(s["now"]), "--rounds", r])],
         [("c/weft", "c/direct", CALLPATH)],
         "weft_now(rt): host -> libweft (checks; the clock read by libweft through the vDSO's clock_gettime "
         "where the plugin claims WEFT_CAP_MONOTONIC_CLOCK, else the plugin's now() through the table), "
         "vs glibc's clock_gettime(CLOCK_MONOTONIC) called directly, timed in one loop of alternating blocks; ns per call")
    case("callpath_yield", "call path: weft_yield vs sched_yield",
         [("c", "callpath_yield", ["--n", str(s["yield_"]), "--rounds", r])],
         [("c/weft", "c/direct", YIELD)],
         "weft_yield(rt): host -> libweft (checks, a safepoint poll) -> sched_yield() in tail position where "
         "the plugin claims WEFT_CAP_SCHED_YIELD (else the plugin's yield), vs sched_yield() directly, timed in "
         "one loop of alternating blocks (an idle second thread exists, so nothing else is runnable on most "
         "calls); ns per call")
    case("callpath_local", "per-task state vs __thread",
         [("c", "callpath_local", ["--n", str(s["now"]), "--rounds", r])],
         [("c/state", "c/thread", goal("<=", 2.0, on="delta", text="<= 2 ns over __thread")),
          ("c/weft", "c/thread", None)],
         "weft.h's inline weft_task_state() (one load through the thread pointer; the running task's "
         "state pointer, switched with the task) and weft_local_get(key) (a call: the key's liveness, the "
         "running context, its slot) vs a __thread pointer the program reads itself (reloaded every "
         "iteration); ns per read")
    case("sp_poll", "untaken safepoint poll in a loop",
         [("c", "sp_poll", ["--n", str(s["poll"]), "--rounds", r])],
         [("c/weft", "c/nopoll", None)],
         "a loop whose body is one 64-bit LCG step (multiply + add on a dependency chain) with "
         "WEFT_SAFEPOINT_POLL (never taken) vs the same loop without it; ns per iteration")
    for m in (2, 8):
        case(f"stw/m{m}", f"stop-the-world, {m} mutators",
             [("c", "stw", ["--threads", str(m), "--n", str(s["stops"]), "--rounds", r])],
             [("c/weft", "c/boehm", None), ("c/weft:extra", "c/boehm:extra", None)],
             f"{m} mutators spin on LCG steps (weft tasks polling every 64 steps; Boehm: registered pthreads, "
             "stopped by signals); the main thread stops and resumes the world "
             f"{s['stops']} times, 0.5 ms apart: weft_stw_begin/weft_stw_end vs Boehm GC 8.2 "
             "GC_stop_world_external/GC_start_world_external; row 1: median time-to-safepoint (us, until the "
             "stop call returns); row 2: median full stop+resume (us, until the resume call returns)")

    # Structured parallelism, parking, checks.
    for label, n in (("1e3", 1000), ("1e6", s["psum_mid"]), ("1e8", s["psum_big"])):
        # The goals of the parallelism issue: <= 1.2x rayon from 10^6 up; at 10^3 trivial
        # elements, <= 2x the serial loop (going parallel must not dominate small inputs).
        vs_rayon = goal("<=", 1.2, text="<= 1.2x rayon") if label != "1e3" else None
        vs_serial = goal("<=", 2.0, text="<= 2x serial") if label == "1e3" else None
        for what, shape in (("sum", "the sum of a cheap function over [0, n)"),
                            ("map", "a map out[i] = in[i] * 1.5 + 1 over n floats")):
            case(f"parallel_{what}/{label}", f"parallel {what}, {label} elements",
                 [("c", f"parallel_{what}", ["--n", str(n), "--rounds", r]),
                  ("rs", f"parallel_{what}", ["--n", str(n), "--rounds", r])],
                 [("rs/weft", "rs/rayon", vs_rayon), ("c/weft", "c/tbb", None), ("c/weft", "c/openmp", None),
                  ("c/weft", "c/serial", vs_serial)],
                 f"{shape}, n = {n}: weft_parallel_for (grain 0: weft chooses) vs rayon par_iter (Rust, "
                 "the same process as its weft row) vs oneTBB parallel_reduce/parallel_for vs OpenMP "
                 "parallel for (gcc, static) vs the serial loop (C); us per call")
    case("group_spawn", "task group of 10,000 empty tasks",
         [("c", "group_spawn", ["--n", "10000", "--rounds", r]), ("cg", "group_spawn", ["--n", "10000", "--rounds", r]),
          ("go", "group_spawn", ["--n", "10000", "--rounds", r])],
         [("c/weft", "go/go", None), ("cg/weft", "go/go", None)],
         "weft_group_new, 10,000 weft_group_spawn of an empty task, weft_group_wait, weft_group_free (native: "
         "threads; green: M:N tasks) vs 10,000 goroutines and a sync.WaitGroup; ns per task")
    for threads in (1, 2):
        shape = "uncontended" if threads == 1 else f"{threads} threads"
        case(f"park_lock/t{threads}", f"one-word lock on weft_park, {shape}",
             [("c", "park_lock", ["--threads", str(threads), "--n", str(s["park"]), "--rounds", r])],
             [("c/weft", "c/futex", goal("<=", 1.1, text="<= 1.1x futex")), ("c/weft", "c/pthread", None),
              ("c/weft", "c/weft_mutex", None)],
             "a one-word lock (free/held/contended) in the WTF::Lock pattern, T threads incrementing under it: "
             "parked with weft_park/weft_unpark vs FUTEX_WAIT/FUTEX_WAKE directly; pthread_mutex_t and "
             "weft_mutex_t around the same counter; ns per lock+unlock pair")
    case("sem_pingpong", "semaphore ping-pong",
         [("c", "sem_pingpong", ["--n", str(s["pingpong"]), "--rounds", r])],
         [("c/weft", "c/posix", None)],
         "two threads hand a turn back and forth through two semaphores (post the other's, wait on "
         "one's own): weft_sem_t vs POSIX sem_t; ns per round trip")
    case("barrier_rounds", "barrier, two threads",
         [("c", "barrier_rounds", ["--n", str(s["pingpong"]), "--rounds", r])],
         [("c/weft", "c/posix", None)],
         "two threads meet at a barrier round after round: weft_barrier_t vs pthread_barrier_t; "
         "ns per round")
    for nest in (1, 4):
        case(f"checks_lock/l{nest}", f"mutex lock+unlock with the checks on, {nest} nested",
             [("c", "checks_lock", ["--locks", str(nest), "--n", str(s["uncontended"] // nest), "--rounds", r])],
             [("c/checked", "c/weft", goal("<=", 3.0, text="<= 3x unchecked")), ("c/weft", "c/errorcheck", None),
              ("c/checked", "c/absl", None), ("c/absl", "c/absl_off", None)],
             f"one thread, {nest} free weft_mutex_t taken in order and released in reverse, n times: in a "
             "runtime with WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK (checked) vs checks off (weft) vs "
             "glibc's PTHREAD_MUTEX_ERRORCHECK vs absl::Mutex with its deadlock detection reporting "
             "(absl) and off (absl_off); ns per lock+unlock pair")

    # Channels: crossbeam-channel's shapes.
    def chan(shape, cap_label, cap_arg, n, threads=None, chans=None):
        args = ["--n", str(n), "--cap", cap_arg, "--rounds", "1"]
        tag = f"chan_{shape}/{cap_label}"
        title = f"channel {shape}, capacity {cap_label}"
        if threads:
            args += ["--threads", str(threads)]
            tag += f"/t{threads}"
            title += f", T={threads}"
        if chans:
            args += ["--chans", str(chans)]
            tag = f"chan_select/k{chans}/{cap_label}"
            title = f"select over {chans} channels, capacity {cap_label}"
        runs = [("rs", f"chan_{shape}", args), ("c", f"chan_{shape}", args), ("cg", f"chan_{shape}", args)]
        rows = [("rs/weft", "rs/crossbeam", CROSSBEAM)]
        if shape != "select":
            rows.append(("rs/weft", "rs/flume", None))
        if cap_arg != "unbounded":  # Go has no unbounded channel
            runs.append(("go", f"chan_{shape}", args))
            rows.append(("c/weft", "go/go", GO))
            rows.append(("cg/weft", "go/go", GO))
        shapes = {
            "seq": "one thread sends n, then receives n",
            "spsc": "one producer sends n, the main thread receives",
            "mpsc": f"{threads} producers send n/{threads} each, the main thread receives",
            "mpmc": f"{threads} producers send n/{threads} each, {threads} consumers receive n/{threads} each",
            "select": f"{chans} channels, one producer each sending n/{chans}; the main thread receives all with "
                      f"one select over {chans} receive cases (weft_select, crossbeam Select built once, Go select "
                      "statement)",
        }
        what = (f"{shapes[shape]}; n = {n} usize messages, capacity {cap_label}; ns per message, from before the "
                "first spawn to after the last join. weft vs crossbeam/flume: weft's channels through the C ABI "
                "from Rust threads, in the same process; weft vs Go: weft from C (weft tasks) and Go (goroutines) "
                "in alternating processes")
        case(tag, title, runs, rows, what)

    big, sync_n, sel_n = s["msgs"], s["msgs_sync"], s["msgs_select"]
    chan("seq", "N", str(big), big)
    chan("seq", "unbounded", "unbounded", big)
    for cap_label, cap_arg, n in (("0", "0", sync_n), ("1", "1", sync_n), ("N", str(big), big),
                                  ("unbounded", "unbounded", big)):
        chan("spsc", cap_label, cap_arg, n)
        for t in (2, 4):
            chan("mpsc", cap_label, cap_arg, n, threads=t)
            chan("mpmc", cap_label, cap_arg, n, threads=t)
    for k in (2, 16):
        chan("select", "1", "1", sel_n, chans=k)

    # The green platform (M:N tasks) against Go's goroutines, native and corosensei.
    r3 = ["--rounds", "1"]
    case("green/spawn_join", "spawn + join of an empty task, from a task",
         [("cg", "spawn_join_task", ["--n", str(s["spawn_task"])] + r3), ("c", "spawn_join_task", ["--n", str(s["spawn_task"] // 10)] + r3),
          ("go", "spawn_join", ["--n", str(s["spawn_task"])] + r3)],
         [("cg/weft", "go/go", None), ("cg/weft", "c/weft", None)],
         "a task (a goroutine) spawns an empty task and joins it, n times: weft_spawn+weft_join on green "
         "and on native (one OS thread per task) vs Go's `go f(); <-done`; ns per pair")
    for cap in ("0", "1"):
        case(f"green/pingpong/{cap}", f"channel ping-pong, capacity {cap}",
             [("cg", "chan_pingpong", ["--n", str(s["msgs_sync"]), "--cap", cap] + r3),
              ("c", "chan_pingpong", ["--n", str(s["msgs_sync"] // 10), "--cap", cap] + r3),
              ("go", "chan_pingpong", ["--n", str(s["msgs_sync"]), "--cap", cap] + r3)],
             [("cg/weft", "go/go", GO), ("c/weft", "go/go", None)],
             f"two tasks (goroutines) hand one message back and forth over two channels of capacity {cap}; "
             "ns per round trip")
    case("green/pipeline", "a producer and a consumer that compute",
         [("cg", "chan_pipeline", ["--n", str(s["pipeline"]), "--cap", "64"] + r3),
          ("c", "chan_pipeline", ["--n", str(s["pipeline"]), "--cap", "64"] + r3),
          ("go", "chan_pipeline", ["--n", str(s["pipeline"]), "--cap", "64"] + r3)],
         [("cg/weft", "go/go", None), ("cg/weft", "c/weft", None)],
         "a producer task (goroutine) computes 20 us per message and sends it on a channel of capacity 64, a "
         "consumer receives it and computes 20 us; ns per message (20,000 when the two run side by side on two "
         "CPUs, 40,000 when one waits for the other)")
    case("green/parked_rss", "memory per parked task",
         [("cg", "parked_rss", ["--n", str(s["parked"])] + r3), ("go", "parked_rss", ["--n", str(s["parked"])] + r3)],
         [("cg/weft", "go/go", None)],
         f"{s['parked']} tasks (goroutines) parked at once in a receive on one channel; (RSS + page tables with all "
         "parked - the same at the start of the process) / tasks, in bytes (goal: at most 4096 on green)")
    case("green/yield_switch", "context switch: yield between two tasks",
         [("cg", "yield_switch", ["--n", str(s["switch"])] + r3), ("rs", "yield_switch", ["--n", str(s["switch"])] + r3)],
         [("cg/weft", "rs/corosensei", None)],
         "two tasks on a one-worker green runtime call weft_yield in turn, vs two bare corosensei coroutines "
         "resumed in turn by one thread; ns per switch from one to the other")
    case("green/skynet", "skynet: a tree of tasks",
         [("cg", "skynet", ["--n", str(s["skynet"])] + r3), ("go", "skynet", ["--n", str(s["skynet"])] + r3)],
         [("cg/weft", "go/go", None)],
         f"a tree of {s['skynet']} leaf tasks (goroutines): each inner task spawns 10 and adds up what they "
         "return; ms per tree")
    return cases


# ---- running ------------------------------------------------------------------------

def variants_of(binary):
    """{kind: [variants]} as the binary lists them; {} if it is missing."""
    if not os.path.exists(BINS[binary]):
        return {}
    out = subprocess.run([BINS[binary], "--list"], capture_output=True, text=True, check=True).stdout
    kinds = {}
    for line in out.splitlines():
        kind, _, names = line.partition(":")
        kinds[kind.strip()] = names.split()
    return kinds


def invoke(binary, kind, args, timeout):
    cmd = [BINS[binary], kind] + args
    env = dict(os.environ, **ENV.get(binary, {}))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_round_trip():
    """The machine's CPU-to-CPU round trip of a cache line, in ns (benches/c/machine.c),
    or None (fewer than two CPUs, or the C program is not built). This machine switches
    between a fast and a slow mode as the host moves its virtual CPUs, and every figure
    that moves cache lines between CPUs moves with it: the driver records the round trip
    before and after each case, so that a row can be read with the mode it ran in."""
    try:
        res = invoke("c", "cpu_round_trip", ["--n", "20000", "--rounds", "1"], timeout=60)
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired):
        return None
    ns = res["samples"]["line"][0]
    return round(ns, 1) if ns > 0 else None


def run_case(c, available, rounds, budget, timeout):
    """Runs one case; returns {sample_set: [values]}, {sample_set: [extra]}, units, the
    runs that are not built, the rounds made and the errors. A multi-process case makes
    no round that would take it past `budget` seconds (at the rate of its rounds so far;
    the first round is always made), so that a slow implementation cannot stretch the
    full run past its time limit."""
    samples, extra, units, errors = {}, {}, {}, []
    runs = [run for run in c["runs"] if run[1] in available.get(run[0], {})]
    skipped = [f"{LANG[run[0]]} {run[1]}" for run in c["runs"] if run not in runs]
    n_rounds = 1 if len(c["runs"]) == 1 else rounds  # a multi-process case interleaves rounds
    t0 = time.time()
    made = 0
    for rnd in range(n_rounds):
        if made and (time.time() - t0) * (made + 1) / made > budget:
            break  # another round would take the case past its budget
        made += 1
        order = runs[rnd % len(runs):] + runs[:rnd % len(runs)] if runs else []
        for binary, kind, args in order:
            try:
                res = invoke(binary, kind, args, timeout=timeout)
            except subprocess.TimeoutExpired:
                errors.append(f"{LANG[binary]} {kind}: no answer within {timeout} s")
                continue
            except (RuntimeError, ValueError) as e:
                errors.append(str(e))
                continue
            units[binary] = res["unit"]
            if "extra_unit" in res:
                units[binary + ":extra"] = res["extra_unit"]
            for name, vals in res["samples"].items():
                samples.setdefault(f"{binary}/{name}", []).extend(vals)
            for name, vals in res.get("extra", {}).items():
                extra.setdefault(f"{binary}/{name}", []).extend(vals)
    return samples, extra, units, skipped, made, errors


def median_of(samples, extra, key):
    base, _, which = key.partition(":")
    source = extra if which == "extra" else samples
    vals = source.get(base)
    return (statistics.median(vals), vals) if vals else (None, None)


def verdict(g, ratio, delta):
    if g is None or ratio is None:
        return None
    x = delta if g["on"] == "delta" else ratio
    return x <= g["value"] if g["op"] == "<=" else x >= g["value"]


# ---- output -------------------------------------------------------------------------

def fmt(v, sep=""):
    """A figure in 3 significant digits, with M or k (after `sep`) for large ones."""
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}{sep}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}{sep}k"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def machine_info():
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                k = k.strip()
                if k == "model name" and "cpu" not in info:
                    info["cpu"] = v.strip()
                elif k == "cache size" and "cache" not in info:
                    info["cache"] = v.strip()
                elif k == "flags" and "hypervisor" not in info:
                    info["hypervisor"] = "hypervisor" in v.split()
    except OSError:
        pass
    info["glibc"] = " ".join(platform.libc_ver())
    for name, cmd in (("rustc", ["rustc", "--version"]), ("go", ["go", "version"]), ("cc", ["cc", "--version"])):
        try:
            info[name] = subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            info[name] = None
    return info


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


def round_trip_text(row):
    """'round trip 71/70 ns': the machine's CPU-to-CPU round trip before and after the
    row's case (see cpu_round_trip)."""
    trip = row.get("cpu_round_trip_ns") or [None, None]
    return "round trip " + "/".join("-" if v is None else f"{v:.0f}" for v in trip) + " ns"


def print_table(rows):
    from report import short_unit
    head = ("case", "figure", "weft", "peer", "weft/peer", "goal", "")
    lines = []
    for r in rows:
        unit = short_unit(r["unit"])
        if r["status"] != "ok":
            lines.append((r["title"], unit, "-", r["peer_label"] + " " + fmt(r["peer_median"]), r["status"],
                          r["goal_text"], ""))
            continue
        mark = {True: "meets", False: "MISSES", None: ""}[r["meets"]]
        if r.get("fairness"):
            spread = ", ".join(f"{k} {fmt(v)}%" for k, v in r["fairness"].items() if v is not None)
            mark = (mark + "  " if mark else "") + f"(spread {spread}; {round_trip_text(r)})"
        ratio = f"{r['ratio']:.3g}"
        if r["goal"] and r["goal"]["on"] == "delta":
            ratio += f" ({r['delta']:+.2f} ns)"
        lines.append((r["title"], unit, fmt(r["weft_median"]), f"{r['peer_label']} {fmt(r['peer_median'])}", ratio,
                      r["goal_text"], mark))
    widths = [max(len(str(x[i])) for x in lines + [head]) for i in range(len(head))]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    last_case = None
    for r, line in zip(rows, lines):
        if r["case"] != last_case and last_case is not None and r["case"].split("/")[0] != last_case.split("/")[0]:
            print()
        last_case = r["case"]
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke-run sizes (under a minute)")
    ap.add_argument("--only", help="run only the cases whose id contains this")
    ap.add_argument("--out", default=os.path.join(ROOT, "target/bench"), help="where results.json/.svg go")
    opts = ap.parse_args()

    s = sizes(opts.quick)
    cases = build_cases(s)
    if opts.only:
        cases = [c for c in cases if opts.only in c["id"]]
    available = {b: variants_of(b) for b in BINS}
    started = time.time()
    load_before = loadavg()
    print(f"weft benchmarks ({'quick' if opts.quick else 'full'}): {len(cases)} cases; load average "
          f"{load_before} on {os.cpu_count()} CPUs", file=sys.stderr)

    out_cases, rows, failures = [], [], []
    for i, c in enumerate(cases):
        t0 = time.time()
        # The whole run keeps to its budget: the multi-process cases left share what
        # remains of it (a case always makes at least one round).
        multi_left = sum(1 for later in cases[i:] if len(later["runs"]) > 1)
        budget = s["case_budget_s"]
        if len(c["runs"]) > 1:
            budget = min(budget, max(0.0, (started + s["total_budget_s"] - t0) / multi_left))
        round_trip = [cpu_round_trip()]
        samples, extra, units, skipped, made, errors = run_case(c, available, s["chan_rounds"], budget, timeout=4 * s["case_budget_s"])
        round_trip.append(cpu_round_trip())
        print(f"  [{i + 1}/{len(cases)}] {c['id']}: {time.time() - t0:.1f} s", file=sys.stderr)
        for e in errors:
            print(f"    FAILED: {e}", file=sys.stderr)
        failures += errors
        meds = {k: statistics.median(v) for k, v in samples.items()}
        xmeds = {k: statistics.median(v) for k, v in extra.items()}
        out_cases.append(dict(id=c["id"], title=c["title"], what=c["what"],
                              runs=[dict(binary=b, kind=k, args=a) for b, k, a in c["runs"]],
                              units=units, samples=samples, extra=extra, medians=meds, extra_medians=xmeds,
                              not_built=skipped, errors=errors, process_rounds=made,
                              cpu_round_trip_ns=round_trip,
                              budget_s=round(budget, 1), seconds=round(time.time() - t0, 2)))
        for weft_key, peer_key, g, *note in c["rows"]:
            wm, _ = median_of(samples, extra, weft_key)
            pm, _ = median_of(samples, extra, peer_key)
            binary = weft_key.split("/")[0]
            unit_key = binary + (":extra" if weft_key.endswith(":extra") else "")
            unit = units.get(unit_key) or units.get(peer_key.split("/")[0])
            peer_name = peer_key.split("/")[1].split(":")[0]
            suffix = " [stop+resume]" if weft_key.endswith(":extra") else ""
            suffix += "".join(f" [{n}]" for n in note)
            row = dict(case=c["id"], title=c["title"] + suffix,
                       weft=weft_key, peer=peer_key, peer_label=peer_name, unit=unit,
                       weft_median=wm, peer_median=pm, ratio=None, delta=None, goal=g,
                       goal_text=g["text"] if g else "", meets=None, status="ok")
            if wm is None and errors:
                row["status"] = "failed"
            elif wm is None:
                # The only weft side that can be absent is the channel API (not in weft.h yet).
                row["status"] = "not built"
            elif pm is None:
                row["status"] = "peer missing"
            else:
                row["ratio"] = wm / pm
                row["delta"] = wm - pm
                row["meets"] = verdict(g, row["ratio"], row["delta"])
            row["cpu_round_trip_ns"] = round_trip
            if "mutex_contended" in c["id"]:
                row["fairness"] = {weft_key.split("/")[1]: xmeds.get(weft_key), peer_name: xmeds.get(peer_key)}
                row["better"] = "higher"
            else:
                row["better"] = "lower"
            rows.append(row)

    duration = time.time() - started
    result = dict(
        mode="quick" if opts.quick else "full",
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(duration, 1),
        machine=machine_info(),
        load_average_before=load_before,
        load_average_after=loadavg(),
        ratio="weft median / peer median of the same figure; medians of interleaved repeated runs",
        sizes=s,
        cases=out_cases,
        rows=rows,
        failures=failures,
    )
    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import chart
    with open(os.path.join(opts.out, "results.svg"), "w") as f:
        f.write(chart.svg(result))

    print_table(rows)
    print()
    print("weft/peer is the ratio of the medians of the figure each row names (see results.json 'what' and 'unit');")
    print("time figures (ns, us): below 1 means weft is faster; throughput (contended mutex, ops/s): above 1 means")
    print("weft is faster. Contended rows end with each side's median fairness spread, (max-min)/mean ops per thread,")
    print("and the machine's CPU-to-CPU round trip of a cache line before/after the case (its mode: about 70 ns or 350 ns here).")
    print(f"ran {duration:.0f} s; load average before {load_before}, after {result['load_average_after']}")
    print(f"wrote {os.path.join(opts.out, 'results.json')} and {os.path.join(opts.out, 'results.svg')}")
    if failures:
        print(f"{len(failures)} benchmark run(s) FAILED:", *failures, sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main()
