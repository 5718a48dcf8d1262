/* Structured parallelism and the checks:
 *   parallel_sum:  sum of a cheap function over [0, n): weft_parallel_for (grain chosen
 *                  by weft) vs OpenMP's `parallel for reduction` vs a serial loop;
 *   checks_lock:   weft_mutex lock+unlock, uncontended, in a runtime with the lock-order
 *                  and deadlock checks on vs off vs glibc's PTHREAD_MUTEX_ERRORCHECK. */
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

/* ---- checks_lock ---- */

static weft_runtime_t *checked_rt;

static sample_t weft_pairs(const params_t *p, weft_runtime_t *rt) {
  weft_mutex_t m;
  CHECK(weft_mutex_init(rt, &m, 0));
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    if (__builtin_expect(weft_mutex_lock(&m) != WEFT_OK, 0)) die("weft_mutex_lock", 1);
    weft_mutex_unlock(&m);
  }
  int64_t t1 = now_ns();
  CHECK(weft_mutex_destroy(&m));
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t checks_off(const params_t *p) { return weft_pairs(p, bench_rt); }

static sample_t checks_on(const params_t *p) {
  if (checked_rt == NULL) {
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.flags = WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK;
    CHECK(weft_runtime_open(&cfg, &checked_rt));
  }
  return weft_pairs(p, checked_rt);
}

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
  bench_register(&(kind_t){
      .kind = "checks_lock",
      .unit = "ns per uncontended weft_mutex lock+unlock pair",
      .better = "lower",
      .variants = {{"weft", checks_off}, {"checked", checks_on}, {"errorcheck", uncontended_errorcheck}},
  });
}
