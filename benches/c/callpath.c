/* The cost of the call path host -> libweft -> plugin. weft has no no-op entry point,
 * so two of the cheapest real calls that reach the plugin are timed against the call
 * the plugin itself makes:
 *   now:   weft_now(rt) (argument checks, then CLOCK_MONOTONIC read by libweft through
 *          the vDSO's clock_gettime where the plugin claims WEFT_CAP_MONOTONIC_CLOCK,
 *          else the plugin's `now` through the table) vs glibc's clock_gettime
 *          called directly; the difference is the call path.
 *   yield: weft_yield(rt) (on OS threads a safepoint poll, then sched_yield, which
 *          libweft makes itself when the plugin claims WEFT_CAP_SCHED_YIELD) vs
 *          sched_yield directly.
 * Both are timed in one loop that alternates blocks of calls of the two (A B, then B A):
 * the difference sought is a nanosecond or a few, and the machine drifts by more
 * between two loops (a sched_yield took 474 ns in one and 483 ns in the next):
 * `paired_sample` (paired.c).
 * And the per-task state read a VM makes on every bytecode:
 *   local: weft_local_get(key) (a task-local slot, which follows a green task from
 *          worker to worker) and weft.h's inline weft_task_state() (the task's state
 *          pointer) vs a plain `__thread` pointer read by the program itself. */
#include <sched.h>

#include "bench.h"

static uint64_t now_weft_block(long calls) {
  uint64_t acc = 0;
  for (long i = 0; i < calls; i++) {
    int64_t v = weft_now(bench_rt);
    if (__builtin_expect(v < 0, 0)) die("weft_now", 1);
    acc += (uint64_t)v;
  }
  return acc;
}

static uint64_t now_direct_block(long calls) {
  uint64_t acc = 0;
  for (long i = 0; i < calls; i++) {
    struct timespec ts;
    if (__builtin_expect(clock_gettime(CLOCK_MONOTONIC, &ts) != 0, 0)) die("clock_gettime", 1);
    acc += (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
  return acc;
}

static uint64_t yield_weft_block(long calls) {
  for (long i = 0; i < calls; i++) {
    if (__builtin_expect(weft_yield(bench_rt) != WEFT_OK, 0)) die("weft_yield", 1);
  }
  return 0;
}

static uint64_t yield_direct_block(long calls) {
  for (long i = 0; i < calls; i++) {
    if (__builtin_expect(sched_yield() != 0, 0)) die("sched_yield", 1);
  }
  return 0;
}

/* Blocks: about 6 us of clock reads, 15 us of yields (the clock's own read, a few tens
 * of ns, is then a small and equal part of both sides). */
static const block_fn now_sides[2] = {now_weft_block, now_direct_block};
static const block_fn yield_sides[2] = {yield_weft_block, yield_direct_block};
static paired_t now_pair, yield_pair;

static sample_t now_weft(const params_t *p) { return paired_sample(&now_pair, now_sides, 0, p, 256); }
static sample_t now_direct(const params_t *p) { return paired_sample(&now_pair, now_sides, 1, p, 256); }
static sample_t yield_weft(const params_t *p) { return paired_sample(&yield_pair, yield_sides, 0, p, 32); }
static sample_t yield_direct(const params_t *p) { return paired_sample(&yield_pair, yield_sides, 1, p, 32); }

static sample_t local_weft(const params_t *p) {
  static weft_key_t key;
  if (key == 0) CHECK(weft_key_create(bench_rt, NULL, &key));
  CHECK(weft_local_set(key, &key));
  uintptr_t acc = 0;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) acc += (uintptr_t)weft_local_get(key);
  int64_t t1 = now_ns();
  keep((uint64_t)acc);
  if (acc != (uintptr_t)&key * (uintptr_t)p->n) die("weft_local_get", 1);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t state_weft(const params_t *p) {
  static int mine;
  CHECK(weft_task_set_state(&mine));
  uintptr_t acc = 0;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) acc += (uintptr_t)weft_task_state();
  int64_t t1 = now_ns();
  keep((uint64_t)acc);
  if (acc != (uintptr_t)&mine * (uintptr_t)p->n) die("weft_task_state", 1);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static __thread void *thread_state;

static sample_t local_thread(const params_t *p) {
  thread_state = &thread_state;
  uintptr_t acc = 0;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    /* Read again every iteration, as across the calls of an interpreter loop. */
    __asm__ volatile("" ::: "memory");
    acc += (uintptr_t)thread_state;
  }
  int64_t t1 = now_ns();
  keep((uint64_t)acc);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

void register_callpath_kinds(void) {
  bench_register(&(kind_t){
      .kind = "callpath_local",
      .unit = "ns per read: weft_local_get(key), weft_task_state() vs a __thread pointer",
      .better = "lower",
      .variants = {{"weft", local_weft}, {"state", state_weft}, {"thread", local_thread}},
  });
  bench_register(&(kind_t){
      .kind = "callpath_now",
      .unit = "ns per call: weft_now(rt) vs clock_gettime(CLOCK_MONOTONIC)",
      .better = "lower",
      .variants = {{"weft", now_weft}, {"direct", now_direct}},
  });
  bench_register(&(kind_t){
      .kind = "callpath_yield",
      .unit = "ns per call: weft_yield(rt) vs sched_yield()",
      .better = "lower",
      .variants = {{"weft", yield_weft}, {"direct", yield_direct}},
  });
}
