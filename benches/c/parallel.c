/* Structured parallelism, parking and the checks:
 *   parallel_sum:  sum of a cheap function over [0, n): weft_parallel_for (grain chosen
 *                  by weft) vs OpenMP's `parallel for reduction` vs a serial loop;
 *   park_lock:     a one-byte lock (the WTF::Lock pattern) on weft_park/weft_unpark vs the
 *                  same lock on the raw futex syscall, T threads contending;
 *   checks_lock:   weft_mutex lock+unlock, uncontended, in a runtime with the lock-order
 *                  and deadlock checks on vs off vs glibc's PTHREAD_MUTEX_ERRORCHECK. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

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

/* ---- park_lock ---- */

typedef struct {
  _Atomic uint32_t word; /* 0 free, 1 held, 2 held with waiters */
  long count;
  int start;
} lock_t;

static bool still_contended(void *ud) { return atomic_load((_Atomic uint32_t *)ud) == 2; }

static void park_lock(lock_t *l) {
  uint32_t free_ = 0;
  if (atomic_compare_exchange_strong(&l->word, &free_, 1)) return;
  while (atomic_exchange(&l->word, 2) != 0)
    weft_park(bench_rt, (const void *)&l->word, still_contended, (void *)&l->word, WEFT_FOREVER);
}

static void park_unlock(lock_t *l) {
  if (atomic_exchange(&l->word, 0) == 2) weft_unpark(bench_rt, (const void *)&l->word, 1);
}

static void futex_lock(lock_t *l) {
  uint32_t free_ = 0;
  if (atomic_compare_exchange_strong(&l->word, &free_, 1)) return;
  while (atomic_exchange(&l->word, 2) != 0) syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

static void futex_unlock(lock_t *l) {
  if (atomic_exchange(&l->word, 0) == 2) syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

typedef struct {
  lock_t *lock;
  long n;
  int park;
} locker_t;

static void *lock_loop(void *arg) {
  locker_t *k = arg;
  spin_until_set(&k->lock->start);
  for (long i = 0; i < k->n; i++) {
    if (k->park) park_lock(k->lock);
    else futex_lock(k->lock);
    k->lock->count++;
    if (k->park) park_unlock(k->lock);
    else futex_unlock(k->lock);
  }
  return NULL;
}

static sample_t run_locks(const params_t *p, int park) {
  enum { MAX_T = 16 };
  int threads = p->threads > 0 && p->threads <= MAX_T ? p->threads : 2;
  lock_t lock = {0};
  locker_t k[MAX_T];
  pthread_t t[MAX_T];
  for (int i = 0; i < threads; i++) {
    k[i] = (locker_t){&lock, p->n, park};
    if (pthread_create(&t[i], NULL, lock_loop, &k[i]) != 0) die("pthread_create", 1);
  }
  int64_t t0 = now_ns();
  __atomic_store_n(&lock.start, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  int64_t t1 = now_ns();
  if (lock.count != p->n * threads) die("lock count", 1);
  return (sample_t){(double)(t1 - t0) / (double)(p->n * threads), 0};
}

static sample_t lock_park(const params_t *p) { return run_locks(p, 1); }
static sample_t lock_futex(const params_t *p) { return run_locks(p, 0); }

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
      .kind = "park_lock",
      .unit = "ns per lock+unlock pair, T threads contending on a one-byte lock",
      .better = "lower",
      .variants = {{"weft", lock_park}, {"futex", lock_futex}},
  });
  bench_register(&(kind_t){
      .kind = "checks_lock",
      .unit = "ns per uncontended weft_mutex lock+unlock pair",
      .better = "lower",
      .variants = {{"weft", checks_off}, {"checked", checks_on}, {"errorcheck", uncontended_errorcheck}},
  });
}
