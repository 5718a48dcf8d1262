/* The cost of the call path host -> libweft -> plugin. weft has no no-op entry point,
 * so two of the cheapest real calls that reach the plugin are timed against the call
 * the plugin itself makes:
 *   now:   weft_now(rt) (argument checks, panic boundary, the plugin's `now` through the
 *          table, which calls clock_gettime(CLOCK_MONOTONIC)) vs clock_gettime called
 *          directly; the difference is the call path.
 *   yield: weft_yield(rt) (the plugin calls sched_yield) vs sched_yield directly.
 * And the per-task state read a VM makes on every bytecode:
 *   local: weft_local_get(key) (a task-local slot, which follows a green task from
 *          worker to worker) and weft.h's inline weft_task_state() (the task's state
 *          pointer) vs a plain `__thread` pointer read by the program itself. */
#include <sched.h>

#include "bench.h"

static sample_t now_weft(const params_t *p) {
  uint64_t acc = 0;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    int64_t v = weft_now(bench_rt);
    if (__builtin_expect(v < 0, 0)) die("weft_now", 1);
    acc += (uint64_t)v;
  }
  int64_t t1 = now_ns();
  keep(acc);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t now_direct(const params_t *p) {
  uint64_t acc = 0;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    struct timespec ts;
    if (__builtin_expect(clock_gettime(CLOCK_MONOTONIC, &ts) != 0, 0)) die("clock_gettime", 1);
    acc += (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  }
  int64_t t1 = now_ns();
  keep(acc);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t yield_weft(const params_t *p) {
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    if (__builtin_expect(weft_yield(bench_rt) != WEFT_OK, 0)) die("weft_yield", 1);
  }
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t yield_direct(const params_t *p) {
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    if (__builtin_expect(sched_yield() != 0, 0)) die("sched_yield", 1);
  }
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

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
