/* Mutexes: plain and recursive, trylock, lock_until, error checks, real contention. */
#include <stdatomic.h>

#include "test.h"

#define THREADS 8
#define INCREMENTS 100000 /* per task; see test_volume */

static int increments; /* test_volume(INCREMENTS), set by each test */

typedef struct {
  weft_mutex_t m;
  long counter;
} shared_counter_t;

static int32_t increment(void *arg, void **result) {
  (void)result;
  shared_counter_t *s = arg;
  for (int i = 0; i < increments; i++) {
    if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
    s->counter++;
    if (weft_mutex_unlock(&s->m) != WEFT_OK) return 2;
  }
  return 0;
}

TEST_IMPL(mutex_counter_8_threads) {
  increments = (int)test_volume(INCREMENTS);
  weft_runtime_t *rt = test_open_runtime();
  shared_counter_t s = {.counter = 0};
  ASSERT_OK(weft_mutex_init(rt, &s.m, 0));
  weft_task_t *t[THREADS];
  for (int i = 0; i < THREADS; i++) t[i] = test_spawn(rt, increment, &s);
  for (int i = 0; i < THREADS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(s.counter, (long)THREADS * increments);
  ASSERT_OK(weft_mutex_destroy(&s.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* The same with every way to lock: lock, trylock (spinning), lock_until. */
static int32_t increment_mixed(void *arg, void **result) {
  (void)result;
  shared_counter_t *s = arg;
  for (int i = 0; i < increments / 4; i++) {
    weft_status_t st;
    switch (i % 3) {
      case 0: st = weft_mutex_lock(&s->m); break;
      case 1:
        while ((st = weft_mutex_try_lock(&s->m)) == WEFT_EBUSY) {
        }
        break;
      default: st = weft_mutex_lock_until(&s->m, WEFT_FOREVER); break;
    }
    if (st != WEFT_OK) return 1;
    s->counter++;
    if (weft_mutex_unlock(&s->m) != WEFT_OK) return 2;
  }
  return 0;
}

TEST_IMPL(mutex_counter_mixed_locking) {
  increments = (int)test_volume(INCREMENTS);
  weft_runtime_t *rt = test_open_runtime();
  for (uint32_t flags = 0; flags <= WEFT_MUTEX_RECURSIVE; flags++) {
    shared_counter_t s = {.counter = 0};
    ASSERT_OK(weft_mutex_init(rt, &s.m, flags));
    weft_task_t *t[4];
    for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, increment_mixed, &s);
    for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 0);
    ASSERT_EQ(s.counter, 4L * (increments / 4));
    ASSERT_OK(weft_mutex_destroy(&s.m));
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* Waiters that give up beside waiters that never do: every lock_until either takes the
 * lock or times out, the waits without a deadline all end (a release lost to a waiter
 * that gave up, or a parked bit cleared while others are parked, would leave one parked
 * for ever), and the counter adds up. Holders sometimes keep the lock across a yield so
 * that deadlines do pass. */
typedef struct {
  shared_counter_t *s;
  weft_runtime_t *rt;
  int patient; /* waits without a deadline */
  long taken;
  long timed_out;
} impatient_t;

static int32_t lock_impatiently(void *arg, void **result) {
  (void)result;
  impatient_t *w = arg;
  for (int i = 0; i < increments / 8; i++) {
    weft_status_t st = w->patient ? weft_mutex_lock(&w->s->m)
                                  : weft_mutex_lock_until(&w->s->m, weft_deadline_after(w->rt, 20000));
    if (st == WEFT_ETIMEDOUT && !w->patient) {
      w->timed_out++;
      continue;
    }
    if (st != WEFT_OK) return 1;
    w->s->counter++;
    w->taken++;
    if (i % 64 == 0 && weft_yield(w->rt) != WEFT_OK) return 3;
    if (weft_mutex_unlock(&w->s->m) != WEFT_OK) return 2;
  }
  return 0;
}

TEST_IMPL(mutex_timed_waiters_give_up) {
  increments = (int)test_volume(INCREMENTS);
  weft_runtime_t *rt = test_open_runtime();
  shared_counter_t s = {.counter = 0};
  ASSERT_OK(weft_mutex_init(rt, &s.m, 0));
  impatient_t w[THREADS];
  weft_task_t *t[THREADS];
  for (int i = 0; i < THREADS; i++) {
    w[i] = (impatient_t){.s = &s, .rt = rt, .patient = i % 2};
    t[i] = test_spawn(rt, lock_impatiently, &w[i]);
  }
  long taken = 0;
  for (int i = 0; i < THREADS; i++) {
    ASSERT_EQ(test_join(t[i]), 0);
    taken += w[i].taken;
    ASSERT_EQ(w[i].taken + w[i].timed_out, (long)(increments / 8));
    if (w[i].patient) ASSERT_EQ(w[i].timed_out, 0);
  }
  ASSERT_EQ(s.counter, taken);
  ASSERT_OK(weft_mutex_destroy(&s.m));
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(mutex_plain_basics) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_try_lock(&m));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_lock_until(&m, WEFT_FOREVER));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_lock_until(&m, 0)); /* past deadline: one try, which succeeds */
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_lock_until(&m, test_after_ms(rt, 10)));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  /* Re-initialising a destroyed mutex makes it usable again. */
  ASSERT_OK(weft_mutex_init(rt, &m, WEFT_MUTEX_RECURSIVE));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  /* A mutex in a struct on the heap, as a VM would keep one per object. */
  weft_mutex_t *heap = malloc(3 * sizeof *heap);
  ASSERT(heap != NULL);
  for (int i = 0; i < 3; i++) ASSERT_OK(weft_mutex_init(rt, &heap[i], 0));
  for (int i = 0; i < 3; i++) ASSERT_OK(weft_mutex_lock(&heap[i]));
  for (int i = 2; i >= 0; i--) ASSERT_OK(weft_mutex_unlock(&heap[i]));
  for (int i = 0; i < 3; i++) ASSERT_OK(weft_mutex_destroy(&heap[i]));
  free(heap);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Error checking, always: a relock by the owner is WEFT_EDEADLK by every path and
 * changes nothing; unlocking an unlocked mutex is WEFT_EPERM. */
TEST_IMPL(mutex_relock_deadlock) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&m));
  ASSERT_ERROR_MENTIONS("not locked");
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock(&m));
  ASSERT_ERROR_MENTIONS("weft_mutex_lock");
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_try_lock(&m));
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock_until(&m, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock_until(&m, 0));
  ASSERT_OK(weft_mutex_unlock(&m)); /* one unlock frees it: the relocks did not count */
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_try_lock(&m));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  atomic_int phase;
  atomic_int got_it;
} contender_t;

/* Another task's view of a mutex the test holds (or not). */
static int32_t try_from_other_task(void *arg, void **result) {
  contender_t *c = arg;
  (void)result;
  weft_status_t st = weft_mutex_try_lock(&c->m);
  if (st == WEFT_OK && weft_mutex_unlock(&c->m) != WEFT_OK) return 99;
  return st;
}

static weft_status_t other_task_trylock(weft_runtime_t *rt, contender_t *c) {
  weft_task_t *t = test_spawn(rt, try_from_other_task, c);
  return test_join(t);
}

/* Recursive: each lock needs its unlock; the mutex is free only after the last; other
 * tasks see it held until then. */
TEST_IMPL(mutex_recursive_depth) {
  weft_runtime_t *rt = test_open_runtime();
  contender_t c;
  memset(&c, 0, sizeof c);
  ASSERT_OK(weft_mutex_init(rt, &c.m, WEFT_MUTEX_RECURSIVE));
  ASSERT_OK(weft_mutex_lock(&c.m));
  ASSERT_OK(weft_mutex_lock(&c.m));
  ASSERT_OK(weft_mutex_try_lock(&c.m));
  ASSERT_OK(weft_mutex_lock_until(&c.m, 0));
  ASSERT_OK(weft_mutex_lock_until(&c.m, WEFT_FOREVER));
  for (int depth = 5; depth > 0; depth--) {
    ASSERT_EQ(other_task_trylock(rt, &c), WEFT_EBUSY);
    ASSERT_STATUS(WEFT_EBUSY, weft_mutex_destroy(&c.m));
    ASSERT_OK(weft_mutex_unlock(&c.m));
  }
  ASSERT_EQ(other_task_trylock(rt, &c), 0);
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&c.m));
  /* Deep recursion. */
  for (int i = 0; i < 10000; i++) ASSERT_OK(weft_mutex_lock(&c.m));
  for (int i = 0; i < 10000; i++) ASSERT_OK(weft_mutex_unlock(&c.m));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&c.m));
  ASSERT_OK(weft_mutex_destroy(&c.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A recursive mutex counts 2^24 levels (the first lock and 16,777,215 more); one more
 * lock is WEFT_ENOMEM, and leaves the count as it was: every level still needs its
 * unlock, and the mutex is free after the last. */
TEST_IMPL(mutex_recursive_level_limit) {
  if (test_under_valgrind()) {
    fprintf(stderr, "skip: 33 million lock and unlock calls under valgrind\n");
    return TEST_SKIP;
  }
  weft_runtime_t *rt = test_open_runtime();
  contender_t c;
  memset(&c, 0, sizeof c);
  ASSERT_OK(weft_mutex_init(rt, &c.m, WEFT_MUTEX_RECURSIVE));
  const uint32_t levels = UINT32_C(1) << 24;
  for (uint32_t i = 0; i < levels; i++) ASSERT_OK(weft_mutex_lock(&c.m));
  ASSERT_STATUS(WEFT_ENOMEM, weft_mutex_lock(&c.m));
  ASSERT(strstr(weft_last_error(), "is held 16777216 times already") != NULL);
  ASSERT_STATUS(WEFT_ENOMEM, weft_mutex_try_lock(&c.m));
  ASSERT_EQ(other_task_trylock(rt, &c), WEFT_EBUSY);
  for (uint32_t i = 1; i < levels; i++) ASSERT_OK(weft_mutex_unlock(&c.m));
  ASSERT_EQ(other_task_trylock(rt, &c), WEFT_EBUSY);
  ASSERT_OK(weft_mutex_unlock(&c.m));
  ASSERT_EQ(other_task_trylock(rt, &c), 0);
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&c.m));
  ASSERT_OK(weft_mutex_destroy(&c.m));
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t contend_while_held(void *arg, void **result) {
  contender_t *c = arg;
  (void)result;
  if (weft_mutex_try_lock(&c->m) != WEFT_EBUSY) return 1;
  if (strstr(weft_last_error(), "weft_mutex_try_lock") == NULL) return 2;
  int64_t deadline = weft_deadline_after(c->rt, 30 * 1000000);
  if (weft_mutex_lock_until(&c->m, deadline) != WEFT_ETIMEDOUT) return 3;
  if (weft_now(c->rt) < deadline) return 4; /* it waited until the deadline */
  if (weft_mutex_lock_until(&c->m, 0) != WEFT_ETIMEDOUT) return 5; /* past: one try */
  if (weft_mutex_lock_until(&c->m, weft_now(c->rt)) != WEFT_ETIMEDOUT) return 6;
  if (weft_mutex_unlock(&c->m) != WEFT_EPERM) return 7; /* not the owner */
  if (strstr(weft_last_error(), "not by the caller") == NULL) return 8;
  if (weft_mutex_destroy(&c->m) != WEFT_EBUSY) return 9;
  atomic_store(&c->phase, 1);
  /* The owner lets go while we wait: a long lock_until gets it. */
  if (weft_mutex_lock_until(&c->m, weft_deadline_after(c->rt, 60000000000LL)) != WEFT_OK) return 10;
  atomic_store(&c->got_it, 1);
  if (weft_mutex_unlock(&c->m) != WEFT_OK) return 11;
  return 0;
}

/* Another task: trylock WEFT_EBUSY, lock_until WEFT_ETIMEDOUT (a past deadline is one
 * try), unlock WEFT_EPERM, destroy WEFT_EBUSY; a timed lock succeeds once freed. */
TEST_IMPL(mutex_contention_errors) {
  weft_runtime_t *rt = test_open_runtime();
  contender_t c;
  memset(&c, 0, sizeof c);
  c.rt = rt;
  ASSERT_OK(weft_mutex_init(rt, &c.m, 0));
  ASSERT_OK(weft_mutex_lock(&c.m));
  weft_task_t *t = test_spawn(rt, contend_while_held, &c);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&c.phase)) {
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  test_sleep_ms(rt, 5); /* let it block in lock_until (not required) */
  ASSERT_EQ(atomic_load(&c.got_it), 0); /* never while we hold it */
  ASSERT_OK(weft_mutex_unlock(&c.m));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(atomic_load(&c.got_it), 1);
  ASSERT_OK(weft_mutex_destroy(&c.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* Destroy: WEFT_EBUSY while held; afterwards every call is WEFT_EINVAL. */
TEST_IMPL(mutex_destroy_rules) {
  weft_runtime_t *rt = test_open_runtime();
  for (uint32_t flags = 0; flags <= WEFT_MUTEX_RECURSIVE; flags++) {
    weft_mutex_t m;
    ASSERT_OK(weft_mutex_init(rt, &m, flags));
    ASSERT_OK(weft_mutex_lock(&m));
    ASSERT_STATUS(WEFT_EBUSY, weft_mutex_destroy(&m));
    ASSERT_ERROR_MENTIONS("held");
    ASSERT_OK(weft_mutex_unlock(&m)); /* the refused destroy changed nothing */
    ASSERT_OK(weft_mutex_destroy(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&m));
    ASSERT_ERROR_MENTIONS("destroyed");
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_try_lock(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock_until(&m, 0));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_unlock(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_destroy(&m));
    ASSERT_ERROR_MENTIONS("destroyed");
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* Memory that was never initialised (zeroed, or garbage) is refused. */
TEST_IMPL(mutex_uninitialised) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  for (int fill = 0; fill < 2; fill++) {
    memset(&m, fill ? 0xa5 : 0, sizeof m);
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&m));
    ASSERT_ERROR_MENTIONS("not initialised");
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_try_lock(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock_until(&m, 0));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_unlock(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_mutex_destroy(&m));
  }
  static weft_mutex_t global; /* zero-initialised static */
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&global));
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(mutex_bad_flags) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  memset(&m, 0, sizeof m);
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_init(rt, &m, 2));
  ASSERT_ERROR_MENTIONS("flags");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_init(rt, &m, WEFT_MUTEX_RECURSIVE | 0x80000000u));
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&m)); /* a refused init leaves nothing */
  /* Not a byte of the host's memory is written by a refused init. */
  weft_mutex_t pattern;
  memset(&pattern, 0xa5, sizeof pattern);
  memcpy(&m, &pattern, sizeof m);
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_init(rt, &m, 4));
  ASSERT(memcmp(&m, &pattern, sizeof m) == 0);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(mutex_null_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_init(NULL, &m, 0));
  ASSERT_ERROR_MENTIONS("runtime");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_init(rt, NULL, 0));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_destroy(NULL));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(NULL));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_try_lock(NULL));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock_until(NULL, WEFT_FOREVER));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_unlock(NULL));
  ASSERT_ERROR_MENTIONS("mutex");
  test_close_runtime(rt);
  return TEST_OK;
}

/* Host objects at addresses their type's alignment does not allow are refused with
 * WEFT_EINVAL, whatever the bytes there say (zeros, or a static initialiser's copied
 * in): their atomics would be undefined (a split lock across two cache lines on
 * x86-64, a fault on AArch64). Before, a debug build aborted and a release build
 * initialised and used them. */
static _Alignas(64) unsigned char misaligned_memory[1024];

#define ASSERT_MISALIGNED(call)           \
  do {                                    \
    ASSERT_STATUS(WEFT_EINVAL, call);     \
    ASSERT_ERROR_MENTIONS("not aligned"); \
  } while (0)

TEST_IMPL(sync_objects_misaligned) {
  weft_runtime_t *rt = test_open_runtime();
  const weft_mutex_t static_mutex = WEFT_MUTEX_INIT;
  const weft_cond_t static_cond = WEFT_COND_INIT;
  static const size_t offsets[] = {1, 4, 61};
  for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
    unsigned char *at = misaligned_memory + 64 * (1 + 3 * i) + offsets[i];
    weft_mutex_t *m = (weft_mutex_t *)at;
    weft_cond_t *c = (weft_cond_t *)(at + 256);
    memset(misaligned_memory, 0, sizeof misaligned_memory);
    ASSERT_MISALIGNED(weft_mutex_init(rt, m, 0));
    ASSERT_MISALIGNED(weft_cond_init(rt, c));
    ASSERT_MISALIGNED(weft_rwlock_init(rt, (weft_rwlock_t *)at));
    ASSERT_MISALIGNED(weft_sem_init(rt, (weft_sem_t *)at, 1));
    ASSERT_MISALIGNED(weft_barrier_init(rt, (weft_barrier_t *)at, 2));
    ASSERT_MISALIGNED(weft_once((weft_once_t *)at, (weft_once_fn)abort, NULL));
    if (offsets[i] % 4 != 0) ASSERT_MISALIGNED(weft_wait_on(rt, (const uint32_t *)at, 1, 0));
    for (int fill = 0; fill < 2; fill++) {
      if (fill) {
        memcpy(at, &static_mutex, sizeof static_mutex);
        memcpy(at + 256, &static_cond, sizeof static_cond);
      }
      ASSERT_MISALIGNED(weft_mutex_lock(m));
      ASSERT_MISALIGNED(weft_mutex_try_lock(m));
      ASSERT_MISALIGNED(weft_mutex_lock_until(m, 0));
      ASSERT_MISALIGNED(weft_mutex_unlock(m));
      ASSERT_MISALIGNED(weft_mutex_destroy(m));
      ASSERT_MISALIGNED(weft_cond_signal(c));
      ASSERT_MISALIGNED(weft_cond_broadcast(c));
      ASSERT_MISALIGNED(weft_cond_destroy(c));
      ASSERT_MISALIGNED(weft_rwlock_read_lock((weft_rwlock_t *)at));
      ASSERT_MISALIGNED(weft_rwlock_destroy((weft_rwlock_t *)at));
      ASSERT_MISALIGNED(weft_sem_post((weft_sem_t *)at));
      ASSERT_MISALIGNED(weft_barrier_wait((weft_barrier_t *)at, NULL));
    }
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task that ends while holding a mutex leaves it held (by nobody alive): others
 * get WEFT_EBUSY from trylock and WEFT_EPERM from unlock, never a hang or a crash. */
static int32_t lock_and_leave(void *arg, void **result) {
  (void)result;
  return weft_mutex_lock(arg);
}

TEST_IMPL(mutex_owner_exited) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  weft_task_t *t = test_spawn(rt, lock_and_leave, &m);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_STATUS(WEFT_EBUSY, weft_mutex_try_lock(&m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_mutex_lock_until(&m, test_after_ms(rt, 5)));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&m));
  ASSERT_STATUS(WEFT_EBUSY, weft_mutex_destroy(&m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A lock still held when its runtime closes can be released and destroyed after, on
 * every platform (sim too, though it no longer runs a scheduler then); taking it again
 * is refused, since the runtime is gone. */
TEST_IMPL(mutex_held_across_close) {
  weft_runtime_t *rt = test_open_runtime();
  weft_mutex_t m;
  weft_rwlock_t w, r;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_OK(weft_rwlock_init(rt, &w));
  ASSERT_OK(weft_rwlock_init(rt, &r));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_OK(weft_rwlock_write_lock(&w));
  ASSERT_OK(weft_rwlock_read_lock(&r));
  test_close_runtime(rt);
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&m)); /* the runtime is gone */
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_STATUS(WEFT_EBUSY, weft_mutex_destroy(&m));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  ASSERT_STATUS(WEFT_EINVAL, weft_rwlock_write_lock(&w));
  ASSERT_STATUS(WEFT_EBUSY, weft_rwlock_destroy(&w));
  ASSERT_OK(weft_rwlock_unlock(&w));
  ASSERT_OK(weft_rwlock_unlock(&r));
  ASSERT_STATUS(WEFT_EPERM, weft_rwlock_unlock(&r));
  ASSERT_OK(weft_rwlock_destroy(&w));
  ASSERT_OK(weft_rwlock_destroy(&r));
  return TEST_OK;
}

/* Objects in static storage: WEFT_MUTEX_INIT, WEFT_COND_INIT, WEFT_RWLOCK_INIT bind to
 * the default runtime on first use and are checked as usual afterwards. */
static weft_mutex_t static_mutex = WEFT_MUTEX_INIT;
static weft_cond_t static_cond = WEFT_COND_INIT;
static weft_rwlock_t static_rwlock = WEFT_RWLOCK_INIT;
static weft_mutex_t never_used = WEFT_MUTEX_INIT;
static long static_count;

static int32_t bump_static(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < 10000; i++) {
    if (weft_mutex_lock(&static_mutex) != WEFT_OK) return 1;
    static_count++;
    weft_mutex_unlock(&static_mutex);
  }
  return 0;
}

TEST_IMPL(mutex_static_initialisers) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_set_default_runtime(rt));
  weft_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, bump_static, NULL); /* first use races */
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(static_count, 40000);
  ASSERT_OK(weft_mutex_lock(&static_mutex));
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock(&static_mutex)); /* checked as any mutex */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&static_cond, &static_mutex, test_after_ms(rt, 1)));
  ASSERT_OK(weft_mutex_unlock(&static_mutex));
  ASSERT_OK(weft_rwlock_read_lock(&static_rwlock));
  ASSERT_OK(weft_rwlock_unlock(&static_rwlock));
  ASSERT_OK(weft_mutex_destroy(&never_used)); /* never used: nothing to give back */
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_lock(&never_used));
  ASSERT_OK(weft_mutex_destroy(&static_mutex));
  ASSERT_OK(weft_cond_destroy(&static_cond));
  ASSERT_OK(weft_rwlock_destroy(&static_rwlock));
  ASSERT_OK(weft_set_default_runtime(NULL));
  test_close_runtime(rt);
  return TEST_OK;
}
