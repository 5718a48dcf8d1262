/* Safepoints and stop-the-world (issue 6, item 9).
 *
 * sp_poll: a loop whose body is one 64-bit LCG step (a multiply and an add on a
 *   dependency chain), with WEFT_SAFEPOINT_POLL (never taken: no stop is requested) vs
 *   the same loop without it. ns per iteration.
 * stw: M mutators spin on LCG steps; weft's mutators are weft tasks that poll every 64
 *   steps, Boehm's are pthreads registered with GC_register_my_thread (Boehm stops
 *   them with signals, so they do not poll). The main thread (not a mutator) stops and
 *   resumes the world n times, 500 us apart: weft_stw_begin/weft_stw_end vs Boehm GC's
 *   GC_stop_world_external/GC_start_world_external. The figure is the median
 *   time-to-safepoint (the begin/stop call, until every mutator is stopped) in us; the
 *   extra figure is the median full stop+resume (begin to the return of end) in us. */
#define GC_THREADS
#define GC_NO_THREAD_REDIRECTS
#include <gc/gc.h>
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"

#define LCG(x) ((x) * 6364136223846793005ull + 1442695040888963407ull)

static sample_t poll_weft(const params_t *p) {
  CHECK(weft_thread_attach(bench_rt));
  const void *flag = weft_safepoint_flag(bench_rt);
  if (!flag) die("weft_safepoint_flag", 1);
  uint64_t x = 1;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    x = LCG(x);
    WEFT_SAFEPOINT_POLL(bench_rt, flag);
  }
  int64_t t1 = now_ns();
  keep(x);
  CHECK(weft_thread_detach(bench_rt));
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t poll_none(const params_t *p) {
  uint64_t x = 1;
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    x = LCG(x);
  }
  int64_t t1 = now_ns();
  keep(x);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

#define MAX_MUTATORS 64
#define GAP_NS 500000

typedef struct {
  int stop;
  int ready;
} stw_run_t;

static stw_run_t stw;

static int32_t weft_mutator(void *arg, void **result) {
  (void)result;
  const void *flag = weft_safepoint_flag(bench_rt);
  uint64_t x = (uint64_t)(uintptr_t)arg;
  __atomic_fetch_add(&stw.ready, 1, __ATOMIC_ACQ_REL);
  while (!__atomic_load_n(&stw.stop, __ATOMIC_RELAXED)) {
    for (int j = 0; j < 64; j++) x = LCG(x);
    WEFT_SAFEPOINT_POLL(bench_rt, flag);
  }
  keep(x);
  return 0;
}

static void *boehm_mutator(void *arg) {
  struct GC_stack_base sb;
  if (GC_get_stack_base(&sb) != GC_SUCCESS) die("GC_get_stack_base", 1);
  int rc = GC_register_my_thread(&sb);
  if (rc != GC_SUCCESS) die("GC_register_my_thread", rc);
  uint64_t x = (uint64_t)(uintptr_t)arg;
  __atomic_fetch_add(&stw.ready, 1, __ATOMIC_ACQ_REL);
  while (!__atomic_load_n(&stw.stop, __ATOMIC_RELAXED)) {
    for (int j = 0; j < 64; j++) x = LCG(x);
  }
  keep(x);
  GC_unregister_my_thread();
  return NULL;
}

static void gap(void) {
  struct timespec d = {.tv_sec = 0, .tv_nsec = GAP_NS};
  nanosleep(&d, NULL);
}

static void wait_ready(int m) {
  while (__atomic_load_n(&stw.ready, __ATOMIC_ACQUIRE) < m) gap();
}

static sample_t stw_weft(const params_t *p) {
  if (p->threads > MAX_MUTATORS) die("stw: at most 64 mutators", 1);
  stw = (stw_run_t){0, 0};
  weft_task_t *tasks[MAX_MUTATORS];
  for (int t = 0; t < p->threads; t++)
    CHECK(weft_spawn(bench_rt, weft_mutator, (void *)(uintptr_t)(t + 1), NULL, &tasks[t]));
  wait_ready(p->threads);
  double *tts = malloc(sizeof(double) * (size_t)p->n), *full = malloc(sizeof(double) * (size_t)p->n);
  if (!tts || !full) die("malloc", 1);
  for (long i = 0; i < p->n; i++) {
    gap();
    int64_t deadline = weft_deadline_after(bench_rt, 10000000000);
    int64_t t0 = now_ns();
    CHECK(weft_stw_begin(bench_rt, deadline));
    int64_t t1 = now_ns();
    CHECK(weft_stw_end(bench_rt));
    int64_t t2 = now_ns();
    tts[i] = (double)(t1 - t0) / 1e3;
    full[i] = (double)(t2 - t0) / 1e3;
  }
  __atomic_store_n(&stw.stop, 1, __ATOMIC_RELAXED);
  for (int t = 0; t < p->threads; t++) CHECK(weft_join(tasks[t], WEFT_FOREVER, NULL, NULL));
  sample_t s = {median_of(tts, p->n), median_of(full, p->n)};
  free(tts);
  free(full);
  return s;
}

static sample_t stw_boehm(const params_t *p) {
  static int gc_ready;
  if (!gc_ready) {
    GC_INIT();
    GC_allow_register_threads();
    gc_ready = 1;
  }
  if (p->threads > MAX_MUTATORS) die("stw: at most 64 mutators", 1);
  stw = (stw_run_t){0, 0};
  pthread_t threads[MAX_MUTATORS];
  for (int t = 0; t < p->threads; t++)
    CHECK(pthread_create(&threads[t], NULL, boehm_mutator, (void *)(uintptr_t)(t + 1)));
  wait_ready(p->threads);
  double *tts = malloc(sizeof(double) * (size_t)p->n), *full = malloc(sizeof(double) * (size_t)p->n);
  if (!tts || !full) die("malloc", 1);
  for (long i = 0; i < p->n; i++) {
    gap();
    int64_t t0 = now_ns();
    GC_stop_world_external();
    int64_t t1 = now_ns();
    GC_start_world_external();
    int64_t t2 = now_ns();
    tts[i] = (double)(t1 - t0) / 1e3;
    full[i] = (double)(t2 - t0) / 1e3;
  }
  __atomic_store_n(&stw.stop, 1, __ATOMIC_RELAXED);
  for (int t = 0; t < p->threads; t++) CHECK(pthread_join(threads[t], NULL));
  sample_t s = {median_of(tts, p->n), median_of(full, p->n)};
  free(tts);
  free(full);
  return s;
}

void register_safepoint_kinds(void) {
  bench_register(&(kind_t){
      .kind = "sp_poll",
      .unit = "ns per loop iteration (one LCG step), with an untaken WEFT_SAFEPOINT_POLL vs none",
      .better = "lower",
      .variants = {{"weft", poll_weft}, {"nopoll", poll_none}},
  });
  bench_register(&(kind_t){
      .kind = "stw",
      .unit = "us time-to-safepoint (median over the stops of a run)",
      .better = "lower",
      .extra_unit = "us full stop+resume (median over the stops of a run)",
      .default_n = 100,
      .variants = {{"weft", stw_weft}, {"boehm", stw_boehm}},
  });
}
