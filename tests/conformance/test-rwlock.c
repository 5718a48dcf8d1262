/* Readers-writer locks: shared and exclusive access, try and timed variants, error
 * checks, writer preference (and a timed writer that gives up), and readers and
 * writers with an invariant. */
#include <stdatomic.h>

#include "test.h"

typedef weft_status_t (*rw_op_t)(weft_rwlock_t *);

typedef struct {
  weft_rwlock_t *l;
  rw_op_t op;
} rw_call_t;

static int32_t run_op_and_release(void *arg, void **result) {
  rw_call_t *c = arg;
  (void)result;
  weft_status_t st = c->op(c->l);
  if (st == WEFT_OK && weft_rwlock_unlock(c->l) != WEFT_OK) return 99;
  return st;
}

/* The status another task gets from `op` (releasing what it got). */
static weft_status_t from_other_task(weft_runtime_t *rt, weft_rwlock_t *l, rw_op_t op) {
  rw_call_t c = {l, op};
  return test_join(test_spawn(rt, run_op_and_release, &c));
}

TEST_IMPL(rwlock_basics) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_try_read_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_try_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_destroy(&l));
  ASSERT_OK(weft_rwlock_init(rt, &l)); /* re-initialised after destroy */
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_destroy(&l));
  test_close_runtime(rt);
  return TEST_OK;
}

/* While a writer holds the lock nobody else gets in; while readers hold it, other
 * readers do and writers do not. */
TEST_IMPL(rwlock_exclusion_and_try) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_try_read_lock), WEFT_EBUSY);
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_try_write_lock), WEFT_EBUSY);
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_try_read_lock), WEFT_OK);
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_read_lock), WEFT_OK);
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_try_write_lock), WEFT_EBUSY);
  ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_try_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_try_write_lock), WEFT_OK);
  ASSERT_EQ(from_other_task(rt, &l, weft_rwlock_write_lock), WEFT_OK);
  ASSERT_OK(weft_rwlock_destroy(&l));
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_rwlock_t l;
  atomic_int inside;
  atomic_int max_inside;
  atomic_int order;
  int writer_order, reader_order;
  int n;
} shared_t;

static int32_t read_together(void *arg, void **result) {
  shared_t *s = arg;
  (void)result;
  if (weft_rwlock_read_lock(&s->l) != WEFT_OK) return 1;
  atomic_fetch_add(&s->inside, 1);
  /* Wait, holding the read lock, until every reader is inside: only possible if
   * readers really share the lock. */
  int64_t give_up = weft_deadline_after(s->rt, (int64_t)TEST_PATIENCE_MS * 1000000);
  while (atomic_load(&s->inside) < s->n) {
    if (weft_now(s->rt) > give_up) return 2;
    if (weft_yield(s->rt) != WEFT_OK) return 3;
  }
  return weft_rwlock_unlock(&s->l) == WEFT_OK ? 0 : 4;
}

TEST_IMPL(rwlock_readers_share) {
  weft_runtime_t *rt = test_open_runtime();
  static shared_t s;
  s.rt = rt;
  s.n = 4;
  ASSERT_OK(weft_rwlock_init(rt, &s.l));
  weft_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, read_together, &s);
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&s.inside), 4);
  ASSERT_OK(weft_rwlock_destroy(&s.l));
  test_close_runtime(rt);
  return TEST_OK;
}

/* The writer cannot take any lock on it again, nor a reader the write lock: WEFT_EDEADLK,
 * never a hang. */
TEST_IMPL(rwlock_writer_relock) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_write_lock(&l));
  ASSERT_ERROR_MENTIONS("weft_rwlock_write_lock");
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_read_lock(&l));
  /* The try variants refuse too (the header does not say which code: not OK). */
  ASSERT(weft_rwlock_try_write_lock(&l) != WEFT_OK);
  ASSERT(weft_rwlock_try_read_lock(&l) != WEFT_OK);
  ASSERT_OK(weft_rwlock_unlock(&l)); /* one unlock: the refusals took nothing */
  ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_try_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  /* No upgrade: a reader's write lock would wait for itself. WEFT_EDEADLK, at once. */
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_write_lock(&l));
  ASSERT_ERROR_MENTIONS("read-locked by the caller");
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_write_lock_until(&l, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_try_write_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_write_lock(&l)); /* the refusals took nothing */
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_destroy(&l));
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t unlock_status(void *arg, void **result) {
  (void)result;
  return weft_rwlock_unlock(arg);
}

typedef struct {
  weft_rwlock_t *l;
  int write;
  test_gate_t *gate;
  atomic_int holding;
} holder_t;

static int32_t hold_until_told(void *arg, void **result) {
  holder_t *h = arg;
  (void)result;
  if ((h->write ? weft_rwlock_write_lock(h->l) : weft_rwlock_read_lock(h->l)) != WEFT_OK) return 1;
  atomic_store(&h->holding, 1);
  if (test_gate_wait(h->gate) != WEFT_OK) return 2;
  return weft_rwlock_unlock(h->l) == WEFT_OK ? 0 : 3;
}

static void await_holding(weft_runtime_t *rt, holder_t *h) {
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&h->holding)) {
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
}

/* Unlocking what one does not hold is WEFT_EPERM (free lock, another task's write or
 * read lock); destroying a held lock is WEFT_EBUSY. */
TEST_IMPL(rwlock_unlock_and_destroy_rules) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&l));
  ASSERT_ERROR_MENTIONS("not held");
  for (int write = 0; write < 2; write++) {
    test_gate_t gate;
    test_gate_init(rt, &gate);
    holder_t h = {&l, write, &gate, 0};
    weft_task_t *t = test_spawn(rt, hold_until_told, &h);
    await_holding(rt, &h);
    ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&l));
    ASSERT_EQ(test_join(test_spawn(rt, unlock_status, &l)), WEFT_EPERM);
    ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_destroy(&l));
    ASSERT_ERROR_MENTIONS("held");
    test_gate_open(&gate);
    ASSERT_EQ(test_join(t), 0);
    test_gate_destroy(&gate);
  }
  /* A read lock of another rwlock does not let the caller release this one's reader. */
  weft_rwlock_t other;
  ASSERT_OK(weft_rwlock_init(rt, &other));
  ASSERT_OK(weft_rwlock_read_lock(&other));
  {
    test_gate_t gate;
    test_gate_init(rt, &gate);
    holder_t h = {&l, 0, &gate, 0};
    weft_task_t *t = test_spawn(rt, hold_until_told, &h);
    await_holding(rt, &h);
    ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&l));
    ASSERT_ERROR_MENTIONS("not held by the caller");
    ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_try_write_lock(&l)); /* the reader still holds it */
    test_gate_open(&gate);
    ASSERT_EQ(test_join(t), 0);
    test_gate_destroy(&gate);
  }
  ASSERT_OK(weft_rwlock_unlock(&other));
  ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&other));
  /* Each read lock is released once: two taken, two released, the third refused. */
  ASSERT_OK(weft_rwlock_read_lock(&other));
  ASSERT_OK(weft_rwlock_read_lock(&other));
  ASSERT_OK(weft_rwlock_unlock(&other));
  ASSERT_OK(weft_rwlock_unlock(&other));
  ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&other));
  ASSERT_OK(weft_rwlock_destroy(&other));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_destroy(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_destroy(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_destroy(&l));
  rw_op_t ops[] = {weft_rwlock_read_lock, weft_rwlock_try_read_lock, weft_rwlock_write_lock,
                   weft_rwlock_try_write_lock, weft_rwlock_unlock, weft_rwlock_destroy};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    ASSERT_STATUS(WEFT_EINVAL, ops[i](&l));
    ASSERT_ERROR_MENTIONS("destroyed");
  }
  for (int fill = 0; fill < 2; fill++) {
    memset(&l, fill ? 0xc3 : 0, sizeof l);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
      ASSERT_STATUS(WEFT_EINVAL, ops[i](&l));
      ASSERT_ERROR_MENTIONS("not initialised");
    }
  }
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t write_in_order(void *arg, void **result) {
  shared_t *s = arg;
  (void)result;
  if (weft_rwlock_write_lock(&s->l) != WEFT_OK) return 1;
  s->writer_order = atomic_fetch_add(&s->order, 1);
  return weft_rwlock_unlock(&s->l) == WEFT_OK ? 0 : 2;
}

static int32_t read_in_order(void *arg, void **result) {
  shared_t *s = arg;
  (void)result;
  if (weft_rwlock_read_lock(&s->l) != WEFT_OK) return 1;
  s->reader_order = atomic_fetch_add(&s->order, 1);
  return weft_rwlock_unlock(&s->l) == WEFT_OK ? 0 : 2;
}

/* Writers are not starved: once a writer waits, new readers wait behind it
 * (try_read_lock says WEFT_EBUSY), and the writer goes first when the readers leave. */
TEST_IMPL(rwlock_writer_goes_first) {
  weft_runtime_t *rt = test_open_runtime();
  static shared_t s;
  s.rt = rt;
  ASSERT_OK(weft_rwlock_init(rt, &s.l));
  test_gate_t gate;
  test_gate_init(rt, &gate);
  holder_t reader = {&s.l, 0, &gate, 0};
  weft_task_t *r1 = test_spawn(rt, hold_until_told, &reader);
  await_holding(rt, &reader);
  weft_task_t *w = test_spawn(rt, write_in_order, &s);
  /* Wait until the writer waits: from then on, new readers are refused. */
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  weft_status_t st;
  while ((st = weft_rwlock_try_read_lock(&s.l)) == WEFT_OK) {
    ASSERT_OK(weft_rwlock_unlock(&s.l));
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  ASSERT_STATUS(WEFT_EBUSY, st);
  weft_task_t *r2 = test_spawn(rt, read_in_order, &s);
  test_wait_blocked(rt, r2);
  test_gate_open(&gate);
  ASSERT_EQ(test_join(r1), 0);
  ASSERT_EQ(test_join(w), 0);
  ASSERT_EQ(test_join(r2), 0);
  ASSERT_EQ(s.writer_order, 0);
  ASSERT_EQ(s.reader_order, 1);
  test_gate_destroy(&gate);
  ASSERT_OK(weft_rwlock_destroy(&s.l));
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- a stream of readers, writers, and an invariant --------------------------- */

#define RW_READERS 4
#define RW_WRITERS 2
#define RW_WRITES 300          /* per writer */
#define RW_READ_BUDGET 2000000 /* per reader: bounds the test if writers starved */

typedef struct {
  weft_runtime_t *rt;
  weft_rwlock_t l;
  int64_t a, b; /* invariant under the lock: a == b */
  atomic_int writers_inside;
  atomic_int readers_inside;
  atomic_int violations;
  atomic_int stop;
  atomic_long reads;
  atomic_int budget_exhausted;
} stream_t;

static int32_t stream_reader(void *arg, void **result) {
  stream_t *s = arg;
  (void)result;
  for (long n = 0; !atomic_load(&s->stop); n++) {
    if (n == RW_READ_BUDGET) {
      atomic_store(&s->budget_exhausted, 1);
      return 0;
    }
    if (weft_rwlock_read_lock(&s->l) != WEFT_OK) return 1;
    atomic_fetch_add(&s->readers_inside, 1);
    if (atomic_load(&s->writers_inside) != 0) atomic_fetch_add(&s->violations, 1);
    int64_t a = s->a;
    if (weft_yield(s->rt) != WEFT_OK) return 2;
    if (s->b != a || s->a != a) atomic_fetch_add(&s->violations, 1);
    atomic_fetch_add(&s->readers_inside, -1);
    atomic_fetch_add(&s->reads, 1);
    if (weft_rwlock_unlock(&s->l) != WEFT_OK) return 3;
  }
  return 0;
}

static int32_t stream_writer(void *arg, void **result) {
  stream_t *s = arg;
  (void)result;
  for (int i = 0; i < RW_WRITES; i++) {
    if (weft_rwlock_write_lock(&s->l) != WEFT_OK) return 1;
    if (atomic_fetch_add(&s->writers_inside, 1) != 0) atomic_fetch_add(&s->violations, 1);
    if (atomic_load(&s->readers_inside) != 0) atomic_fetch_add(&s->violations, 1);
    s->a++;
    if (weft_yield(s->rt) != WEFT_OK) return 2;
    s->b++;
    atomic_fetch_add(&s->writers_inside, -1);
    if (weft_rwlock_unlock(&s->l) != WEFT_OK) return 3;
  }
  return 0;
}

/* Readers take the lock without pause while writers update a pair that must stay
 * equal. No reader sees a half update, no writer overlaps anything, and the writers
 * finish all their writes while the readers still stream (the readers' budget, which
 * only bounds the test, is never used up). */
TEST_IMPL(rwlock_readers_writers_stream) {
  weft_runtime_t *rt = test_open_runtime();
  static stream_t s;
  s.rt = rt;
  ASSERT_OK(weft_rwlock_init(rt, &s.l));
  weft_task_t *readers[RW_READERS], *writers[RW_WRITERS];
  for (int i = 0; i < RW_READERS; i++) readers[i] = test_spawn(rt, stream_reader, &s);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (atomic_load(&s.reads) < 1000) { /* the stream is flowing */
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  for (int i = 0; i < RW_WRITERS; i++) writers[i] = test_spawn(rt, stream_writer, &s);
  for (int i = 0; i < RW_WRITERS; i++) ASSERT_EQ(test_join(writers[i]), 0);
  ASSERT_EQ(atomic_load(&s.budget_exhausted), 0);
  atomic_store(&s.stop, 1);
  for (int i = 0; i < RW_READERS; i++) ASSERT_EQ(test_join(readers[i]), 0);
  ASSERT_EQ(atomic_load(&s.violations), 0);
  ASSERT_EQ(s.a, RW_WRITERS * RW_WRITES);
  ASSERT_EQ(s.b, RW_WRITERS * RW_WRITES);
  ASSERT_OK(weft_rwlock_destroy(&s.l));
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(rwlock_null_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_init(NULL, &l));
  ASSERT_ERROR_MENTIONS("runtime");
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_init(rt, NULL));
  ASSERT_ERROR_MENTIONS("rwlock");
  rw_op_t ops[] = {weft_rwlock_read_lock, weft_rwlock_try_read_lock, weft_rwlock_write_lock,
                   weft_rwlock_try_write_lock, weft_rwlock_unlock, weft_rwlock_destroy};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    ASSERT_STATUS(WEFT_EINVAL, ops[i](NULL));
    ASSERT_ERROR_MENTIONS("rwlock");
  }
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_read_lock_until(NULL, WEFT_FOREVER));
  ASSERT_ERROR_MENTIONS("weft_rwlock_read_lock_until");
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_write_lock_until(NULL, 0));
  ASSERT_ERROR_MENTIONS("weft_rwlock_write_lock_until");
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- timed locks ------------------------------------------------------------------- */

typedef struct {
  weft_rwlock_t *l;
  int write;
  int64_t deadline;
  int64_t returned_at; /* weft_now when the call returned */
  weft_runtime_t *rt;
} timed_t;

static weft_status_t lock_until(timed_t *t) {
  return t->write ? weft_rwlock_write_lock_until(t->l, t->deadline) : weft_rwlock_read_lock_until(t->l, t->deadline);
}

static int32_t timed_lock_and_release(void *arg, void **result) {
  timed_t *t = arg;
  (void)result;
  weft_status_t st = lock_until(t);
  t->returned_at = weft_now(t->rt);
  if (st == WEFT_OK && weft_rwlock_unlock(t->l) != WEFT_OK) return 99;
  return st;
}

/* The status another task gets from a timed lock (releasing what it got). */
static weft_status_t timed_from_other_task(weft_runtime_t *rt, weft_rwlock_t *l, int write, int64_t deadline,
                                           int64_t *returned_at) {
  timed_t t = {l, write, deadline, 0, rt};
  weft_status_t st = test_join(test_spawn(rt, timed_lock_and_release, &t));
  if (returned_at) *returned_at = t.returned_at;
  return st;
}

/* A timed lock takes a free lock whatever its deadline (a deadline already past: one
 * try), shares with readers as the untimed one does, and gives up at its deadline,
 * not before, with WEFT_ETIMEDOUT; the writer relocking is WEFT_EDEADLK. */
TEST_IMPL(rwlock_lock_until) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  int64_t past = weft_now(rt) - 1;
  for (int write = 0; write < 2; write++) {
    ASSERT_OK(write ? weft_rwlock_write_lock_until(&l, past) : weft_rwlock_read_lock_until(&l, past));
    ASSERT_OK(weft_rwlock_unlock(&l));
    ASSERT_OK(write ? weft_rwlock_write_lock_until(&l, WEFT_FOREVER) : weft_rwlock_read_lock_until(&l, -5));
    ASSERT_OK(weft_rwlock_unlock(&l));
  }
  /* Held for writing: both kinds give up at the deadline. */
  ASSERT_OK(weft_rwlock_write_lock(&l));
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_write_lock_until(&l, test_after_ms(rt, 10)));
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_read_lock_until(&l, past));
  for (int write = 0; write < 2; write++) {
    int64_t deadline = test_after_ms(rt, 30), returned_at = 0;
    ASSERT_EQ(timed_from_other_task(rt, &l, write, deadline, &returned_at), WEFT_ETIMEDOUT);
    ASSERT(returned_at >= deadline);
    ASSERT_EQ(timed_from_other_task(rt, &l, write, past, NULL), WEFT_ETIMEDOUT);
  }
  ASSERT_OK(weft_rwlock_unlock(&l));
  /* Held for reading: readers share, a writer gives up. */
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_EQ(timed_from_other_task(rt, &l, 0, test_after_ms(rt, 30), NULL), WEFT_OK);
  ASSERT_EQ(timed_from_other_task(rt, &l, 0, past, NULL), WEFT_OK);
  ASSERT_EQ(timed_from_other_task(rt, &l, 1, test_after_ms(rt, 30), NULL), WEFT_ETIMEDOUT);
  ASSERT_OK(weft_rwlock_unlock(&l));
  /* A lock released before the deadline is taken: the waiter blocks, then gets in. */
  for (int write = 0; write < 2; write++) {
    test_gate_t gate;
    test_gate_init(rt, &gate);
    holder_t h = {&l, 1, &gate, 0};
    weft_task_t *holder = test_spawn(rt, hold_until_told, &h);
    await_holding(rt, &h);
    timed_t t = {&l, write, test_after_ms(rt, TEST_PATIENCE_MS), 0, rt};
    weft_task_t *waiter = test_spawn(rt, timed_lock_and_release, &t);
    test_wait_blocked(rt, waiter);
    test_gate_open(&gate);
    ASSERT_EQ(test_join(holder), 0);
    ASSERT_EQ(test_join(waiter), WEFT_OK);
    test_gate_destroy(&gate);
  }
  ASSERT_OK(weft_rwlock_destroy(&l));
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_read_lock_until(&l, WEFT_FOREVER));
  ASSERT_ERROR_MENTIONS("destroyed");
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_write_lock_until(&l, WEFT_FOREVER));
  ASSERT_ERROR_MENTIONS("destroyed");
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_rwlock_t *l;
  weft_runtime_t *rt;
  atomic_int saw_writer_waiting; /* its first try was refused: a writer waited */
  atomic_int inside;
} late_reader_t;

static int32_t late_reader(void *arg, void **result) {
  late_reader_t *r = arg;
  (void)result;
  weft_status_t st = weft_rwlock_try_read_lock(r->l);
  if (st == WEFT_OK) return weft_rwlock_unlock(r->l) == WEFT_OK ? 0 : 1; /* the writer gave up already */
  if (st != WEFT_EBUSY) return 2;
  atomic_store(&r->saw_writer_waiting, 1);
  /* Bounded, so that a reader nobody lets in fails the test instead of hanging it. */
  st = weft_rwlock_read_lock_until(r->l, test_after_ms(r->rt, TEST_PATIENCE_MS));
  if (st != WEFT_OK) return st == WEFT_ETIMEDOUT ? 5 : 3;
  atomic_store(&r->inside, 1);
  return weft_rwlock_unlock(r->l) == WEFT_OK ? 0 : 4;
}

/* A waiting writer holds new readers back; when it gives up at its deadline, the
 * readers it held back go in, while the first reader still holds the lock (no unlock
 * wakes them). Repeated until a round shows a reader held back (a slow machine may let
 * the writer give up before the reader comes). */
TEST_IMPL(rwlock_writer_gives_up) {
  weft_runtime_t *rt = test_open_runtime();
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  int held_back = 0;
  for (int round = 0; round < 6 && !held_back; round++) {
    test_gate_t gate;
    test_gate_init(rt, &gate);
    holder_t first = {&l, 0, &gate, 0};
    weft_task_t *r1 = test_spawn(rt, hold_until_told, &first);
    await_holding(rt, &first);
    timed_t w = {&l, 1, test_after_ms(rt, 100 << round), 0, rt};
    weft_task_t *writer = test_spawn(rt, timed_lock_and_release, &w);
    /* The late reader comes once the writer waits (new readers are refused). */
    weft_status_t st;
    while ((st = weft_rwlock_try_read_lock(&l)) == WEFT_OK && weft_now(rt) < w.deadline) {
      ASSERT_OK(weft_rwlock_unlock(&l));
      test_sleep_ms(rt, 1);
    }
    if (st == WEFT_OK) ASSERT_OK(weft_rwlock_unlock(&l));
    late_reader_t r = {&l, rt, 0, 0};
    weft_task_t *r2 = test_spawn(rt, late_reader, &r);
    ASSERT_EQ(test_join(writer), WEFT_ETIMEDOUT);
    ASSERT_EQ(test_join(r2), 0); /* in, with the first reader inside */
    held_back = atomic_load(&r.saw_writer_waiting);
    ASSERT_EQ(atomic_load(&r.inside), held_back);
    test_gate_open(&gate);
    ASSERT_EQ(test_join(r1), 0);
    test_gate_destroy(&gate);
  }
  ASSERT(held_back);
  ASSERT_OK(weft_rwlock_destroy(&l));
  test_close_runtime(rt);
  return TEST_OK;
}

#define TW_ROUNDS 400

typedef struct {
  weft_runtime_t *rt;
  weft_rwlock_t l;
  int64_t a, b; /* a == b under the lock */
  atomic_int writers_inside, readers_inside, violations;
  atomic_long timed_out, writes;
  atomic_int seed;
} timed_stream_t;

static int64_t short_deadline(timed_stream_t *s) {
  int r = atomic_fetch_add(&s->seed, 7919) % 200; /* 0-199 us, some already past */
  return weft_now(s->rt) + (int64_t)(r - 20) * 1000;
}

static int32_t timed_writer(void *arg, void **result) {
  timed_stream_t *s = arg;
  (void)result;
  for (int i = 0; i < TW_ROUNDS; i++) {
    weft_status_t st = (i % 4 == 3) ? weft_rwlock_write_lock(&s->l) : weft_rwlock_write_lock_until(&s->l, short_deadline(s));
    if (st == WEFT_ETIMEDOUT) {
      atomic_fetch_add(&s->timed_out, 1);
      continue;
    }
    if (st != WEFT_OK) return 1;
    if (atomic_fetch_add(&s->writers_inside, 1) != 0 || atomic_load(&s->readers_inside) != 0)
      atomic_fetch_add(&s->violations, 1);
    s->a++;
    if (weft_yield(s->rt) != WEFT_OK) return 2;
    s->b++;
    atomic_fetch_add(&s->writes, 1);
    atomic_fetch_add(&s->writers_inside, -1);
    if (weft_rwlock_unlock(&s->l) != WEFT_OK) return 3;
  }
  return 0;
}

static int32_t timed_reader(void *arg, void **result) {
  timed_stream_t *s = arg;
  (void)result;
  for (int i = 0; i < TW_ROUNDS; i++) {
    weft_status_t st = (i % 3 == 2) ? weft_rwlock_read_lock(&s->l) : weft_rwlock_read_lock_until(&s->l, short_deadline(s));
    if (st == WEFT_ETIMEDOUT) {
      atomic_fetch_add(&s->timed_out, 1);
      continue;
    }
    if (st != WEFT_OK) return 1;
    atomic_fetch_add(&s->readers_inside, 1);
    if (atomic_load(&s->writers_inside) != 0) atomic_fetch_add(&s->violations, 1);
    int64_t a = s->a;
    if (weft_yield(s->rt) != WEFT_OK) return 2;
    if (s->a != a || s->b != a) atomic_fetch_add(&s->violations, 1);
    atomic_fetch_add(&s->readers_inside, -1);
    if (weft_rwlock_unlock(&s->l) != WEFT_OK) return 3;
  }
  return 0;
}

/* Timed and untimed readers and writers on one lock, the timed ones with deadlines of
 * at most 180 us (some already past): nobody overlaps a writer, nobody sees a half
 * update, and every task ends (a wake-up lost to a waiter that gave up would leave an
 * untimed one parked for ever, and the join would never return). */
TEST_IMPL(rwlock_timed_waiters_stream) {
  weft_runtime_t *rt = test_open_runtime();
  static timed_stream_t s;
  s.rt = rt;
  ASSERT_OK(weft_rwlock_init(rt, &s.l));
  weft_task_t *t[6];
  for (int i = 0; i < 6; i++) t[i] = test_spawn(rt, i % 2 ? timed_writer : timed_reader, &s);
  for (int i = 0; i < 6; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&s.violations), 0);
  ASSERT_EQ(s.a, atomic_load(&s.writes));
  ASSERT_EQ(s.b, s.a);
  ASSERT(atomic_load(&s.writes) >= 3 * TW_ROUNDS / 4); /* the untimed writes at least */
  ASSERT_OK(weft_rwlock_destroy(&s.l));
  test_close_runtime(rt);
  return TEST_OK;
}
