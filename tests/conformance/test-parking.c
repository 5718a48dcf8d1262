/* Parking on an address, semaphores, barriers, once, the caller's identity. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "test.h"

/* ---- wait_on / wake ---- */

typedef struct {
  weft_runtime_t *rt;
  _Atomic uint32_t *word;
  int rounds;
  uint32_t parity;
} side_t;

/* Two tasks take turns through one word: each waits for its parity, bumps, wakes. */
static int32_t take_turns(void *arg, void **result) {
  (void)result;
  side_t *s = arg;
  for (int i = 0; i < s->rounds; i++) {
    for (;;) {
      uint32_t now = atomic_load(s->word);
      if (now % 2 == s->parity) break;
      if (weft_wait_on(s->rt, (const uint32_t *)s->word, now, WEFT_FOREVER) != WEFT_OK) return 1;
    }
    atomic_fetch_add(s->word, 1);
    weft_wake(s->rt, (const void *)s->word, 1);
  }
  return 0;
}

/* A lost wake-up would hang here: 2 x 20000 hand-offs through one word (see
 * test_volume), exact count. */
TEST_IMPL(parking_no_lost_wakeups) {
  weft_runtime_t *rt = test_open_runtime();
  const int rounds = (int)test_volume(20000);
  _Atomic uint32_t word = 0;
  side_t a = {rt, &word, rounds, 0}, b = {rt, &word, rounds, 1};
  weft_task_t *ta = test_spawn(rt, take_turns, &a), *tb = test_spawn(rt, take_turns, &b);
  ASSERT_EQ(test_join(ta), 0);
  ASSERT_EQ(test_join(tb), 0);
  ASSERT_EQ(atomic_load(&word), 2 * rounds);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  _Atomic uint32_t word;
  atomic_int woken, cancelled;
} parked_t;

static int32_t park_on_word(void *arg, void **result) {
  (void)result;
  parked_t *p = arg;
  weft_status_t s = weft_wait_on(p->rt, (const uint32_t *)&p->word, 0, WEFT_FOREVER);
  if (s == WEFT_OK) atomic_fetch_add(&p->woken, 1);
  else if (s == WEFT_ECANCELED) atomic_fetch_add(&p->cancelled, 1);
  else return 1;
  return 0;
}

/* weft_wake(n) wakes at most n, oldest first, and says how many; a mismatched value
 * returns at once; deadlines and cancellation end a wait. */
TEST_IMPL(parking_wake_counts_and_ends) {
  weft_runtime_t *rt = test_open_runtime();
  parked_t p;
  memset(&p, 0, sizeof p);
  p.rt = rt;
  enum { TASKS = 8 };
  weft_task_t *t[TASKS];
  for (int i = 0; i < TASKS; i++) t[i] = test_spawn(rt, park_on_word, &p);
  size_t total = 0;
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (total < TASKS) {
    size_t n = weft_wake(rt, (const void *)&p.word, 3);
    ASSERT(n <= 3);
    total += n;
    ASSERT(weft_now(rt) < give_up);
    if (n == 0) test_sleep_ms(rt, 1);
  }
  for (int i = 0; i < TASKS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&p.woken), TASKS);
  ASSERT_EQ(weft_wake(rt, (const void *)&p.word, SIZE_MAX), 0); /* nobody left */

  ASSERT_OK(weft_wait_on(rt, (const uint32_t *)&p.word, 1, WEFT_FOREVER)); /* 0 != 1: at once */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_wait_on(rt, (const uint32_t *)&p.word, 0, test_after_ms(rt, 10)));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_wait_on(rt, (const uint32_t *)&p.word, 0, 0));

  weft_task_t *c = test_spawn(rt, park_on_word, &p);
  test_sleep_ms(rt, 5);
  ASSERT_OK(weft_cancel(c));
  ASSERT_EQ(test_join(c), 0);
  ASSERT_EQ(atomic_load(&p.cancelled), 1);

  ASSERT_STATUS(WEFT_EINVAL, weft_wait_on(rt, NULL, 0, 0));
  ASSERT_ERROR_MENTIONS("addr is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_wait_on(NULL, (const uint32_t *)&p.word, 0, 0));
  ASSERT_EQ(weft_wake(NULL, &p.word, 1), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- a one-byte lock on weft_park / weft_unpark (the WTF::Lock shape) ---- */

typedef struct {
  weft_runtime_t *rt;
  _Atomic unsigned char state; /* 0 free, 1 held, 2 held with waiters */
  long counter;
} tiny_lock_t;

static bool still_contended(void *ud) { return atomic_load((_Atomic unsigned char *)ud) == 2; }

static void tiny_lock(tiny_lock_t *l) {
  unsigned char free_ = 0;
  if (atomic_compare_exchange_strong(&l->state, &free_, 1)) return;
  while (atomic_exchange(&l->state, 2) != 0)
    weft_park(l->rt, (const void *)&l->state, still_contended, (void *)&l->state, WEFT_FOREVER);
}

static void tiny_unlock(tiny_lock_t *l) {
  if (atomic_exchange(&l->state, 0) == 2) weft_unpark(l->rt, (const void *)&l->state, 1);
}

static int32_t hammer_tiny_lock(void *arg, void **result) {
  (void)result;
  tiny_lock_t *l = arg;
  for (int i = 0; i < 20000; i++) {
    tiny_lock(l);
    l->counter++;
    tiny_unlock(l);
  }
  return 0;
}

static bool never(void *ud) {
  (void)ud;
  return false;
}

TEST_IMPL(parking_builds_a_lock) {
  weft_runtime_t *rt = test_open_runtime();
  tiny_lock_t l = {.rt = rt};
  weft_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, hammer_tiny_lock, &l);
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(l.counter, 80000);
  ASSERT_OK(weft_park(rt, &l, never, NULL, WEFT_FOREVER)); /* validate said no: at once */
  ASSERT_STATUS(WEFT_EINVAL, weft_park(rt, &l, NULL, NULL, 0));
  test_close_runtime(rt);
  return TEST_OK;
}

/* weft_unpark(1) wakes the oldest parked caller, on every platform (sim woke a seeded
 * choice). Each task marks itself from inside `validate`, which runs atomically with
 * its queueing: once the mark shows, the next task queues behind it. */
enum { IN_LINE = 6 };

typedef struct {
  weft_runtime_t *rt;
  _Atomic uint32_t word;
  atomic_int queued[IN_LINE];
  atomic_int woken_order[IN_LINE];
  atomic_int woken;
} line_t;

typedef struct {
  line_t *line;
  int place;
} in_line_t;

static in_line_t places[IN_LINE];

static bool queue_in_line(void *ud) {
  in_line_t *p = ud;
  atomic_store(&p->line->queued[p->place], 1);
  return true;
}

static int32_t park_in_line(void *arg, void **result) {
  (void)result;
  in_line_t *p = arg;
  weft_status_t st = weft_park(p->line->rt, (const void *)&p->line->word, queue_in_line, p, WEFT_FOREVER);
  atomic_store(&p->line->woken_order[atomic_fetch_add(&p->line->woken, 1)], p->place);
  return st == WEFT_OK ? 0 : 1;
}

TEST_IMPL(parking_wakes_the_oldest_first) {
  weft_runtime_t *rt = test_open_runtime();
  static line_t line;
  memset(&line, 0, sizeof line);
  line.rt = rt;
  weft_task_t *t[IN_LINE];
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  for (int i = 0; i < IN_LINE; i++) {
    places[i] = (in_line_t){.line = &line, .place = i};
    t[i] = test_spawn(rt, park_in_line, &places[i]);
    while (!atomic_load(&line.queued[i])) {
      ASSERT(weft_now(rt) < give_up);
      test_sleep_ms(rt, 1);
    }
  }
  for (int k = 0; k < IN_LINE; k++) {
    ASSERT_EQ(weft_unpark(rt, (const void *)&line.word, 1), 1);
    while (atomic_load(&line.woken) < k + 1) {
      ASSERT(weft_now(rt) < give_up);
      test_sleep_ms(rt, 1);
    }
    ASSERT_EQ(atomic_load(&line.woken_order[k]), k);
  }
  for (int i = 0; i < IN_LINE; i++) ASSERT_EQ(test_join(t[i]), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A cancelled task is refused by weft_wait_on and weft_park before anything else, also
 * when the word already differs or `validate` says no, on every platform (the runtime's
 * own parking, which the pthread plugin uses, returned WEFT_OK there): a loop that
 * waits until its word changes relies on the cancellation to get out. */
typedef struct {
  weft_runtime_t *rt;
  _Atomic uint32_t word;
  atomic_int cancelled;
} cancel_probe_t;

static int32_t wait_once_cancelled(void *arg, void **result) {
  (void)result;
  cancel_probe_t *c = arg;
  while (!atomic_load(&c->cancelled)) weft_yield(c->rt);
  int wrong = 0;
  if (weft_wait_on(c->rt, (const uint32_t *)&c->word, 1, WEFT_FOREVER) != WEFT_ECANCELED) wrong |= 1;
  if (weft_park(c->rt, (const void *)&c->word, never, NULL, WEFT_FOREVER) != WEFT_ECANCELED) wrong |= 2;
  if (weft_wait_on(c->rt, (const uint32_t *)&c->word, 0, WEFT_FOREVER) != WEFT_ECANCELED) wrong |= 4;
  return wrong;
}

TEST_IMPL(parking_refuses_a_cancelled_caller_first) {
  weft_runtime_t *rt = test_open_runtime();
  static cancel_probe_t c;
  memset(&c, 0, sizeof c);
  c.rt = rt;
  weft_task_t *t = test_spawn(rt, wait_once_cancelled, &c);
  ASSERT_OK(weft_cancel(t));
  atomic_store(&c.cancelled, 1);
  ASSERT_EQ(test_join(t), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- semaphores ---- */

enum { SLOTS = 8, ITEMS = 20000, PRODUCERS = 2 };

typedef struct {
  weft_sem_t empty, full;
  weft_mutex_t lock;
  uint64_t ring[SLOTS];
  size_t head, tail;
  uint64_t consumed_sum;
  int consumed;
} bounded_t;

static int32_t sem_produce(void *arg, void **result) {
  (void)result;
  bounded_t *b = arg;
  for (uint64_t i = 1; i <= ITEMS; i++) {
    if (weft_sem_wait(&b->empty) != WEFT_OK) return 1;
    weft_mutex_lock(&b->lock);
    b->ring[b->tail++ % SLOTS] = i;
    weft_mutex_unlock(&b->lock);
    weft_sem_post(&b->full);
  }
  return 0;
}

static int32_t sem_consume(void *arg, void **result) {
  (void)result;
  bounded_t *b = arg;
  for (int i = 0; i < ITEMS; i++) {
    if (weft_sem_wait(&b->full) != WEFT_OK) return 1;
    weft_mutex_lock(&b->lock);
    b->consumed_sum += b->ring[b->head++ % SLOTS];
    b->consumed++;
    weft_mutex_unlock(&b->lock);
    weft_sem_post(&b->empty);
  }
  return 0;
}

TEST_IMPL(sem_bounded_buffer_exact) {
  weft_runtime_t *rt = test_open_runtime();
  static bounded_t b;
  memset(&b, 0, sizeof b);
  ASSERT_OK(weft_sem_init(rt, &b.empty, SLOTS));
  ASSERT_OK(weft_sem_init(rt, &b.full, 0));
  ASSERT_OK(weft_mutex_init(rt, &b.lock, 0));
  weft_task_t *t[2 * PRODUCERS];
  for (int i = 0; i < PRODUCERS; i++) {
    t[2 * i] = test_spawn(rt, sem_produce, &b);
    t[2 * i + 1] = test_spawn(rt, sem_consume, &b);
  }
  for (int i = 0; i < 2 * PRODUCERS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(b.consumed, PRODUCERS * ITEMS);
  ASSERT(b.consumed_sum == (uint64_t)PRODUCERS * ITEMS * (ITEMS + 1) / 2);
  ASSERT_EQ(weft_sem_value(&b.empty), SLOTS);
  ASSERT_OK(weft_sem_destroy(&b.empty));
  ASSERT_OK(weft_sem_destroy(&b.full));
  ASSERT_OK(weft_mutex_destroy(&b.lock));
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t take_sem(void *arg, void **result) {
  (void)result;
  return weft_sem_wait(arg);
}

/* A semaphore of 1 is the lock one task takes and another releases; try, timeouts,
 * destroy rules. */
TEST_IMPL(sem_as_a_handed_over_lock) {
  weft_runtime_t *rt = test_open_runtime();
  weft_sem_t s;
  ASSERT_OK(weft_sem_init(rt, &s, 1));
  ASSERT_OK(weft_sem_try_wait(&s)); /* taken by the main thread ... */
  ASSERT_STATUS(WEFT_EBUSY, weft_sem_try_wait(&s));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_sem_wait_until(&s, test_after_ms(rt, 5)));
  weft_task_t *t = test_spawn(rt, take_sem, &s);
  /* Until the task waits, a destroy would succeed: a 5 ms nap was not always enough
   * (under valgrind, the destroy came first). */
  test_wait_blocked(rt, t);
  ASSERT_STATUS(WEFT_EBUSY, weft_sem_destroy(&s)); /* the task waits on it */
  ASSERT_OK(weft_sem_post(&s)); /* ... released here, taken by the task */
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(weft_sem_value(&s), 0);
  ASSERT_OK(weft_sem_destroy(&s));
  ASSERT_STATUS(WEFT_EINVAL, weft_sem_post(&s));
  ASSERT_ERROR_MENTIONS("was destroyed");
  weft_sem_t raw;
  memset(&raw, 0, sizeof raw);
  ASSERT_STATUS(WEFT_EINVAL, weft_sem_wait(&raw));
  ASSERT_ERROR_MENTIONS("weft_sem_init");
  /* After the close only the destroy is allowed: a try takes no unit. */
  ASSERT_OK(weft_sem_init(rt, &s, 2));
  test_close_runtime(rt);
  ASSERT_STATUS(WEFT_EINVAL, weft_sem_try_wait(&s));
  ASSERT_STATUS(WEFT_EINVAL, weft_sem_post(&s));
  ASSERT_STATUS(WEFT_EINVAL, weft_sem_wait(&s));
  ASSERT_OK(weft_sem_destroy(&s));
  return TEST_OK;
}

/* A waiter may destroy and free a semaphore as soon as its wait returns, while the
 * post that released it is still returning (a completion signal: `sem_wait(&done);
 * sem_destroy(&done);`, which glibc allows): the post reads nothing of the semaphore
 * after its increment. ASan and valgrind would catch a late read of the freed memory. */
enum { SEM_FREE_ROUNDS = 300 };

static int32_t post_it(void *arg, void **result) {
  (void)result;
  return weft_sem_post(arg) == WEFT_OK ? 0 : 1;
}

TEST_IMPL(sem_freed_by_the_woken_waiter) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < SEM_FREE_ROUNDS; round++) {
    weft_sem_t *done = malloc(sizeof *done);
    ASSERT(done != NULL);
    ASSERT_OK(weft_sem_init(rt, done, 0));
    weft_task_t *poster = test_spawn(rt, post_it, done);
    ASSERT_OK(weft_sem_wait(done));
    ASSERT_OK(weft_sem_destroy(done));
    free(done);
    ASSERT_EQ(test_join(poster), 0);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* Hand-overs in a stream through semaphores: a producer posts one token at a time and
 * waits until a consumer acknowledges it; two consumers wait for tokens on one
 * semaphore, one with untimed waits, one with 1 ms timed ones. On OS threads a waiter
 * watches for the post before it parks (docs/performance.md), so the stream mixes
 * waiters answered while they watch (and not counted as waiters, so the post wakes
 * nobody) with waiters parked and woken: every token must be taken exactly once, and
 * each taken only after it was posted. Every wait has a deadline, so a lost wake-up
 * fails the test instead of hanging it. */
typedef struct {
  weft_runtime_t *rt;
  weft_sem_t given, acked;
  atomic_long outstanding; /* tokens posted and not yet taken: 0 or 1 */
  atomic_int stop;
  atomic_long taken[2];
  atomic_int bad;
} sem_handoff_t;

typedef struct {
  sem_handoff_t *h;
  int me;
  int64_t patience_ms; /* of each wait: short for the timed consumer */
} sem_handoff_consumer_t;

static int32_t sem_handoff_consumer(void *arg, void **result) {
  (void)result;
  sem_handoff_consumer_t *c = arg;
  sem_handoff_t *h = c->h;
  int64_t give_up = test_after_ms(h->rt, TEST_PATIENCE_MS);
  for (;;) {
    weft_status_t st = weft_sem_wait_until(&h->given, test_after_ms(h->rt, c->patience_ms));
    if (st == WEFT_ETIMEDOUT) {
      if (weft_now(h->rt) > give_up) return 1; /* a token nobody took: a lost wake-up */
      continue;
    }
    if (st != WEFT_OK) return 2;
    if (atomic_load(&h->stop)) return 0;
    if (atomic_fetch_sub(&h->outstanding, 1) != 1) atomic_store(&h->bad, 1);
    atomic_fetch_add(&h->taken[c->me], 1);
    if (weft_sem_post(&h->acked) != WEFT_OK) return 3;
    give_up = test_after_ms(h->rt, TEST_PATIENCE_MS);
  }
}

TEST_IMPL(sem_handoff_stream) {
  weft_runtime_t *rt = test_open_runtime();
  static sem_handoff_t h;
  memset(&h, 0, sizeof h);
  h.rt = rt;
  const long n = (long)test_volume(20000);
  ASSERT_OK(weft_sem_init(rt, &h.given, 0));
  ASSERT_OK(weft_sem_init(rt, &h.acked, 0));
  sem_handoff_consumer_t untimed = {&h, 0, TEST_PATIENCE_MS}, timed = {&h, 1, 1};
  weft_task_t *tu = test_spawn(rt, sem_handoff_consumer, &untimed);
  weft_task_t *tt = test_spawn(rt, sem_handoff_consumer, &timed);
  for (long i = 0; i < n; i++) {
    atomic_store(&h.outstanding, 1);
    ASSERT_OK(weft_sem_post(&h.given));
    ASSERT_OK(weft_sem_wait_until(&h.acked, test_after_ms(rt, TEST_PATIENCE_MS)));
    ASSERT_EQ(atomic_load(&h.outstanding), 0);
  }
  atomic_store(&h.stop, 1);
  ASSERT_OK(weft_sem_post(&h.given));
  ASSERT_OK(weft_sem_post(&h.given));
  ASSERT_EQ(test_join(tu), 0);
  ASSERT_EQ(test_join(tt), 0);
  ASSERT_EQ(atomic_load(&h.bad), 0);
  ASSERT_EQ(atomic_load(&h.taken[0]) + atomic_load(&h.taken[1]), n);
  ASSERT_EQ(weft_sem_value(&h.given), 0);
  ASSERT_EQ(weft_sem_value(&h.acked), 0);
  ASSERT_OK(weft_sem_destroy(&h.given));
  ASSERT_OK(weft_sem_destroy(&h.acked));
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- barriers ---- */

enum { BARRIER_TASKS = 4, BARRIER_ROUNDS = 300 };

typedef struct {
  weft_barrier_t barrier;
  atomic_int serial[BARRIER_ROUNDS];
  atomic_int in_round[BARRIER_ROUNDS];
  atomic_int overtaken;
} rounds_t;

static int32_t run_rounds(void *arg, void **result) {
  (void)result;
  rounds_t *r = arg;
  for (int round = 0; round < BARRIER_ROUNDS; round++) {
    atomic_fetch_add(&r->in_round[round], 1);
    bool serial = false;
    if (weft_barrier_wait(&r->barrier, &serial) != WEFT_OK) return 1;
    /* Everyone of this round arrived before anyone left it. */
    if (atomic_load(&r->in_round[round]) != BARRIER_TASKS) atomic_fetch_add(&r->overtaken, 1);
    if (serial) atomic_fetch_add(&r->serial[round], 1);
  }
  return 0;
}

TEST_IMPL(barrier_rounds_one_serial_each) {
  weft_runtime_t *rt = test_open_runtime();
  static rounds_t r;
  memset(&r, 0, sizeof r);
  ASSERT_OK(weft_barrier_init(rt, &r.barrier, BARRIER_TASKS));
  weft_task_t *t[BARRIER_TASKS];
  for (int i = 0; i < BARRIER_TASKS; i++) t[i] = test_spawn(rt, run_rounds, &r);
  for (int i = 0; i < BARRIER_TASKS; i++) ASSERT_EQ(test_join(t[i]), 0);
  for (int round = 0; round < BARRIER_ROUNDS; round++) ASSERT_EQ(atomic_load(&r.serial[round]), 1);
  ASSERT_EQ(atomic_load(&r.overtaken), 0);
  ASSERT_OK(weft_barrier_destroy(&r.barrier));
  weft_barrier_t zero;
  ASSERT_STATUS(WEFT_EINVAL, weft_barrier_init(rt, &zero, 0));
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_barrier_t *barrier;
  atomic_int *go; /* NULL: arrive at once */
  bool serial;
} arrival_t;

static int32_t arrive(void *arg, void **result) {
  (void)result;
  arrival_t *a = arg;
  while (a->go != NULL && !atomic_load(a->go))
    if (weft_yield(a->rt) != WEFT_OK) return 99;
  return weft_barrier_wait(a->barrier, &a->serial);
}

/* A cancelled waiter leaves its round: its arrival is taken back, and the round needs
 * another. Unless the round completed first: a cancel that races the last arrival
 * either loses (the waiter is released with everyone: WEFT_OK) or wins (the waiter is
 * out, and the last arrival waits on); never both, a waiter reporting WEFT_ECANCELED
 * while its arrival completed the round (native did, about once in 2,500 races). */
TEST_IMPL(barrier_cancel_leaves_the_round) {
  weft_runtime_t *rt = test_open_runtime();
  weft_barrier_t b;
  ASSERT_OK(weft_barrier_init(rt, &b, 2));
  arrival_t w = {rt, &b, NULL, false}, t = {rt, &b, NULL, false}, me = {rt, &b, NULL, false};
  weft_task_t *waiter = test_spawn(rt, arrive, &w);
  test_wait_blocked(rt, waiter);
  ASSERT_OK(weft_cancel(waiter));
  ASSERT_EQ(test_join(waiter), WEFT_ECANCELED);
  weft_task_t *other = test_spawn(rt, arrive, &t);
  ASSERT_OK(weft_barrier_wait(&b, &me.serial)); /* the round needs two arrivals still */
  ASSERT_EQ(test_join(other), 0);
  ASSERT_EQ(t.serial + me.serial, 1);
  int lost = 0, won = 0;
  for (int i = 0; i < 200; i++) {
    atomic_int go = 0;
    w = (arrival_t){rt, &b, NULL, false};
    t = (arrival_t){rt, &b, &go, false};
    waiter = test_spawn(rt, arrive, &w);
    test_wait_blocked(rt, waiter);
    other = test_spawn(rt, arrive, &t);
    atomic_store(&go, 1);
    ASSERT_OK(weft_cancel(waiter));
    weft_status_t st = test_join(waiter);
    if (st == WEFT_OK) {
      lost++;
      ASSERT_EQ(test_join(other), 0);
      ASSERT_EQ(w.serial + t.serial, 1);
      continue;
    }
    ASSERT_EQ(st, WEFT_ECANCELED);
    won++;
    /* Out of the round: the other arrival is still waiting for a partner. */
    int32_t code = -1;
    ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(other, test_after_ms(rt, 2), &code, NULL));
    me.serial = false;
    ASSERT_OK(weft_barrier_wait(&b, &me.serial));
    ASSERT_EQ(test_join(other), 0);
    ASSERT_EQ(t.serial + me.serial, 1);
  }
  ASSERT_EQ(lost + won, 200);
  ASSERT_OK(weft_barrier_destroy(&b));
  test_close_runtime(rt);
  return TEST_OK;
}

/* The serial task may destroy the barrier, and free its memory, as soon as its wait
 * returns (glibc's pthread barriers and libuv's uv_barrier allow it, and libuv's own
 * test does it): the destroy lets the released tasks leave first. Under ASan and
 * valgrind a released task that touched the freed memory would fail the test. A round
 * that has not completed still refuses a destroy. */
enum { SERIAL_TASKS = 4, SERIAL_ROUNDS = 200 };

typedef struct {
  weft_barrier_t *barrier;
  atomic_int destroyed;
} serial_round_t;

static int32_t wait_then_destroy_if_serial(void *arg, void **result) {
  (void)result;
  serial_round_t *r = arg;
  bool serial = false;
  weft_barrier_t *b = r->barrier;
  if (weft_barrier_wait(b, &serial) != WEFT_OK) return 1;
  if (!serial) return 0;
  if (weft_barrier_destroy(b) != WEFT_OK) return 2;
  free(b);
  atomic_fetch_add(&r->destroyed, 1);
  return 0;
}

static int32_t wait_once(void *arg, void **result) {
  (void)result;
  return weft_barrier_wait(arg, NULL) == WEFT_OK ? 0 : 1;
}

TEST_IMPL(barrier_serial_destroys_at_once) {
  weft_runtime_t *rt = test_open_runtime();
  static serial_round_t r;
  for (int round = 0; round < SERIAL_ROUNDS; round++) {
    r.barrier = malloc(sizeof *r.barrier);
    ASSERT(r.barrier != NULL);
    ASSERT_OK(weft_barrier_init(rt, r.barrier, SERIAL_TASKS + 1));
    weft_task_t *t[SERIAL_TASKS];
    for (int i = 0; i < SERIAL_TASKS; i++) t[i] = test_spawn(rt, wait_then_destroy_if_serial, &r);
    ASSERT_EQ(wait_then_destroy_if_serial(&r, NULL), 0);
    for (int i = 0; i < SERIAL_TASKS; i++) ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_EQ(atomic_load(&r.destroyed), round + 1);
  }
  /* One task of two waits: the round has not completed. */
  weft_barrier_t b;
  ASSERT_OK(weft_barrier_init(rt, &b, 2));
  weft_task_t *waiter = test_spawn(rt, wait_once, &b);
  test_wait_blocked(rt, waiter);
  ASSERT_STATUS(WEFT_EBUSY, weft_barrier_destroy(&b));
  ASSERT(strstr(weft_last_error(), "1 task(s) waiting") != NULL);
  ASSERT_OK(weft_barrier_wait(&b, NULL));
  ASSERT_EQ(test_join(waiter), 0);
  ASSERT_OK(weft_barrier_destroy(&b));
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- once ---- */

static weft_once_t shared_once = WEFT_ONCE_INIT;
static atomic_int once_runs;
static atomic_int once_effect;

static void slow_init(void *ud) {
  weft_runtime_t *rt = ud;
  atomic_fetch_add(&once_runs, 1);
  test_sleep_ms(rt, 20);
  atomic_store(&once_effect, 42);
}

static int32_t call_once(void *arg, void **result) {
  (void)result;
  if (weft_once(&shared_once, slow_init, arg) != WEFT_OK) return 1;
  return atomic_load(&once_effect) == 42 ? 0 : 2;
}

static weft_once_t nested_once = WEFT_ONCE_INIT;
static weft_status_t nested_status;

static void reenter(void *ud) {
  (void)ud;
  nested_status = weft_once(&nested_once, reenter, NULL);
}

TEST_IMPL(once_under_contention) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t[8];
  for (int i = 0; i < 8; i++) t[i] = test_spawn(rt, call_once, rt);
  for (int i = 0; i < 8; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&once_runs), 1);
  ASSERT_OK(weft_once(&shared_once, slow_init, rt)); /* done: nothing runs */
  ASSERT_EQ(atomic_load(&once_runs), 1);
  ASSERT_OK(weft_once(&nested_once, reenter, NULL));
  ASSERT_EQ(nested_status, WEFT_EDEADLK);
  ASSERT_STATUS(WEFT_EINVAL, weft_once(NULL, reenter, NULL));
  test_close_runtime(rt);
  return TEST_OK;
}

/* fork() while a thread runs a once's function: the child does not have that thread,
 * and its first weft_once runs the function itself (as pthread_once does); it waited
 * for ever before. The parent's once is untouched: its function ran once. */
static weft_once_t forked_once = WEFT_ONCE_INIT;
static atomic_int forked_once_in, forked_once_release, forked_once_runs;

static void run_until_released(void *ud) {
  (void)ud;
  atomic_fetch_add(&forked_once_runs, 1);
  atomic_store(&forked_once_in, 1);
  while (!atomic_load(&forked_once_release)) usleep(1000);
}

static void mark_ran(void *ud) { *(int *)ud = 1; }

static void *call_forked_once(void *arg) {
  (void)arg;
  ASSERT_OK(weft_once(&forked_once, run_until_released, NULL));
  return NULL;
}

TEST_IMPL(once_running_at_fork_runs_in_the_child) {
  weft_runtime_t *rt = test_open_runtime();
  pthread_t runner;
  ASSERT(pthread_create(&runner, NULL, call_forked_once, NULL) == 0);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&forked_once_in)) {
    ASSERT(weft_now(rt) < give_up);
    usleep(1000);
  }
  pid_t child = fork();
  ASSERT(child >= 0);
  if (child == 0) {
    int ran = 0;
    weft_status_t st = weft_once(&forked_once, mark_ran, &ran);
    int again = 0;
    weft_status_t st2 = weft_once(&forked_once, mark_ran, &again);
    test_child_exit(st == WEFT_OK && ran == 1 && st2 == WEFT_OK && again == 0 ? 0 : 1);
  }
  ASSERT_EQ(test_wait_child(child, "a once running at the fork"), 0);
  atomic_store(&forked_once_release, 1);
  ASSERT(pthread_join(runner, NULL) == 0);
  int ran = 0;
  ASSERT_OK(weft_once(&forked_once, mark_ran, &ran));
  ASSERT_EQ(ran, 0);
  ASSERT_EQ(atomic_load(&forked_once_runs), 1);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A waiter of a once that is cancelled keeps waiting (a once is no cancellation
 * point) and lets the runner finish: on green with one worker the runner needs the
 * waiter's worker back, which a waiter spinning on its cancelled parks never gave. */
static weft_once_t cancelled_waiter_once = WEFT_ONCE_INIT;
static atomic_int cancelled_waiter_runner_in;
static atomic_int cancelled_waiter_release;

/* Runs until the test releases it, asleep in 1 ms steps (each needs the worker back). */
static void sleepy_init(void *ud) {
  atomic_store(&cancelled_waiter_runner_in, 1);
  while (!atomic_load(&cancelled_waiter_release)) test_sleep_ms(ud, 1);
  atomic_store(&once_effect, 7);
}

static int32_t run_sleepy_once(void *arg, void **result) {
  (void)result;
  return weft_once(&cancelled_waiter_once, sleepy_init, arg) == WEFT_OK ? 0 : 1;
}

TEST_IMPL(once_waiter_cancelled_keeps_waiting) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.workers = 1;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  weft_task_t *runner = test_spawn(rt, run_sleepy_once, rt);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&cancelled_waiter_runner_in)) {
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  weft_task_t *waiter = test_spawn(rt, run_sleepy_once, rt);
  test_wait_blocked(rt, waiter);
  ASSERT_OK(weft_cancel(waiter));
  test_sleep_ms(rt, 20); /* the runner sleeps and wakes meanwhile */
  atomic_store(&cancelled_waiter_release, 1);
  ASSERT_EQ(test_join(runner), 0);
  ASSERT_EQ(test_join(waiter), 0);
  ASSERT_EQ(atomic_load(&once_effect), 7);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task waits for a once whose function a host thread (no task of any runtime) runs:
 * it returns once the function has. On sim the waiter parked for ever, on the word of
 * the runner's wake-up, which sim refuses from a thread it does not run: the run ended
 * in the deadlock report. */
static weft_once_t host_run_once = WEFT_ONCE_INIT;
static atomic_int host_once_in, host_once_release;

static void run_on_host_until_released(void *ud) {
  (void)ud;
  atomic_store(&host_once_in, 1);
  while (!atomic_load(&host_once_release)) usleep(1000);
  atomic_store(&once_effect, 9);
}

static void *call_host_once(void *arg) {
  (void)arg;
  ASSERT_OK(weft_once(&host_run_once, run_on_host_until_released, NULL));
  return NULL;
}

static int32_t wait_for_host_once(void *arg, void **result) {
  (void)arg;
  (void)result;
  if (weft_once(&host_run_once, run_on_host_until_released, NULL) != WEFT_OK) return 1;
  return atomic_load(&once_effect) == 9 ? 0 : 2;
}

TEST_IMPL(once_run_by_a_host_thread) {
  weft_runtime_t *rt = test_open_runtime();
  pthread_t runner;
  ASSERT(pthread_create(&runner, NULL, call_host_once, NULL) == 0);
  int64_t give_up = test_real_patience_end();
  while (!atomic_load(&host_once_in)) {
    ASSERT(test_real_now_ns() < give_up);
    usleep(1000);
  }
  weft_task_t *waiter = test_spawn(rt, wait_for_host_once, NULL);
  test_wait_blocked(rt, waiter);
  atomic_store(&host_once_release, 1);
  ASSERT(pthread_join(runner, NULL) == 0);
  ASSERT_EQ(test_join(waiter), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- parked tasks and stop-the-world; identity ---- */

static int32_t id_matches(void *arg, void **result) {
  (void)arg;
  (void)result;
  return weft_self_id() == weft_task_id(weft_task_self()) ? 0 : 1;
}

TEST_IMPL(parking_under_stop_and_identity) {
  weft_runtime_t *rt = test_open_runtime();
  parked_t p;
  memset(&p, 0, sizeof p);
  p.rt = rt;
  weft_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, park_on_word, &p);
  test_sleep_ms(rt, 10);
  ASSERT_OK(weft_thread_attach(rt));
  /* Parked tasks are in blocking regions: the stop does not wait for them. */
  ASSERT_OK(weft_stw_begin(rt, test_after_ms(rt, TEST_PATIENCE_MS)));
  ASSERT_OK(weft_stw_end(rt));
  ASSERT_OK(weft_thread_detach(rt));
  atomic_store(&p.word, 1);
  weft_wake(rt, (const void *)&p.word, SIZE_MAX);
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 0);

  uint64_t me = weft_self_id();
  ASSERT(me != 0 && me == weft_self_id());
  ASSERT_EQ(test_join(test_spawn(rt, id_matches, NULL)), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A detached spawn tells its id; a task (or thread) renames itself and is shown so. */
static int32_t rename_self(void *arg, void **result) {
  (void)result;
  if (weft_task_set_name("renamed-task") != WEFT_OK) return 1;
  const char *name = weft_task_name();
  if (name == NULL || strcmp(name, "renamed-task") != 0) return 2;
  *(uint64_t *)arg = weft_self_id();
  return 0;
}

TEST_IMPL(spawn_id_out_and_names) {
  weft_runtime_t *rt = test_open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  uint64_t id = 0, seen = 0;
  opts.id_out = &id;
  opts.name = "first-name";
  weft_task_t *t = NULL;
  ASSERT_OK(weft_spawn(rt, rename_self, &seen, &opts, &t));
  ASSERT(id != 0 && id == weft_task_id(t));
  ASSERT_EQ(test_join(t), 0);
  ASSERT(seen == id);
  opts.flags = WEFT_SPAWN_DETACHED;
  uint64_t detached_id = 0;
  opts.id_out = &detached_id;
  ASSERT_OK(weft_spawn(rt, rename_self, &seen, &opts, NULL));
  ASSERT(detached_id != 0 && detached_id != id);
  ASSERT_OK(weft_runtime_drain(rt, WEFT_FOREVER));
  ASSERT(seen == detached_id);
  ASSERT_STATUS(WEFT_EINVAL, weft_task_set_name(NULL));
  test_close_runtime(rt);
  return TEST_OK;
}
