/* Mutexes: weft_mutex_t vs glibc's pthread_mutex_t (default type; uncontended also
 * PTHREAD_MUTEX_ERRORCHECK, the like-for-like peer), uncontended and contended. */
#include <pthread.h>
#include <stdlib.h>

#include "bench.h"

#define LIKELY_OK(call)                              \
  do {                                               \
    int rc_ = (call);                                \
    if (__builtin_expect(rc_ != 0, 0)) die(#call, rc_); \
  } while (0)

/* ---- uncontended: one thread, a free mutex, lock then unlock, n times --------------- */

static _Alignas(64) weft_mutex_t solo_weft;
static _Alignas(64) pthread_mutex_t solo_pthread = PTHREAD_MUTEX_INITIALIZER;

static sample_t uncontended_weft(const params_t *p) {
  CHECK(weft_mutex_init(bench_rt, &solo_weft, 0));
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    LIKELY_OK(weft_mutex_lock(&solo_weft));
    LIKELY_OK(weft_mutex_unlock(&solo_weft));
  }
  int64_t t1 = now_ns();
  CHECK(weft_mutex_destroy(&solo_weft));
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t uncontended_pthread(const params_t *p) {
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    LIKELY_OK(pthread_mutex_lock(&solo_pthread));
    LIKELY_OK(pthread_mutex_unlock(&solo_pthread));
  }
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

sample_t uncontended_errorcheck(const params_t *p) {
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_t m;
  pthread_mutex_init(&m, &a);
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    LIKELY_OK(pthread_mutex_lock(&m));
    LIKELY_OK(pthread_mutex_unlock(&m));
  }
  int64_t t1 = now_ns();
  pthread_mutex_destroy(&m);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

/* ---- contended: T threads, L locks, for a fixed time ------------------------------
 * Each thread loops: pick a lock (always lock 0 when L = 1, else a random one), lock
 * it, increment the counter it protects, unlock. Every lock and every counter has 128
 * bytes of its own, for every lock type alike: a pair of cache lines, which the CPU's
 * adjacent-line prefetch fetches together (with 64, a lock shared a pair with another
 * lock's counter, and every library ran slower on 64 locks). The figure is the total lock+unlock pairs
 * per second over all threads; the extra figure is the fairness spread, (most ops of a
 * thread - fewest ops of a thread) / mean ops per thread, in percent. */

#define MAX_THREADS 64
#define MAX_LOCKS 64

typedef struct {
  _Alignas(128) weft_mutex_t m;
  _Alignas(128) uint64_t count;
} weft_slot_t;

typedef struct {
  _Alignas(128) pthread_mutex_t m;
  _Alignas(128) uint64_t count;
} pthread_slot_t;

typedef struct {
  void *slots;
  unsigned mask; /* locks - 1 (a power of two) */
  int start;
  int stop;
  int ready;
  uint64_t ops[MAX_THREADS];
} contended_run_t;

typedef struct {
  contended_run_t *run;
  int index;
} worker_arg_t;

#define CONTENDED_LOOP(SLOT_T, LOCK, UNLOCK)                                   \
  do {                                                                        \
    contended_run_t *run = w->run;                                            \
    SLOT_T *slots = run->slots;                                               \
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(w->index + 1);         \
    uint64_t ops = 0;                                                         \
    __atomic_fetch_add(&run->ready, 1, __ATOMIC_ACQ_REL);                     \
    spin_until_set(&run->start);                                              \
    while (!__atomic_load_n(&run->stop, __ATOMIC_RELAXED)) {                  \
      unsigned k = run->mask ? (unsigned)(xorshift(&seed) >> 20) & run->mask : 0; \
      LIKELY_OK(LOCK(&slots[k].m));                                           \
      slots[k].count++;                                                       \
      LIKELY_OK(UNLOCK(&slots[k].m));                                         \
      ops++;                                                                  \
    }                                                                         \
    run->ops[w->index] = ops;                                                 \
  } while (0)

static int32_t contended_weft_task(void *arg, void **result) {
  (void)result;
  worker_arg_t *w = arg;
  CONTENDED_LOOP(weft_slot_t, weft_mutex_lock, weft_mutex_unlock);
  return 0;
}

static void *contended_pthread_thread(void *arg) {
  worker_arg_t *w = arg;
  CONTENDED_LOOP(pthread_slot_t, pthread_mutex_lock, pthread_mutex_unlock);
  return NULL;
}

/* Starts the threads' loop together, lets them run p->ms, stops them; returns the
 * sample once they are joined (join_all). */
static sample_t contended_measure(const params_t *p, contended_run_t *run, uint64_t (*counted)(contended_run_t *, int),
                                  void (*join_all)(void *), void *join_arg) {
  while (__atomic_load_n(&run->ready, __ATOMIC_ACQUIRE) < p->threads) cpu_relax();
  int64_t t0 = now_ns();
  __atomic_store_n(&run->start, 1, __ATOMIC_RELEASE);
  struct timespec d = {.tv_sec = p->ms / 1000, .tv_nsec = (long)(p->ms % 1000) * 1000000};
  nanosleep(&d, NULL);
  __atomic_store_n(&run->stop, 1, __ATOMIC_RELAXED);
  int64_t t1 = now_ns();
  join_all(join_arg);
  uint64_t total = 0, lo = UINT64_MAX, hi = 0;
  for (int t = 0; t < p->threads; t++) {
    uint64_t o = run->ops[t];
    total += o;
    if (o < lo) lo = o;
    if (o > hi) hi = o;
  }
  /* Each thread may finish one more operation after the stop store: a negligible
   * tail next to the millions counted. */
  if (counted(run, p->locks) != total) die("contended: counters do not add up", 1);
  double mean = (double)total / p->threads;
  return (sample_t){(double)total * 1e9 / (double)(t1 - t0), mean > 0 ? 100.0 * (double)(hi - lo) / mean : 0};
}

static void check_params(const params_t *p) {
  if (p->threads > MAX_THREADS || p->locks > MAX_LOCKS || (p->locks & (p->locks - 1)) != 0)
    die("contended: threads <= 64 and locks a power of two <= 64", 1);
}

static uint64_t weft_counted(contended_run_t *run, int locks) {
  weft_slot_t *s = run->slots;
  uint64_t sum = 0;
  for (int k = 0; k < locks; k++) sum += s[k].count;
  return sum;
}

static uint64_t pthread_counted(contended_run_t *run, int locks) {
  pthread_slot_t *s = run->slots;
  uint64_t sum = 0;
  for (int k = 0; k < locks; k++) sum += s[k].count;
  return sum;
}

typedef struct {
  int n;
  weft_task_t **tasks;
  pthread_t *threads;
} joiner_t;

static void join_weft(void *arg) {
  joiner_t *j = arg;
  for (int t = 0; t < j->n; t++) CHECK(weft_join(j->tasks[t], WEFT_FOREVER, NULL, NULL));
}

static void join_pthread(void *arg) {
  joiner_t *j = arg;
  for (int t = 0; t < j->n; t++) CHECK(pthread_join(j->threads[t], NULL));
}

static sample_t contended_weft(const params_t *p) {
  check_params(p);
  weft_slot_t *slots = aligned_alloc(128, sizeof(weft_slot_t) * (size_t)p->locks);
  if (!slots) die("aligned_alloc", 1);
  for (int k = 0; k < p->locks; k++) {
    CHECK(weft_mutex_init(bench_rt, &slots[k].m, 0));
    slots[k].count = 0;
  }
  contended_run_t run = {.slots = slots, .mask = (unsigned)p->locks - 1};
  worker_arg_t args[MAX_THREADS];
  weft_task_t *tasks[MAX_THREADS];
  for (int t = 0; t < p->threads; t++) {
    args[t] = (worker_arg_t){&run, t};
    CHECK(weft_spawn(bench_rt, contended_weft_task, &args[t], NULL, &tasks[t]));
  }
  joiner_t j = {.n = p->threads, .tasks = tasks};
  sample_t s = contended_measure(p, &run, weft_counted, join_weft, &j);
  for (int k = 0; k < p->locks; k++) CHECK(weft_mutex_destroy(&slots[k].m));
  free(slots);
  return s;
}

static sample_t contended_pthread(const params_t *p) {
  check_params(p);
  pthread_slot_t *slots = aligned_alloc(128, sizeof(pthread_slot_t) * (size_t)p->locks);
  if (!slots) die("aligned_alloc", 1);
  for (int k = 0; k < p->locks; k++) {
    CHECK(pthread_mutex_init(&slots[k].m, NULL));
    slots[k].count = 0;
  }
  contended_run_t run = {.slots = slots, .mask = (unsigned)p->locks - 1};
  worker_arg_t args[MAX_THREADS];
  pthread_t threads[MAX_THREADS];
  for (int t = 0; t < p->threads; t++) {
    args[t] = (worker_arg_t){&run, t};
    CHECK(pthread_create(&threads[t], NULL, contended_pthread_thread, &args[t]));
  }
  joiner_t j = {.n = p->threads, .threads = threads};
  sample_t s = contended_measure(p, &run, pthread_counted, join_pthread, &j);
  for (int k = 0; k < p->locks; k++) CHECK(pthread_mutex_destroy(&slots[k].m));
  free(slots);
  return s;
}

void register_mutex_kinds(void) {
  bench_register(&(kind_t){
      .kind = "mutex_uncontended",
      .unit = "ns per lock+unlock pair (one thread, free mutex)",
      .better = "lower",
      .variants = {{"weft", uncontended_weft}, {"pthread", uncontended_pthread}, {"errorcheck", uncontended_errorcheck}},
  });
  bench_register(&(kind_t){
      .kind = "mutex_contended",
      .unit = "lock+unlock pairs per second, all threads together",
      .better = "higher",
      .extra_unit = "fairness spread: (max - min) / mean ops per thread, %",
      .variants = {{"weft", contended_weft}, {"pthread", contended_pthread}},
  });
}
