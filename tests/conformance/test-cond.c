/* Condition variables: wait, wait_until, signal, broadcast, error checks, and a
 * bounded buffer with several producers and consumers. */
#include <stdatomic.h>

#include "test.h"

typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  weft_cond_t c;
  int tokens;
  int waiting;
  int taken;
} tokens_t;

static void tokens_init(weft_runtime_t *rt, tokens_t *s, uint32_t mutex_flags) {
  memset(s, 0, sizeof *s);
  s->rt = rt;
  ASSERT_OK(weft_mutex_init(rt, &s->m, mutex_flags));
  ASSERT_OK(weft_cond_init(rt, &s->c));
}

static void tokens_destroy(tokens_t *s) {
  ASSERT_OK(weft_cond_destroy(&s->c));
  ASSERT_OK(weft_mutex_destroy(&s->m));
}

static int32_t take_token(void *arg, void **result) {
  tokens_t *s = arg;
  (void)result;
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
  s->waiting++;
  while (s->tokens == 0)
    if (weft_cond_wait(&s->c, &s->m) != WEFT_OK) return 2;
  s->tokens--;
  s->waiting--;
  s->taken++;
  if (weft_mutex_unlock(&s->m) != WEFT_OK) return 3;
  return 0;
}

/* Waits until `*count`, read under `m`, reaches `n`. */
static void await_count(weft_runtime_t *rt, weft_mutex_t *m, const int *count, int n) {
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  for (;;) {
    ASSERT_OK(weft_mutex_lock(m));
    int now = *count;
    ASSERT_OK(weft_mutex_unlock(m));
    if (now >= n) return;
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
}

static void await_waiting(tokens_t *s, int n) { await_count(s->rt, &s->m, &s->waiting, n); }

/* One token per signal: every waiter gets one, no signal is lost. */
TEST_IMPL(cond_signal_hands_over) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  enum { N = 6 };
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = test_spawn(rt, take_token, &s);
  await_waiting(&s, N);
  for (int i = 0; i < N; i++) {
    ASSERT_OK(weft_mutex_lock(&s.m));
    s.tokens++;
    ASSERT_OK(weft_cond_signal(&s.c));
    ASSERT_OK(weft_mutex_unlock(&s.m));
  }
  for (int i = 0; i < N; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(s.taken, N);
  ASSERT_EQ(s.tokens, 0);
  /* Signal without holding the mutex is allowed too. */
  weft_task_t *one = test_spawn(rt, take_token, &s);
  await_waiting(&s, 1);
  ASSERT_OK(weft_mutex_lock(&s.m));
  s.tokens++;
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_OK(weft_cond_signal(&s.c));
  ASSERT_EQ(test_join(one), 0);
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(cond_broadcast_wakes_all) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  enum { N = 8 };
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = test_spawn(rt, take_token, &s);
  await_waiting(&s, N);
  ASSERT_OK(weft_mutex_lock(&s.m));
  s.tokens = N;
  ASSERT_OK(weft_cond_broadcast(&s.c));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  for (int i = 0; i < N; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(s.taken, N);
  /* Signal and broadcast with nobody waiting are fine, and not remembered. */
  ASSERT_OK(weft_cond_signal(&s.c));
  ASSERT_OK(weft_cond_broadcast(&s.c));
  ASSERT_OK(weft_mutex_lock(&s.m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, test_after_ms(rt, 10)));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t trylock_status(void *arg, void **result) {
  (void)result;
  weft_status_t st = weft_mutex_try_lock(arg);
  if (st == WEFT_OK && weft_mutex_unlock(arg) != WEFT_OK) return 99;
  return st;
}

static weft_status_t trylock_from_other_task(weft_runtime_t *rt, weft_mutex_t *m) {
  return test_join(test_spawn(rt, trylock_status, m));
}

static int32_t unlock_status(void *arg, void **result) {
  (void)result;
  return weft_mutex_unlock(arg);
}

/* wait_until: WEFT_ETIMEDOUT at the deadline (a past one: at once), the mutex held
 * again by the caller and by nobody else. */
TEST_IMPL(cond_wait_until_timeout) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  ASSERT_OK(weft_mutex_lock(&s.m));
  int64_t deadline = test_after_ms(rt, 30);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, deadline));
  ASSERT_ERROR_MENTIONS("weft_cond_wait_until");
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_EQ(trylock_from_other_task(rt, &s.m), WEFT_EBUSY);
  ASSERT_EQ(test_join(test_spawn(rt, unlock_status, &s.m)), WEFT_EPERM);
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock(&s.m)); /* still ours */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, -1));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, weft_now(rt)));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&s.m));
  ASSERT_EQ(trylock_from_other_task(rt, &s.m), 0);
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t give_token(void *arg, void **result) {
  tokens_t *s = arg;
  (void)result;
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
  s->tokens++;
  if (weft_cond_signal(&s->c) != WEFT_OK) return 2;
  return weft_mutex_unlock(&s->m);
}

typedef struct {
  weft_mutex_t m;
  weft_cond_t c;
  int flag;
} flag_t;

static int32_t set_flag(void *arg, void **result) {
  (void)result;
  flag_t *f = arg;
  if (weft_mutex_lock(&f->m) != WEFT_OK) return 1;
  f->flag = 1;
  weft_cond_signal(&f->c);
  return weft_mutex_unlock(&f->m) == WEFT_OK ? 0 : 2;
}

/* A loop of timed waits shorter than anything (1 us) until another task, which needs
 * the mutex, sets the flag: each wait gives the mutex up, even one that timed out
 * before it could wait (on sim, a wait shorter than the step of virtual time each call
 * costs: it used to return holding the mutex throughout, and the loop never ended).
 * Only sim promises the other task a turn: on threads the mutex is not fair, and the
 * waiter's relock may win every race against the woken task (under valgrind's serial
 * scheduling it did, for 10 s). */
TEST_IMPL(cond_short_timed_waits_let_others_in) {
  weft_runtime_t *rt = test_open_runtime();
  if (!(weft_runtime_platform(rt)->caps & WEFT_CAP_DETERMINISTIC)) {
    fprintf(stderr, "skip: on threads an unfair mutex's relock may beat the woken task every time\n");
    fflush(NULL);
    _Exit(TEST_SKIP);
  }
  static flag_t f;
  f.flag = 0;
  ASSERT_OK(weft_mutex_init(rt, &f.m, 0));
  ASSERT_OK(weft_cond_init(rt, &f.c));
  ASSERT_OK(weft_mutex_lock(&f.m));
  weft_task_t *setter = test_spawn(rt, set_flag, &f);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  long waits = 0;
  while (!f.flag && waits < 1000000 && weft_now(rt) < give_up) {
    weft_status_t st = weft_cond_wait_for(&f.c, &f.m, 1000);
    ASSERT(st == WEFT_OK || st == WEFT_ETIMEDOUT);
    waits++;
  }
  ASSERT(f.flag);
  ASSERT_OK(weft_mutex_unlock(&f.m));
  ASSERT_EQ(test_join(setter), 0);
  ASSERT_OK(weft_cond_destroy(&f.c));
  ASSERT_OK(weft_mutex_destroy(&f.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* wait_for: a relative timeout on the condition's own runtime clock. WEFT_ETIMEDOUT no
 * sooner than the timeout (zero or negative: at once), the mutex the caller's again; a
 * signal within the timeout ends it with WEFT_OK; the same errors as wait_until. */
TEST_IMPL(cond_wait_for_timeout) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  ASSERT_OK(weft_mutex_lock(&s.m));
  int64_t start = weft_now(rt);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_for(&s.c, &s.m, 30 * 1000000));
  ASSERT_ERROR_MENTIONS("weft_cond_wait_for");
  ASSERT(weft_now(rt) - start >= 30 * 1000000);
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock(&s.m)); /* still ours */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_for(&s.c, &s.m, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_for(&s.c, &s.m, -5));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_for(&s.c, &s.m, INT64_MIN));
  /* Woken within the timeout: 20 rounds, each a token handed over by another task. */
  for (int round = 0; round < 20; round++) {
    weft_task_t *giver = test_spawn(rt, give_token, &s);
    while (s.tokens == 0) ASSERT_OK(weft_cond_wait_for(&s.c, &s.m, (int64_t)TEST_PATIENCE_MS * 1000000));
    s.tokens--;
    ASSERT_OK(weft_mutex_unlock(&s.m));
    ASSERT_EQ(test_join(giver), 0);
    ASSERT_OK(weft_mutex_lock(&s.m));
  }
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_STATUS(WEFT_EPERM, weft_cond_wait_for(&s.c, &s.m, 1000));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_for(NULL, &s.m, 1000));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_for(&s.c, NULL, 1000));
  ASSERT_ERROR_MENTIONS("mutex");
  tokens_destroy(&s);
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_for(&s.c, &s.m, 1000));
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t wait_on_main_mutex(void *arg, void **result) {
  tokens_t *s = arg;
  (void)result;
  if (weft_cond_wait(&s->c, &s->m) != WEFT_EPERM) return 1;
  if (weft_cond_wait_until(&s->c, &s->m, WEFT_FOREVER) != WEFT_EPERM) return 2;
  return 0;
}

/* Waiting without holding the mutex is WEFT_EPERM, whether it is free or another
 * task's. */
TEST_IMPL(cond_wait_without_mutex) {
  weft_runtime_t *rt = test_open_runtime();
  for (uint32_t flags = 0; flags <= WEFT_MUTEX_RECURSIVE; flags++) {
    tokens_t s;
    tokens_init(rt, &s, flags);
    ASSERT_STATUS(WEFT_EPERM, weft_cond_wait(&s.c, &s.m));
    ASSERT_ERROR_MENTIONS("not held");
    ASSERT_STATUS(WEFT_EPERM, weft_cond_wait_until(&s.c, &s.m, 0));
    ASSERT_OK(weft_mutex_lock(&s.m));
    ASSERT_EQ(test_join(test_spawn(rt, wait_on_main_mutex, &s)), 0);
    ASSERT_OK(weft_mutex_unlock(&s.m));
    tokens_destroy(&s);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t lock_and_signal(void *arg, void **result) {
  tokens_t *s = arg;
  (void)result;
  /* Only possible if the waiter released every level of its recursive lock. */
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
  s->tokens = 1;
  if (weft_cond_signal(&s->c) != WEFT_OK) return 2;
  if (weft_mutex_unlock(&s->m) != WEFT_OK) return 3;
  return 0;
}

/* A recursive mutex is released completely during the wait and restored to the same
 * depth after it, whatever the outcome. */
TEST_IMPL(cond_recursive_mutex) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, WEFT_MUTEX_RECURSIVE);
  enum { DEPTH = 3 };
  for (int i = 0; i < DEPTH; i++) ASSERT_OK(weft_mutex_lock(&s.m));
  weft_task_t *t = test_spawn(rt, lock_and_signal, &s);
  while (s.tokens == 0) ASSERT_OK(weft_cond_wait(&s.c, &s.m));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(trylock_from_other_task(rt, &s.m), WEFT_EBUSY);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, test_after_ms(rt, 5)));
  for (int i = 0; i < DEPTH; i++) {
    ASSERT_EQ(trylock_from_other_task(rt, &s.m), WEFT_EBUSY);
    ASSERT_OK(weft_mutex_unlock(&s.m));
  }
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&s.m));
  ASSERT_EQ(trylock_from_other_task(rt, &s.m), 0);
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  tokens_t *s;
  atomic_int holding;
  atomic_int release;
} cancelled_waiter_t;

static int32_t wait_then_hold(void *arg, void **result) {
  cancelled_waiter_t *w = arg;
  (void)result;
  if (weft_mutex_lock(&w->s->m) != WEFT_OK) return 1;
  weft_status_t st = weft_cond_wait_until(&w->s->c, &w->s->m, weft_deadline_after(w->s->rt, 60000000000LL));
  if (st != WEFT_ECANCELED) return 10 + st;
  atomic_store(&w->holding, 1);
  while (!atomic_load(&w->release)) {
  }
  return weft_mutex_unlock(&w->s->m) == WEFT_OK ? 0 : 3;
}

/* A cancelled waiter returns WEFT_ECANCELED holding the mutex: nobody else gets it
 * until it unlocks. */
TEST_IMPL(cond_cancel_keeps_mutex) {
  weft_runtime_t *rt = test_open_runtime();
  test_skip_on_one_thread(rt, "a task spins without weft calls while the main task runs");
  tokens_t s;
  tokens_init(rt, &s, 0);
  cancelled_waiter_t w = {&s, 0, 0};
  weft_task_t *t = test_spawn(rt, wait_then_hold, &w);
  test_wait_blocked(rt, t);
  ASSERT_OK(weft_cancel(t));
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&w.holding)) {
    ASSERT(weft_now(rt) < give_up);
    ASSERT_OK(weft_yield(rt));
  }
  ASSERT_STATUS(WEFT_EBUSY, weft_mutex_try_lock(&s.m));
  ASSERT_STATUS(WEFT_EPERM, weft_mutex_unlock(&s.m));
  atomic_store(&w.release, 1);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(weft_mutex_try_lock(&s.m));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Destroyed and never-initialised conditions are refused; a destroyed mutex too. */
TEST_IMPL(cond_destroy_rules) {
  weft_runtime_t *rt = test_open_runtime();
  weft_cond_t c;
  weft_mutex_t m;
  ASSERT_OK(weft_cond_init(rt, &c));
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_OK(weft_cond_destroy(&c));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait(&c, &m));
  ASSERT_ERROR_MENTIONS("destroyed");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_until(&c, &m, 0));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_signal(&c));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_broadcast(&c));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_destroy(&c));
  ASSERT_OK(weft_mutex_unlock(&m)); /* the refused waits kept the mutex */
  ASSERT_OK(weft_cond_init(rt, &c)); /* re-initialised: usable again */
  ASSERT_OK(weft_mutex_destroy(&m));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait(&c, &m));
  ASSERT_ERROR_MENTIONS("destroyed");
  ASSERT_OK(weft_cond_destroy(&c));
  for (int fill = 0; fill < 2; fill++) {
    memset(&c, fill ? 0x5a : 0, sizeof c);
    ASSERT_STATUS(WEFT_EINVAL, weft_cond_signal(&c));
    ASSERT_ERROR_MENTIONS("not initialised");
    ASSERT_STATUS(WEFT_EINVAL, weft_cond_broadcast(&c));
    ASSERT_STATUS(WEFT_EINVAL, weft_cond_destroy(&c));
    ASSERT_OK(weft_mutex_init(rt, &m, 0));
    ASSERT_OK(weft_mutex_lock(&m));
    ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait(&c, &m));
    ASSERT_OK(weft_mutex_unlock(&m));
    ASSERT_OK(weft_mutex_destroy(&m));
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* A condition somebody waits on cannot be destroyed (the waiter could never be
 * signalled again); once the waiter is gone it can. */
TEST_IMPL(cond_destroy_busy) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  weft_task_t *t = test_spawn(rt, take_token, &s);
  await_waiting(&s, 1);
  test_wait_blocked(rt, t);
  ASSERT_STATUS(WEFT_EBUSY, weft_cond_destroy(&s.c));
  ASSERT_ERROR_MENTIONS("waiter");
  ASSERT_OK(weft_mutex_lock(&s.m));
  s.tokens = 1;
  ASSERT_OK(weft_cond_signal(&s.c)); /* the refused destroy changed nothing */
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(t), 0);
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* POSIX's example for pthread_cond_destroy: an element whose waiters wait under the
 * list's mutex is removed, its condition broadcast and destroyed, and the element
 * freed, before the woken waiters have taken the mutex back. The destroy waits for
 * them to leave the wait (it returned WEFT_EBUSY, and a host that freed the element
 * anyway had them write into freed memory: valgrind and ASan see that here). */
typedef struct {
  weft_cond_t not_busy;
} element_t;

typedef struct {
  weft_mutex_t m;
  element_t *elt; /* NULL once removed */
  int waiting;
  int woken;
  element_t *waited_on;
} list_t;

static int32_t wait_until_removed(void *arg, void **result) {
  list_t *l = arg;
  (void)result;
  ASSERT_OK(weft_mutex_lock(&l->m));
  element_t *e = l->elt;
  l->waiting++;
  while (l->elt == e) ASSERT_OK(weft_cond_wait(&e->not_busy, &l->m));
  l->woken++;
  ASSERT_OK(weft_mutex_unlock(&l->m));
  return 0;
}

static void remove_and_destroy(weft_runtime_t *rt, int waiters, bool broadcast) {
  enum { MAX_WAITERS = 4 };
  static list_t l;
  memset(&l, 0, sizeof l);
  ASSERT_OK(weft_mutex_init(rt, &l.m, 0));
  l.elt = malloc(sizeof *l.elt);
  ASSERT(l.elt != NULL);
  ASSERT_OK(weft_cond_init(rt, &l.elt->not_busy));
  weft_task_t *t[MAX_WAITERS];
  for (int i = 0; i < waiters; i++) t[i] = test_spawn(rt, wait_until_removed, &l);
  await_count(rt, &l.m, &l.waiting, waiters); /* each counted itself under the mutex */
  ASSERT_OK(weft_mutex_lock(&l.m));
  element_t *e = l.elt;
  l.elt = NULL;
  ASSERT_OK(broadcast ? weft_cond_broadcast(&e->not_busy) : weft_cond_signal(&e->not_busy));
  ASSERT_OK(weft_mutex_unlock(&l.m));
  ASSERT_OK(weft_cond_destroy(&e->not_busy));
  free(e);
  for (int i = 0; i < waiters; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(l.woken, waiters);
  ASSERT_OK(weft_mutex_destroy(&l.m));
}

TEST_IMPL(cond_destroy_after_broadcast) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 50; round++) remove_and_destroy(rt, 1 + round % 4, true);
  test_close_runtime(rt);
  return TEST_OK;
}

/* The same after a signal to the only waiter. */
TEST_IMPL(cond_destroy_after_signal_to_the_only_waiter) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 50; round++) remove_and_destroy(rt, 1, false);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A destroy while the caller holds the mutex the woken waiters need: they cannot leave
 * their wait, and the destroy cannot wait for them, so WEFT_EBUSY, naming the mutex;
 * the condition works on, and is destroyed once they left. */
TEST_IMPL(cond_destroy_under_the_waiters_mutex) {
  weft_runtime_t *rt = test_open_runtime();
  tokens_t s;
  tokens_init(rt, &s, 0);
  weft_task_t *t = test_spawn(rt, take_token, &s);
  await_waiting(&s, 1);
  ASSERT_OK(weft_mutex_lock(&s.m));
  s.tokens = 1;
  ASSERT_OK(weft_cond_broadcast(&s.c));
  ASSERT_STATUS(WEFT_EBUSY, weft_cond_destroy(&s.c));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(t), 0);
  tokens_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A condition and a mutex of different runtimes do not pair. */
TEST_IMPL(cond_mutex_other_runtime) {
  weft_runtime_t *a = test_open_runtime();
  weft_runtime_t *b = test_open_runtime();
  weft_cond_t c;
  weft_mutex_t m;
  ASSERT_OK(weft_cond_init(a, &c));
  ASSERT_OK(weft_mutex_init(b, &m, 0));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_until(&c, &m, 0));
  ASSERT_ERROR_MENTIONS("different runtimes");
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  ASSERT_OK(weft_cond_destroy(&c));
  test_close_runtime(b);
  test_close_runtime(a);
  return TEST_OK;
}

TEST_IMPL(cond_null_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_cond_t c;
  weft_mutex_t m;
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_init(NULL, &c));
  ASSERT_ERROR_MENTIONS("runtime");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_init(rt, NULL));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_OK(weft_cond_init(rt, &c));
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait(NULL, &m));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait(&c, NULL));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_until(NULL, &m, 0));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_wait_until(&c, NULL, 0));
  ASSERT_ERROR_MENTIONS("mutex");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_signal(NULL));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_broadcast(NULL));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_STATUS(WEFT_EINVAL, weft_cond_destroy(NULL));
  ASSERT_ERROR_MENTIONS("condition");
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_OK(weft_mutex_destroy(&m));
  ASSERT_OK(weft_cond_destroy(&c));
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- a bounded buffer: producers and consumers, exact checksum ------------------- */

#define BB_CAPACITY 16
#define BB_PRODUCERS 4
#define BB_CONSUMERS 4
#define BB_ITEMS 20000 /* per producer */

typedef struct {
  weft_mutex_t m;
  weft_cond_t not_full, not_empty;
  int64_t slots[BB_CAPACITY];
  int head, count;
} bounded_buffer_t;

static int bb_put(bounded_buffer_t *b, int64_t v) {
  if (weft_mutex_lock(&b->m) != WEFT_OK) return 0;
  while (b->count == BB_CAPACITY)
    if (weft_cond_wait(&b->not_full, &b->m) != WEFT_OK) return 0;
  b->slots[(b->head + b->count) % BB_CAPACITY] = v;
  b->count++;
  if (weft_cond_signal(&b->not_empty) != WEFT_OK) return 0;
  return weft_mutex_unlock(&b->m) == WEFT_OK;
}

static int bb_take(bounded_buffer_t *b, int64_t *v) {
  if (weft_mutex_lock(&b->m) != WEFT_OK) return 0;
  while (b->count == 0)
    if (weft_cond_wait(&b->not_empty, &b->m) != WEFT_OK) return 0;
  *v = b->slots[b->head];
  b->head = (b->head + 1) % BB_CAPACITY;
  b->count--;
  if (weft_cond_signal(&b->not_full) != WEFT_OK) return 0;
  return weft_mutex_unlock(&b->m) == WEFT_OK;
}

typedef struct {
  bounded_buffer_t *b;
  int id;
  int64_t sum;
  int64_t items;
  int64_t per_producer[BB_PRODUCERS];
} bb_worker_t;

static int32_t bb_producer(void *arg, void **result) {
  bb_worker_t *w = arg;
  (void)result;
  for (int64_t i = 1; i <= BB_ITEMS; i++)
    if (!bb_put(w->b, (int64_t)w->id * BB_ITEMS + i)) return 1;
  return 0;
}

static int32_t bb_consumer(void *arg, void **result) {
  bb_worker_t *w = arg;
  (void)result;
  int64_t last[BB_PRODUCERS] = {0};
  for (;;) {
    int64_t v;
    if (!bb_take(w->b, &v)) return 1;
    if (v == 0) return 0; /* end of stream */
    int p = (int)((v - 1) / BB_ITEMS);
    int64_t i = (v - 1) % BB_ITEMS + 1;
    if (p < 0 || p >= BB_PRODUCERS) return 2;
    if (i <= last[p]) return 3; /* each producer's items arrive in order */
    last[p] = i;
    w->per_producer[p]++;
    w->sum += v;
    w->items++;
  }
}

TEST_IMPL(cond_bounded_buffer) {
  weft_runtime_t *rt = test_open_runtime();
  static bounded_buffer_t b;
  memset(&b, 0, sizeof b);
  ASSERT_OK(weft_mutex_init(rt, &b.m, 0));
  ASSERT_OK(weft_cond_init(rt, &b.not_full));
  ASSERT_OK(weft_cond_init(rt, &b.not_empty));
  static bb_worker_t producers[BB_PRODUCERS], consumers[BB_CONSUMERS];
  weft_task_t *pt[BB_PRODUCERS], *ct[BB_CONSUMERS];
  for (int i = 0; i < BB_CONSUMERS; i++) {
    consumers[i] = (bb_worker_t){.b = &b, .id = i};
    ct[i] = test_spawn(rt, bb_consumer, &consumers[i]);
  }
  for (int i = 0; i < BB_PRODUCERS; i++) {
    producers[i] = (bb_worker_t){.b = &b, .id = i};
    pt[i] = test_spawn(rt, bb_producer, &producers[i]);
  }
  for (int i = 0; i < BB_PRODUCERS; i++) ASSERT_EQ(test_join(pt[i]), 0);
  for (int i = 0; i < BB_CONSUMERS; i++) ASSERT(bb_put(&b, 0));
  int64_t sum = 0, items = 0, per_producer[BB_PRODUCERS] = {0};
  for (int i = 0; i < BB_CONSUMERS; i++) {
    ASSERT_EQ(test_join(ct[i]), 0);
    sum += consumers[i].sum;
    items += consumers[i].items;
    for (int p = 0; p < BB_PRODUCERS; p++) per_producer[p] += consumers[i].per_producer[p];
  }
  const int64_t n = (int64_t)BB_PRODUCERS * BB_ITEMS;
  ASSERT_EQ(items, n);
  ASSERT_EQ(sum, n * (n + 1) / 2);
  for (int p = 0; p < BB_PRODUCERS; p++) ASSERT_EQ(per_producer[p], BB_ITEMS);
  ASSERT_EQ(b.count, 0);
  ASSERT_OK(weft_cond_destroy(&b.not_empty));
  ASSERT_OK(weft_cond_destroy(&b.not_full));
  ASSERT_OK(weft_mutex_destroy(&b.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* Hand-overs in a stream: a producer gives one token at a time and waits until a
 * consumer acknowledges it; two consumers wait for tokens on one condition, one with
 * untimed waits, one with short timed ones. On OS threads a waiter watches for the
 * signal before it sleeps (docs/performance.md), so the stream mixes waiters answered
 * while they watch with waiters woken from sleep: every token must be taken once, a
 * watch must end holding the mutex, and a signal that a watcher saw must still wake a
 * sleeper. Every 64th token is broadcast. Every wait has a deadline, so a lost wake-up
 * fails the test instead of hanging it. */
typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  weft_cond_t given, acked;
  long tokens_left;
  int token; /* 1 while a token waits for a consumer */
  int stop;
  long taken[2];
  long late;
} handoff_t;

typedef struct {
  handoff_t *h;
  int me;
  int64_t patience_ms; /* of each wait: short for the timed consumer */
} handoff_consumer_t;

static int32_t handoff_consumer(void *arg, void **result) {
  (void)result;
  handoff_consumer_t *c = arg;
  handoff_t *h = c->h;
  if (weft_mutex_lock(&h->m) != WEFT_OK) return 1;
  int64_t give_up = test_after_ms(h->rt, TEST_PATIENCE_MS);
  for (;;) {
    while (!h->token && !h->stop) {
      weft_status_t st = weft_cond_wait_until(&h->given, &h->m, test_after_ms(h->rt, c->patience_ms));
      if (st != WEFT_OK && st != WEFT_ETIMEDOUT) return 2;
      if (st == WEFT_ETIMEDOUT && weft_now(h->rt) > give_up) h->late++;
      if (h->late) return weft_mutex_unlock(&h->m) == WEFT_OK ? 3 : 4;
    }
    if (h->stop) break;
    h->token = 0;
    h->taken[c->me]++;
    if (weft_cond_signal(&h->acked) != WEFT_OK) return 5;
    give_up = test_after_ms(h->rt, TEST_PATIENCE_MS);
  }
  return weft_mutex_unlock(&h->m) == WEFT_OK ? 0 : 6;
}

TEST_IMPL(cond_handoff_stream) {
  weft_runtime_t *rt = test_open_runtime();
  static handoff_t h;
  memset(&h, 0, sizeof h);
  h.rt = rt;
  const long n = (long)test_volume(20000);
  ASSERT_OK(weft_mutex_init(rt, &h.m, 0));
  ASSERT_OK(weft_cond_init(rt, &h.given));
  ASSERT_OK(weft_cond_init(rt, &h.acked));
  handoff_consumer_t untimed = {&h, 0, TEST_PATIENCE_MS}, timed = {&h, 1, 1};
  weft_task_t *tu = test_spawn(rt, handoff_consumer, &untimed);
  weft_task_t *tt = test_spawn(rt, handoff_consumer, &timed);
  ASSERT_OK(weft_mutex_lock(&h.m));
  for (long i = 0; i < n; i++) {
    h.token = 1;
    ASSERT_OK(i % 64 == 63 ? weft_cond_broadcast(&h.given) : weft_cond_signal(&h.given));
    int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
    while (h.token) {
      weft_status_t st = weft_cond_wait_until(&h.acked, &h.m, give_up);
      ASSERT(st == WEFT_OK || st == WEFT_ETIMEDOUT);
      ASSERT(h.late == 0);
      ASSERT(st == WEFT_OK || !h.token); /* a token nobody took in 10 s is a lost wake-up */
    }
  }
  h.stop = 1;
  ASSERT_OK(weft_cond_broadcast(&h.given));
  ASSERT_OK(weft_mutex_unlock(&h.m));
  ASSERT_EQ(test_join(tu), 0);
  ASSERT_EQ(test_join(tt), 0);
  ASSERT_EQ(h.taken[0] + h.taken[1], n);
  ASSERT_OK(weft_cond_destroy(&h.acked));
  ASSERT_OK(weft_cond_destroy(&h.given));
  ASSERT_OK(weft_mutex_destroy(&h.m));
  test_close_runtime(rt);
  return TEST_OK;
}
