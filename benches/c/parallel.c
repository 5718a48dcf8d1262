/* Structured parallelism (the Rust side has the rayon rows: benches/rust/src/par.rs):
 *   parallel_sum:  sum of a cheap function over [0, n): weft_parallel_for (grain chosen
 *                  by weft) vs OpenMP's `parallel for reduction` vs oneTBB's
 *                  parallel_reduce (tbb_par.cc) vs the same body called once over the
 *                  whole range (`run_serially`);
 *   parallel_map:  out[i] = in[i] * 1.5 + 1 over float arrays of n: the same four;
 *   group_spawn:   a weft_group of n empty tasks, spawned then waited for (Go's
 *                  WaitGroup row is in benches/go). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "bench.h"

/* How many calls one sample times, back to back: enough to cover 10^5 elements. A
 * single call over 10^3 elements lasts 0.3-1 us, which this machine's clock reads
 * (some 25 ns each, in 10-20 ns steps) and the peers' threads still spinning from the
 * previous variant (OpenMP's, oneTBB's) would decide; a batch measures what each call
 * costs a program that makes such calls in a loop. Larger ranges are one call. The
 * Rust side (par.rs) uses the same rule. */
static long calls_per_sample(long n) { return n >= 100000 ? 1 : 100000 / n; }

static sample_t per_call(int64_t t0, int64_t t1, long calls) {
  return (sample_t){(double)(t1 - t0) / 1e3 / (double)calls, 0};
}

/* calls_per_sample(n) calls of weft_parallel_for over [0, n), timed; dies if a body
 * failed. */
static sample_t timed_weft_calls(long n, weft_range_fn body, void *ud, const char *what) {
  long calls = calls_per_sample(n);
  int32_t code = 0, failed = 0;
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) {
    CHECK(weft_parallel_for(bench_rt, 0, (size_t)n, 0, body, ud, &code));
    failed |= code;
  }
  int64_t t1 = now_ns();
  if (failed != 0) die(what, 1);
  return per_call(t0, t1, calls);
}

/* The serial rows run the very body the weft rows give weft_parallel_for, called once
 * over the whole range through a pointer the compiler cannot see through: the loop is
 * then the same bytes on both sides, and the row measures what weft adds. A serial loop
 * inlined into its caller is laid out apart: on this machine the sum's body loop
 * crossed a 64-byte boundary where the inlined copy did not, ran some 1.4x slower per
 * element, and the row charged that to weft_parallel_for (docs/performance.md, "The
 * serial rows run the weft rows' body"). */
static void run_serially(weft_range_fn body, long n, void *ud) {
  weft_range_fn volatile call = body;
  if (call(0, (size_t)n, ud) != 0) die("serial body", 1);
}

uint64_t bench_sum_term(size_t i) { return (uint64_t)i * 2654435761u ^ (uint64_t)i >> 3; }
#define f bench_sum_term

/* ---- parallel_sum ---- */

static int32_t sum_body(size_t begin, size_t end, void *ud) {
  uint64_t s = 0;
  for (size_t i = begin; i < end; i++) s += f(i);
  __atomic_fetch_add((uint64_t *)ud, s, __ATOMIC_RELAXED);
  return 0;
}

static uint64_t serial_sum(long n) {
  uint64_t s = 0;
  for (long i = 0; i < n; i++) s += f((size_t)i);
  return s;
}

static sample_t sum_weft(const params_t *p) {
  uint64_t s = 0;
  sample_t sample = timed_weft_calls(p->n, sum_body, &s, "weft_parallel_for sum");
  if (s != serial_sum(p->n) * (uint64_t)calls_per_sample(p->n)) die("weft_parallel_for sum", 1);
  return sample;
}

static sample_t sum_serial(const params_t *p) {
  long calls = calls_per_sample(p->n);
  uint64_t s = 0;
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) run_serially(sum_body, p->n, &s);
  int64_t t1 = now_ns();
  if (s != serial_sum(p->n) * (uint64_t)calls) die("serial sum", 1);
  return per_call(t0, t1, calls);
}

#ifdef _OPENMP
static sample_t sum_openmp(const params_t *p) {
  long calls = calls_per_sample(p->n);
  uint64_t s = 0;
  long n = p->n;
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) {
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (long i = 0; i < n; i++) s += f((size_t)i);
  }
  int64_t t1 = now_ns();
  if (s != serial_sum(p->n) * (uint64_t)calls) die("openmp sum", 1);
  return per_call(t0, t1, calls);
}
#endif

static sample_t sum_tbb(const params_t *p) {
  long calls = calls_per_sample(p->n);
  uint64_t s = 0;
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) s += tbb_sum((size_t)p->n);
  int64_t t1 = now_ns();
  if (s != serial_sum(p->n) * (uint64_t)calls) die("tbb sum", 1);
  return per_call(t0, t1, calls);
}

/* ---- parallel_map ---- */

static float *map_in, *map_out;
static long map_len;

/* The arrays for n elements, made (and touched) once: no run pays page faults. */
static void map_arrays(long n) {
  if (map_len >= n) return;
  free(map_in);
  free(map_out);
  map_in = malloc(sizeof(float) * (size_t)n);
  map_out = malloc(sizeof(float) * (size_t)n);
  if (!map_in || !map_out) die("malloc", 1);
  for (long i = 0; i < n; i++) {
    map_in[i] = (float)(i % 1000);
    map_out[i] = 0;
  }
  map_len = n;
}

static void map_check(long n) {
  for (long i = 0; i < n; i += 1 + n / 1000)
    if (map_out[i] != map_in[i] * 1.5f + 1.0f) die("parallel_map: wrong element", 1);
}

static int32_t map_body(size_t begin, size_t end, void *ud) {
  (void)ud;
  for (size_t i = begin; i < end; i++) map_out[i] = map_in[i] * 1.5f + 1.0f;
  return 0;
}

static sample_t map_weft(const params_t *p) {
  map_arrays(p->n);
  sample_t sample = timed_weft_calls(p->n, map_body, NULL, "weft_parallel_for map");
  map_check(p->n);
  return sample;
}

static sample_t map_serial(const params_t *p) {
  map_arrays(p->n);
  long calls = calls_per_sample(p->n);
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) run_serially(map_body, p->n, NULL);
  int64_t t1 = now_ns();
  map_check(p->n);
  return per_call(t0, t1, calls);
}

#ifdef _OPENMP
static sample_t map_openmp(const params_t *p) {
  map_arrays(p->n);
  long calls = calls_per_sample(p->n);
  long n = p->n;
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) {
#pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++) map_out[i] = map_in[i] * 1.5f + 1.0f;
  }
  int64_t t1 = now_ns();
  map_check(p->n);
  return per_call(t0, t1, calls);
}
#endif

static sample_t map_tbb(const params_t *p) {
  map_arrays(p->n);
  long calls = calls_per_sample(p->n);
  int64_t t0 = now_ns();
  for (long c = 0; c < calls; c++) tbb_map(map_in, map_out, (size_t)p->n);
  int64_t t1 = now_ns();
  map_check(p->n);
  return per_call(t0, t1, calls);
}

/* ---- group_spawn ---- */

static int32_t empty_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static sample_t group_weft(const params_t *p) {
  weft_group_t *g;
  int64_t t0 = now_ns();
  CHECK(weft_group_new(bench_rt, &g));
  for (long i = 0; i < p->n; i++) CHECK(weft_group_spawn(g, empty_task, NULL, NULL));
  int32_t code = -1;
  CHECK(weft_group_wait(g, WEFT_FOREVER, &code));
  CHECK(weft_group_free(g));
  int64_t t1 = now_ns();
  if (code != 0) die("group code", 1);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

void register_parallel_kinds(void) {
  bench_register(&(kind_t){
      .kind = "parallel_sum",
      .unit = "us per sum over [0, n)",
      .better = "lower",
      .variants = {{"weft", sum_weft},
                   {"serial", sum_serial},
                   {"tbb", sum_tbb},
#ifdef _OPENMP
                   {"openmp", sum_openmp}
#endif
      },
  });
  bench_register(&(kind_t){
      .kind = "parallel_map",
      .unit = "us per map of n floats",
      .better = "lower",
      .variants = {{"weft", map_weft},
                   {"serial", map_serial},
                   {"tbb", map_tbb},
#ifdef _OPENMP
                   {"openmp", map_openmp}
#endif
      },
  });
  bench_register(&(kind_t){
      .kind = "group_spawn",
      .unit = "ns per task: a group of n empty tasks, spawned and waited for",
      .better = "lower",
      .default_n = 10000,
      .variants = {{"weft", group_weft}},
  });
}
