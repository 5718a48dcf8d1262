/*
 * The plugin contract as a host sees it (include/weft_platform.h): deadlines,
 * cancellation points woken by weft_cancel, blocking regions seen by a stop-the-world,
 * writer-preferring rwlocks, task handles. Each test passes on any correct plugin
 * whatever the timing: deadlines are checked as "not before", never as "soon enough".
 */
#include <stdatomic.h>

#include "test.h"

/* Waits until *flag is set (sleeping 1 ms at a time); fails the test after 30 s. */
static void await_flag(weft_runtime_t *rt, atomic_int *flag) {
  int64_t give_up = test_after_ms(rt, 30000);
  while (!atomic_load(flag)) {
    ASSERT(weft_now(rt) < give_up);
    ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, 1)));
  }
}

/* Gives a task that announced it is about to block the time to do so. Correctness
 * does not depend on it: a cancel before the wait must be seen as well. */
static void let_it_block(weft_runtime_t *rt) { ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, 20))); }

/* --- deadlines ---------------------------------------------------------------------- */

static weft_runtime_t *shared_rt;

static int32_t sleep_20ms(void *arg, void **result) {
  (void)arg;
  (void)result;
  int64_t deadline = test_after_ms(shared_rt, 20);
  if (weft_sleep_until(shared_rt, deadline) != WEFT_OK) return 1;
  if (weft_now(shared_rt) < deadline) return 2;
  if (weft_sleep_until(shared_rt, deadline) != WEFT_OK) return 3; /* past: at once */
  return 0;
}

TEST_IMPL(plugin_sleep_deadlines) {
  weft_runtime_t *rt = shared_rt = test_open_runtime();
  ASSERT_OK(weft_sleep_until(rt, -1));
  ASSERT_OK(weft_sleep_until(rt, weft_now(rt)));
  int64_t deadline = test_after_ms(rt, 20);
  ASSERT_OK(weft_sleep_until(rt, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_EQ(test_join(test_spawn(rt, sleep_20ms, NULL)), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  weft_cond_t c;
  atomic_int started, release;
} shared_t;

static void shared_init(shared_t *s, weft_runtime_t *rt) {
  memset(s, 0, sizeof *s);
  s->rt = rt;
  ASSERT_OK(weft_mutex_init(rt, &s->m, 0));
  ASSERT_OK(weft_cond_init(rt, &s->c));
}

static void shared_destroy(shared_t *s) {
  ASSERT_OK(weft_cond_destroy(&s->c));
  ASSERT_OK(weft_mutex_destroy(&s->m));
}

/* Holds the mutex until `release` is set, then keeps it 1 ms more. */
static int32_t hold_mutex(void *arg, void **result) {
  (void)result;
  shared_t *s = arg;
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
  atomic_store(&s->started, 1);
  while (!atomic_load(&s->release)) weft_sleep_until(s->rt, test_after_ms(s->rt, 1));
  return weft_mutex_unlock(&s->m) == WEFT_OK ? 0 : 2;
}

TEST_IMPL(plugin_timeouts) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);

  /* A condition nobody signals. */
  ASSERT_OK(weft_mutex_lock(&s.m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, -1));
  int64_t deadline = test_after_ms(rt, 20);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&s.c, &s.m, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_OK(weft_mutex_unlock(&s.m)); /* the wait gave the mutex back */

  /* A mutex another task holds; a task that has not finished. */
  weft_task_t *holder = test_spawn(rt, hold_mutex, &s);
  await_flag(rt, &s.started);
  ASSERT_STATUS(WEFT_EBUSY, weft_mutex_try_lock(&s.m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_mutex_lock_until(&s.m, 0));
  deadline = test_after_ms(rt, 20);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_mutex_lock_until(&s.m, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(holder, 0, NULL, NULL));
  deadline = test_after_ms(rt, 20);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(holder, deadline, NULL, NULL));
  ASSERT(weft_now(rt) >= deadline);

  atomic_store(&s.release, 1);
  ASSERT_OK(weft_mutex_lock_until(&s.m, WEFT_FOREVER));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(holder), 0); /* the handle survived the timed-out joins */
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- cancellation points ------------------------------------------------------------ */

static int32_t sleep_forever(void *arg, void **result) {
  (void)result;
  shared_t *s = arg;
  atomic_store(&s->started, 1);
  return weft_sleep_until(s->rt, WEFT_FOREVER);
}

TEST_IMPL(plugin_cancel_wakes_sleep) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);
  weft_task_t *t = test_spawn(rt, sleep_forever, &s);
  await_flag(rt, &s.started);
  let_it_block(rt);
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), WEFT_ECANCELED);
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Waits for `release` (never set); returns how the wait ended, or 100 + a failure. */
static int32_t wait_for_release(void *arg, void **result) {
  (void)result;
  shared_t *s = arg;
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 101;
  atomic_store(&s->started, 1);
  weft_status_t st = WEFT_OK;
  while (!atomic_load(&s->release) && st == WEFT_OK) st = weft_cond_wait(&s->c, &s->m);
  /* Whatever the outcome, the caller holds the mutex again. */
  if (weft_mutex_unlock(&s->m) != WEFT_OK) return 102;
  return st;
}

TEST_IMPL(plugin_cancel_wakes_cond_wait) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);
  weft_task_t *t = test_spawn(rt, wait_for_release, &s);
  await_flag(rt, &s.started);
  /* Taking the mutex proves the task is inside its wait (it released the mutex). The
   * cancel is sent with the mutex held: a plugin must not need it to wake the task. */
  ASSERT_OK(weft_mutex_lock(&s.m));
  ASSERT_OK(weft_cancel(t));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(t), WEFT_ECANCELED);

  /* And without the mutex. */
  atomic_store(&s.started, 0);
  t = test_spawn(rt, wait_for_release, &s);
  await_flag(rt, &s.started);
  ASSERT_OK(weft_mutex_lock(&s.m));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), WEFT_ECANCELED);
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  shared_t *s;
  weft_task_t *target;
  atomic_int started;
} joiner_t;

static int32_t join_target(void *arg, void **result) {
  (void)result;
  joiner_t *j = arg;
  atomic_store(&j->started, 1);
  return weft_join(j->target, WEFT_FOREVER, NULL, NULL);
}

TEST_IMPL(plugin_cancel_wakes_join) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);
  joiner_t j = {.s = &s, .target = test_spawn(rt, wait_for_release, &s)};
  await_flag(rt, &s.started);
  weft_task_t *joiner = test_spawn(rt, join_target, &j);
  await_flag(rt, &j.started);
  let_it_block(rt);
  ASSERT_OK(weft_cancel(joiner));
  ASSERT_EQ(test_join(joiner), WEFT_ECANCELED);
  /* The target was not disturbed, and its handle is still the host's. */
  ASSERT_OK(weft_mutex_lock(&s.m));
  atomic_store(&s.release, 1);
  ASSERT_OK(weft_cond_broadcast(&s.c));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(j.target), WEFT_OK);
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Once cancelled, every cancellation point fails at once, before waiting. */
static int32_t cancelled_then_wait(void *arg, void **result) {
  (void)result;
  joiner_t *j = arg;
  shared_t *s = j->s;
  atomic_store(&j->started, 1);
  while (!weft_task_cancelled()) weft_yield(s->rt);
  if (weft_sleep_until(s->rt, WEFT_FOREVER) != WEFT_ECANCELED) return 1;
  if (weft_sleep_until(s->rt, test_after_ms(s->rt, 10)) != WEFT_ECANCELED) return 2;
  if (weft_join(j->target, WEFT_FOREVER, NULL, NULL) != WEFT_ECANCELED) return 3;
  if (weft_mutex_lock(&s->m) != WEFT_OK) return 4; /* not a cancellation point */
  if (weft_cond_wait(&s->c, &s->m) != WEFT_ECANCELED) return 5;
  if (weft_cond_wait_until(&s->c, &s->m, test_after_ms(s->rt, 10)) != WEFT_ECANCELED) return 6;
  if (weft_mutex_unlock(&s->m) != WEFT_OK) return 7;
  return 0;
}

TEST_IMPL(plugin_cancel_before_wait) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);
  joiner_t j = {.s = &s, .target = test_spawn(rt, wait_for_release, &s)};
  weft_task_t *t = test_spawn(rt, cancelled_then_wait, &j);
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), 0);
  await_flag(rt, &s.started);
  ASSERT_OK(weft_mutex_lock(&s.m));
  atomic_store(&s.release, 1);
  ASSERT_OK(weft_cond_signal(&s.c));
  ASSERT_OK(weft_mutex_unlock(&s.m));
  ASSERT_EQ(test_join(j.target), WEFT_OK);
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- conditions --------------------------------------------------------------------- */

#define TURN_TASKS 4
#define TURN_ROUNDS 300

typedef struct {
  shared_t *s;
  int id;
  int *turn;
} turn_arg_t;

/* Waits for its turn, TURN_ROUNDS times; the turns go round the tasks in order. */
static int32_t take_turns(void *arg, void **result) {
  (void)result;
  turn_arg_t *a = arg;
  for (int round = 0; round < TURN_ROUNDS; round++) {
    if (weft_mutex_lock(&a->s->m) != WEFT_OK) return 1;
    while (*a->turn % TURN_TASKS != a->id)
      if (weft_cond_wait(&a->s->c, &a->s->m) != WEFT_OK) return 2;
    (*a->turn)++;
    if (weft_cond_broadcast(&a->s->c) != WEFT_OK) return 3;
    if (weft_mutex_unlock(&a->s->m) != WEFT_OK) return 4;
  }
  return 0;
}

TEST_IMPL(plugin_cond_turns) {
  weft_runtime_t *rt = test_open_runtime();
  shared_t s;
  shared_init(&s, rt);
  int turn = 0;
  turn_arg_t args[TURN_TASKS];
  weft_task_t *t[TURN_TASKS];
  for (int i = 0; i < TURN_TASKS; i++) {
    args[i] = (turn_arg_t){.s = &s, .id = i, .turn = &turn};
    t[i] = test_spawn(rt, take_turns, &args[i]);
  }
  for (int i = 0; i < TURN_TASKS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(turn, TURN_TASKS * TURN_ROUNDS);
  shared_destroy(&s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- rwlocks ------------------------------------------------------------------------ */

typedef struct {
  weft_rwlock_t l;
  atomic_int started, wrote;
} rw_t;

static int32_t write_once(void *arg, void **result) {
  (void)result;
  rw_t *rw = arg;
  atomic_store(&rw->started, 1);
  if (weft_rwlock_write_lock(&rw->l) != WEFT_OK) return 1;
  atomic_store(&rw->wrote, 1);
  return weft_rwlock_unlock(&rw->l) == WEFT_OK ? 0 : 2;
}

TEST_IMPL(plugin_rwlock_prefers_writers) {
  weft_runtime_t *rt = test_open_runtime();
  rw_t rw = {0};
  ASSERT_OK(weft_rwlock_init(rt, &rw.l));
  ASSERT_OK(weft_rwlock_read_lock(&rw.l));
  weft_task_t *writer = test_spawn(rt, write_once, &rw);
  await_flag(rt, &rw.started);
  /* Once the writer waits, a new reader is refused (the lock is only read-held). */
  int64_t give_up = test_after_ms(rt, 30000);
  weft_status_t st;
  while ((st = weft_rwlock_try_read_lock(&rw.l)) == WEFT_OK) {
    ASSERT_OK(weft_rwlock_unlock(&rw.l));
    ASSERT(weft_now(rt) < give_up);
    ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, 1)));
  }
  ASSERT_EQ(st, WEFT_EBUSY);
  ASSERT_EQ(atomic_load(&rw.wrote), 0);
  ASSERT_OK(weft_rwlock_unlock(&rw.l));
  ASSERT_EQ(test_join(writer), 0);
  ASSERT_EQ(atomic_load(&rw.wrote), 1);
  ASSERT_OK(weft_rwlock_try_read_lock(&rw.l));
  ASSERT_OK(weft_rwlock_unlock(&rw.l));
  ASSERT_OK(weft_rwlock_destroy(&rw.l));
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- blocking regions ---------------------------------------------------------------- */

typedef struct {
  shared_t s, sleeper;
  rw_t rw;
  joiner_t join;
  weft_mutex_t held;
  atomic_int started;
} blocked_t;

static int32_t block_in_mutex(void *arg, void **result) {
  (void)result;
  blocked_t *b = arg;
  atomic_fetch_add(&b->started, 1);
  if (weft_mutex_lock(&b->held) != WEFT_OK) return 1;
  return weft_mutex_unlock(&b->held) == WEFT_OK ? 0 : 2;
}

static bool count_blocking(const weft_task_info_t *info, void *ud) {
  if (info->task != NULL && info->state == WEFT_TASK_BLOCKING) (*(int *)ud)++;
  return 0;
}

/* A stop-the-world does not wait for tasks blocked inside the plugin: each of its
 * waits is a blocking region. */
TEST_IMPL(plugin_blocked_tasks_let_world_stop) {
  weft_runtime_t *rt = test_open_runtime();
  blocked_t b;
  memset(&b, 0, sizeof b);
  shared_init(&b.s, rt);
  shared_init(&b.sleeper, rt);
  ASSERT_OK(weft_rwlock_init(rt, &b.rw.l));
  ASSERT_OK(weft_mutex_init(rt, &b.held, 0));
  ASSERT_OK(weft_mutex_lock(&b.held));
  ASSERT_OK(weft_rwlock_read_lock(&b.rw.l));
  weft_task_t *t[5];
  t[0] = test_spawn(rt, wait_for_release, &b.s); /* condition wait */
  await_flag(rt, &b.s.started);
  b.join.s = &b.s;
  b.join.target = t[0];
  t[1] = test_spawn(rt, join_target, &b.join);     /* join */
  t[2] = test_spawn(rt, sleep_forever, &b.sleeper); /* sleep */
  t[3] = test_spawn(rt, write_once, &b.rw);         /* rwlock */
  t[4] = test_spawn(rt, block_in_mutex, &b);        /* contended mutex */
  /* Every task has started (a task that registers during the stop would park at a
   * safepoint instead) and is about to block. */
  await_flag(rt, &b.join.started);
  await_flag(rt, &b.sleeper.started);
  await_flag(rt, &b.rw.started);
  await_flag(rt, &b.started);

  ASSERT_OK(weft_stw_begin(rt, test_after_ms(rt, 30000)));
  int blocking = 0;
  ASSERT_OK(weft_tasks_foreach(rt, count_blocking, &blocking));
  ASSERT_EQ(blocking, 5);
  ASSERT_OK(weft_stw_end(rt));

  ASSERT_OK(weft_cancel(t[2]));
  ASSERT_OK(weft_rwlock_unlock(&b.rw.l));
  ASSERT_OK(weft_mutex_unlock(&b.held));
  ASSERT_OK(weft_mutex_lock(&b.s.m));
  atomic_store(&b.s.release, 1);
  ASSERT_OK(weft_cond_broadcast(&b.s.c));
  ASSERT_OK(weft_mutex_unlock(&b.s.m));
  ASSERT_EQ(test_join(t[1]), WEFT_OK); /* joined t[0] */
  ASSERT_EQ(test_join(t[2]), WEFT_ECANCELED);
  ASSERT_EQ(test_join(t[3]), 0);
  ASSERT_EQ(test_join(t[4]), 0);
  ASSERT_OK(weft_mutex_destroy(&b.held));
  ASSERT_OK(weft_rwlock_destroy(&b.rw.l));
  shared_destroy(&b.sleeper);
  shared_destroy(&b.s);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- task handles -------------------------------------------------------------------- */

static atomic_int finished;

static int32_t count_finish(void *arg, void **result) {
  (void)arg;
  (void)result;
  atomic_fetch_add(&finished, 1);
  return 0;
}

TEST_IMPL(plugin_spawn_options_and_detach) {
  weft_runtime_t *rt = test_open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = "a task with a name longer than any OS keeps";
  opts.stack_size = 1; /* rounded up by the platform */
  weft_task_t *t = NULL;
  ASSERT_OK(weft_spawn(rt, count_finish, NULL, &opts, &t));
  ASSERT_EQ(test_join(t), 0);
  opts.stack_size = 1 << 20;
  opts.flags = WEFT_SPAWN_DETACHED;
  for (int i = 0; i < 50; i++) ASSERT_OK(weft_spawn(rt, count_finish, NULL, &opts, NULL));
  for (int i = 0; i < 50; i++) {
    t = test_spawn(rt, count_finish, NULL);
    if (i % 2) {
      ASSERT_OK(weft_detach(t));
    } else {
      ASSERT_EQ(test_join(t), 0);
    }
  }
  /* Detached tasks end on their own; the runtime closes once they have. */
  int64_t give_up = test_after_ms(rt, 30000);
  weft_status_t st;
  while ((st = weft_runtime_close(rt)) == WEFT_EBUSY) {
    ASSERT(weft_now(rt) < give_up);
    ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, 1)));
  }
  ASSERT_OK(st);
  ASSERT_EQ(atomic_load(&finished), 101);
  return TEST_OK;
}

/* A spawn the platform cannot honour fails cleanly: WEFT_ENOMEM, the task never runs,
 * the runtime is not left counting it. */
TEST_IMPL(plugin_spawn_failure) {
  weft_runtime_t *rt = test_open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = (size_t)1 << 50; /* more than any address space */
  atomic_store(&finished, 0);
  weft_task_t *t = (weft_task_t *)0x1;
  ASSERT_STATUS(WEFT_ENOMEM, weft_spawn(rt, count_finish, NULL, &opts, &t));
  ASSERT_ERROR_MENTIONS("could not start the task");
  ASSERT(t == (weft_task_t *)0x1);
  ASSERT_EQ(atomic_load(&finished), 0);
  test_close_runtime(rt);
  return TEST_OK;
}
