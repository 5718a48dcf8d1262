/* Parking and semaphores:
 *   park_lock:     a one-word lock (free / held / held with waiters, the WTF::Lock and
 *                  PyMutex pattern) whose waiters park with weft_park/weft_unpark, vs the
 *                  same lock on the raw futex syscall, vs pthread_mutex_t and weft_mutex_t;
 *                  T threads each take it n times around a counter (T = 1: uncontended);
 *   sem_pingpong:  two threads hand a turn back and forth through two semaphores (post
 *                  the other's, wait for one's own): weft_sem_t vs POSIX sem_t;
 *   barrier_rounds: two threads meet at a barrier round after round: weft_barrier_t vs
 *                  pthread_barrier_t. */
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

/* ---- park_lock ---- */

typedef enum { PARK, FUTEX, PTHREAD, WEFT_MUTEX } lock_kind_t;

typedef struct {
  _Atomic uint32_t word; /* 0 free, 1 held, 2 held with waiters */
  pthread_mutex_t pthread_mutex;
  weft_mutex_t weft_mutex;
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

static void take(lock_t *l, lock_kind_t kind) {
  switch (kind) {
    case PARK: park_lock(l); break;
    case FUTEX: futex_lock(l); break;
    case PTHREAD: CHECK(pthread_mutex_lock(&l->pthread_mutex)); break;
    case WEFT_MUTEX: CHECK(weft_mutex_lock(&l->weft_mutex)); break;
  }
}

static void give(lock_t *l, lock_kind_t kind) {
  switch (kind) {
    case PARK: park_unlock(l); break;
    case FUTEX: futex_unlock(l); break;
    case PTHREAD: CHECK(pthread_mutex_unlock(&l->pthread_mutex)); break;
    case WEFT_MUTEX: CHECK(weft_mutex_unlock(&l->weft_mutex)); break;
  }
}

typedef struct {
  lock_t *lock;
  long n;
  lock_kind_t kind;
} locker_t;

static void *lock_loop(void *arg) {
  locker_t *k = arg;
  spin_until_set(&k->lock->start);
  for (long i = 0; i < k->n; i++) {
    take(k->lock, k->kind);
    k->lock->count++;
    give(k->lock, k->kind);
  }
  return NULL;
}

static sample_t run_locks(const params_t *p, lock_kind_t kind) {
  enum { MAX_T = 16 };
  int threads = p->threads > 0 && p->threads <= MAX_T ? p->threads : 2;
  lock_t lock = {0};
  CHECK(pthread_mutex_init(&lock.pthread_mutex, NULL));
  CHECK(weft_mutex_init(bench_rt, &lock.weft_mutex, 0));
  locker_t k[MAX_T];
  pthread_t t[MAX_T];
  for (int i = 0; i < threads; i++) {
    k[i] = (locker_t){&lock, p->n, kind};
    if (pthread_create(&t[i], NULL, lock_loop, &k[i]) != 0) die("pthread_create", 1);
  }
  int64_t t0 = now_ns();
  __atomic_store_n(&lock.start, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
  int64_t t1 = now_ns();
  if (lock.count != p->n * threads) die("lock count", 1);
  CHECK(weft_mutex_destroy(&lock.weft_mutex));
  CHECK(pthread_mutex_destroy(&lock.pthread_mutex));
  return (sample_t){(double)(t1 - t0) / (double)(p->n * threads), 0};
}

static sample_t lock_park(const params_t *p) { return run_locks(p, PARK); }
static sample_t lock_futex(const params_t *p) { return run_locks(p, FUTEX); }
static sample_t lock_pthread(const params_t *p) { return run_locks(p, PTHREAD); }
static sample_t lock_weft_mutex(const params_t *p) { return run_locks(p, WEFT_MUTEX); }

/* ---- sem_pingpong ---- */

typedef struct {
  weft_sem_t weft[2];
  sem_t posix[2];
  long n;
  int start;
} sems_t;

typedef struct {
  sems_t *s;
  int me; /* 0 starts: posts the other's, then waits for its own */
  bool weft;
} player_t;

static void *sem_player(void *arg) {
  player_t *pl = arg;
  sems_t *s = pl->s;
  spin_until_set(&s->start);
  int mine = pl->me, other = !pl->me;
  for (long i = 0; i < s->n; i++) {
    if (pl->me == 0) {
      if (pl->weft) CHECK(weft_sem_post(&s->weft[other]));
      else CHECK(sem_post(&s->posix[other]));
    }
    if (pl->weft) CHECK(weft_sem_wait(&s->weft[mine]));
    else CHECK(sem_wait(&s->posix[mine]));
    if (pl->me == 1) {
      if (pl->weft) CHECK(weft_sem_post(&s->weft[other]));
      else CHECK(sem_post(&s->posix[other]));
    }
  }
  return NULL;
}

static sample_t sem_run(const params_t *p, bool weft) {
  sems_t s = {.n = p->n};
  for (int i = 0; i < 2; i++) {
    CHECK(weft_sem_init(bench_rt, &s.weft[i], 0));
    CHECK(sem_init(&s.posix[i], 0, 0));
  }
  player_t a = {&s, 0, weft}, b = {&s, 1, weft};
  int64_t ns = time_two_threads(sem_player, &a, sem_player, &b, &s.start);
  for (int i = 0; i < 2; i++) {
    CHECK(weft_sem_destroy(&s.weft[i]));
    CHECK(sem_destroy(&s.posix[i]));
  }
  return (sample_t){(double)ns / (double)p->n, 0};
}

static sample_t sem_weft(const params_t *p) { return sem_run(p, true); }
static sample_t sem_posix(const params_t *p) { return sem_run(p, false); }

/* ---- barrier_rounds ---- */

typedef struct {
  weft_barrier_t weft;
  pthread_barrier_t posix;
  long n;
  bool use_weft;
  int start;
} meeting_t;

static void *meet(void *arg) {
  meeting_t *m = arg;
  spin_until_set(&m->start);
  for (long i = 0; i < m->n; i++) {
    if (m->use_weft) {
      bool serial;
      CHECK(weft_barrier_wait(&m->weft, &serial));
    } else {
      int rc = pthread_barrier_wait(&m->posix);
      if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die("pthread_barrier_wait", rc);
    }
  }
  return NULL;
}

static sample_t barrier_run(const params_t *p, bool use_weft) {
  meeting_t m = {.n = p->n, .use_weft = use_weft};
  CHECK(weft_barrier_init(bench_rt, &m.weft, 2));
  if (pthread_barrier_init(&m.posix, NULL, 2) != 0) die("pthread_barrier_init", 1);
  int64_t ns = time_two_threads(meet, &m, meet, &m, &m.start);
  CHECK(weft_barrier_destroy(&m.weft));
  pthread_barrier_destroy(&m.posix);
  return (sample_t){(double)ns / (double)p->n, 0};
}

static sample_t barrier_weft(const params_t *p) { return barrier_run(p, true); }
static sample_t barrier_posix(const params_t *p) { return barrier_run(p, false); }

void register_parking_kinds(void) {
  bench_register(&(kind_t){
      .kind = "park_lock",
      .unit = "ns per lock+unlock pair, T threads contending on one lock",
      .better = "lower",
      .variants = {{"weft", lock_park}, {"futex", lock_futex}, {"pthread", lock_pthread}, {"weft_mutex", lock_weft_mutex}},
  });
  bench_register(&(kind_t){
      .kind = "sem_pingpong",
      .unit = "ns per round trip A -> B -> A through two semaphores",
      .better = "lower",
      .default_n = 50000,
      .variants = {{"weft", sem_weft}, {"posix", sem_posix}},
  });
  bench_register(&(kind_t){
      .kind = "barrier_rounds",
      .unit = "ns per round of two threads meeting at a barrier",
      .better = "lower",
      .default_n = 50000,
      .variants = {{"weft", barrier_weft}, {"posix", barrier_posix}},
  });
}
