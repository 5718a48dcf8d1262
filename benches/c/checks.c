/* checks_lock: weft_mutex lock+unlock, uncontended, with the lock-order and deadlock
 * checks off and on, L nested locks per iteration (taken in order, released in
 * reverse: every lock after the first is an order edge for the checks), vs glibc's
 * PTHREAD_MUTEX_ERRORCHECK mutex and absl::Mutex with its deadlock detection on (and
 * off, for scale; absl_lock.cc). The figure is per lock+unlock pair. */
#include <pthread.h>

#include "bench.h"

#define MAX_NEST 8

static weft_runtime_t *checked_rt;

static int nest_of(const params_t *p) { return p->locks < MAX_NEST ? p->locks : MAX_NEST; }

static sample_t weft_nested(const params_t *p, weft_runtime_t *rt) {
  int nest = nest_of(p);
  weft_mutex_t m[MAX_NEST];
  for (int k = 0; k < nest; k++) CHECK(weft_mutex_init(rt, &m[k], 0));
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    for (int k = 0; k < nest; k++)
      if (__builtin_expect(weft_mutex_lock(&m[k]) != WEFT_OK, 0)) die("weft_mutex_lock", 1);
    for (int k = nest - 1; k >= 0; k--)
      if (__builtin_expect(weft_mutex_unlock(&m[k]) != WEFT_OK, 0)) die("weft_mutex_unlock", 1);
  }
  int64_t t1 = now_ns();
  for (int k = 0; k < nest; k++) CHECK(weft_mutex_destroy(&m[k]));
  return (sample_t){(double)(t1 - t0) / (double)(p->n * nest), 0};
}

static sample_t checks_off(const params_t *p) { return weft_nested(p, bench_rt); }

static sample_t checks_on(const params_t *p) {
  if (checked_rt == NULL) {
    weft_config_t cfg;
    weft_config_init(&cfg);
    cfg.flags = WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK;
    CHECK(weft_runtime_open(&cfg, &checked_rt));
  }
  return weft_nested(p, checked_rt);
}

static sample_t errorcheck_nested(const params_t *p) {
  int nest = nest_of(p);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m[MAX_NEST];
  for (int k = 0; k < nest; k++) pthread_mutex_init(&m[k], &a);
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    for (int k = 0; k < nest; k++)
      if (__builtin_expect(pthread_mutex_lock(&m[k]) != 0, 0)) die("pthread_mutex_lock", 1);
    for (int k = nest - 1; k >= 0; k--)
      if (__builtin_expect(pthread_mutex_unlock(&m[k]) != 0, 0)) die("pthread_mutex_unlock", 1);
  }
  int64_t t1 = now_ns();
  for (int k = 0; k < nest; k++) pthread_mutex_destroy(&m[k]);
  return (sample_t){(double)(t1 - t0) / (double)(p->n * nest), 0};
}

static sample_t absl_detecting(const params_t *p) { return absl_nested(p, nest_of(p), 1); }
static sample_t absl_plain(const params_t *p) { return absl_nested(p, nest_of(p), 0); }

void register_checks_kinds(void) {
  bench_register(&(kind_t){
      .kind = "checks_lock",
      .unit = "ns per uncontended lock+unlock pair, --locks nested",
      .better = "lower",
      .variants = {{"weft", checks_off},
                   {"checked", checks_on},
                   {"errorcheck", errorcheck_nested},
                   {"absl", absl_detecting},
                   {"absl_off", absl_plain}},
  });
}
