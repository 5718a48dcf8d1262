/* Structured parallelism:
 *   parallel_sum:  sum of a cheap function over [0, n): weft_parallel_for (grain chosen
 *                  by weft) vs OpenMP's `parallel for reduction` vs a serial loop. */
#include <pthread.h>
#include <stdatomic.h>

#include "bench.h"

static inline uint64_t f(size_t i) { return (uint64_t)i * 2654435761u ^ (uint64_t)i >> 3; }

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
  int32_t code;
  int64_t t0 = now_ns();
  CHECK(weft_parallel_for(bench_rt, 0, (size_t)p->n, 0, sum_body, &s, &code));
  int64_t t1 = now_ns();
  if (code != 0 || s != serial_sum(p->n)) die("weft_parallel_for sum", 1);
  return (sample_t){(double)(t1 - t0) / 1e3, 0};
}

static sample_t sum_serial(const params_t *p) {
  int64_t t0 = now_ns();
  uint64_t s = serial_sum(p->n);
  int64_t t1 = now_ns();
  keep(s);
  return (sample_t){(double)(t1 - t0) / 1e3, 0};
}

#ifdef _OPENMP
static sample_t sum_openmp(const params_t *p) {
  uint64_t s = 0;
  long n = p->n;
  int64_t t0 = now_ns();
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (long i = 0; i < n; i++) s += f((size_t)i);
  int64_t t1 = now_ns();
  if (s != serial_sum(p->n)) die("openmp sum", 1);
  return (sample_t){(double)(t1 - t0) / 1e3, 0};
}
#endif

void register_parallel_kinds(void) {
  bench_register(&(kind_t){
      .kind = "parallel_sum",
      .unit = "us per sum over [0, n)",
      .better = "lower",
      .variants = {{"weft", sum_weft},
                   {"serial", sum_serial},
#ifdef _OPENMP
                   {"openmp", sum_openmp}
#endif
      },
  });
}
