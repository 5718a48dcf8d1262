/* Tasks: spawn, join, detach, cancel, identity, hooks. */
#include <stdatomic.h>
#include <stddef.h>

#include "test.h"

static int32_t add_one(void *arg, void **result) {
  intptr_t v = (intptr_t)arg;
  *result = (void *)(v + 1);
  return (int32_t)v;
}

TEST_IMPL(spawn_join_code_and_result) {
  weft_runtime_t *rt = test_open_runtime();
  for (intptr_t i = 0; i < 64; i++) {
    weft_task_t *t = test_spawn(rt, add_one, (void *)i);
    int32_t code = -1;
    void *result = NULL;
    ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, &result));
    ASSERT_EQ(code, i);
    ASSERT_EQ((intptr_t)result, i + 1);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* A failing task: its non-zero code and its result come back; code and result may be
 * NULL. */
static int32_t fail_with_42(void *arg, void **result) {
  *result = arg;
  return 42;
}

TEST_IMPL(join_failing_task) {
  weft_runtime_t *rt = test_open_runtime();
  int marker;
  weft_task_t *t = test_spawn(rt, fail_with_42, &marker);
  int32_t code = 0;
  void *result = NULL;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, &result));
  ASSERT_EQ(code, 42);
  ASSERT(result == &marker);
  t = test_spawn(rt, fail_with_42, &marker);
  ASSERT_OK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  t = test_spawn(rt, fail_with_42, &marker);
  result = NULL;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, NULL, &result));
  ASSERT(result == &marker);
  t = test_spawn(rt, fail_with_42, &marker);
  code = 0;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, NULL));
  ASSERT_EQ(code, 42);
  test_close_runtime(rt);
  return TEST_OK;
}

static atomic_int runs;

static int32_t count_run(void *arg, void **result) {
  (void)arg;
  (void)result;
  atomic_fetch_add(&runs, 1);
  return 0;
}

/* Touches `bytes` of stack, from the far end, one page at a time. */
static int32_t use_stack(void *arg, void **result) {
  (void)result;
  (void)arg;
  volatile char big[8 << 20];
  for (size_t i = sizeof big; i >= 4096; i -= 4096) big[i - 1] = (char)i;
  big[0] = 1;
  return big[0] + big[4095] - 1;
}

typedef struct {
  weft_runtime_t *rt;
  test_gate_t gate;
} gate_arg_t;

static int32_t wait_at_gate(void *arg, void **result) {
  (void)result;
  return test_gate_wait(arg);
}

typedef struct {
  weft_task_t *task;
  char name[64];
  int found;
} name_probe_t;

static bool find_name(const weft_task_info_t *info, void *ud) {
  name_probe_t *p = ud;
  if (info->task != p->task) return 0;
  p->found = 1;
  snprintf(p->name, sizeof p->name, "%s", info->name != NULL ? info->name : "(null)");
  return 1;
}

/* Spawn options: the name is copied, the stack size is honoured (8 MiB of locals in a
 * 16 MiB stack), a tiny stack size is rounded up, struct_size versions are read. */
TEST_IMPL(spawn_options) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  char name[32] = "conformance-worker";
  opts.name = name;
  weft_task_t *t = NULL;
  ASSERT_OK(weft_spawn(rt, wait_at_gate, &gate, &opts, &t));
  memset(name, 'X', sizeof name - 1); /* the runtime kept its own copy */
  test_gate_await_waiters(rt, &gate, 1);
  name_probe_t probe = {t, "", 0};
  ASSERT_OK(weft_tasks_foreach(rt, find_name, &probe));
  ASSERT(probe.found);
  ASSERT(strcmp(probe.name, "conformance-worker") == 0);
  test_gate_open(&gate);
  ASSERT_EQ(test_join(t), 0);

  weft_spawn_opts_init(&opts);
  opts.stack_size = 16 << 20;
  ASSERT_OK(weft_spawn(rt, use_stack, NULL, &opts, &t));
  ASSERT_EQ(test_join(t), 0);
  opts.stack_size = 1;
  ASSERT_OK(weft_spawn(rt, count_run, NULL, &opts, &t));
  ASSERT_EQ(test_join(t), 0);

  /* An older, shorter weft_spawn_opts_t: fields past struct_size are not read. */
  weft_spawn_opts_init(&opts);
  opts.struct_size = offsetof(weft_spawn_opts_t, name);
  opts.name = (const char *)0x1;
  ASSERT_OK(weft_spawn(rt, count_run, NULL, &opts, &t));
  ASSERT_EQ(test_join(t), 0);
  /* A newer, longer one: the known prefix is read while the rest is zero, and an
   * option this library does not know is refused. */
  struct {
    weft_spawn_opts_t opts;
    char future[32];
  } newer;
  memset(&newer, 0, sizeof newer);
  weft_spawn_opts_init(&newer.opts);
  newer.opts.struct_size = sizeof newer;
  ASSERT_OK(weft_spawn(rt, count_run, NULL, &newer.opts, &t));
  ASSERT_EQ(test_join(t), 0);
  newer.future[5] = 1;
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, &newer.opts, &t));
  ASSERT_ERROR_MENTIONS("weft_spawn_opts_t.struct_size");
  ASSERT_EQ(atomic_load(&runs), 3);
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Refused spawns: nothing runs and *out is untouched. */
TEST_IMPL(spawn_bad_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t = (weft_task_t *)0x1;
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = 0x80;
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, &opts, &t));
  ASSERT_ERROR_MENTIONS("flags");
  opts.flags = WEFT_SPAWN_DETACHED | 0x100;
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, &opts, &t));
  weft_spawn_opts_init(&opts);
  opts.struct_size = 0;
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, &opts, &t));
  ASSERT_ERROR_MENTIONS("struct_size");
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, NULL, NULL, NULL, &t));
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, NULL, NULL));
  ASSERT_ERROR_MENTIONS("out");
  ASSERT(t == (weft_task_t *)0x1);
  /* A stack no platform can give: refused (not a crash), nothing left running. */
  weft_spawn_opts_init(&opts);
  opts.stack_size = SIZE_MAX / 2;
  weft_status_t st = weft_spawn(rt, count_run, NULL, &opts, &t);
  ASSERT(st == WEFT_ENOMEM || st == WEFT_EINVAL);
  ASSERT(t == (weft_task_t *)0x1);
  test_close_runtime(rt); /* succeeds at once: no task was started */
  ASSERT_EQ(atomic_load(&runs), 0);
  return TEST_OK;
}

/* WEFT_SPAWN_DETACHED: no handle (out may be NULL, or receives NULL); the task runs. */
TEST_IMPL(spawn_detached) {
  weft_runtime_t *rt = test_open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  ASSERT_OK(weft_spawn(rt, count_run, NULL, &opts, NULL));
  weft_task_t *t = (weft_task_t *)0x1;
  ASSERT_OK(weft_spawn(rt, count_run, NULL, &opts, &t));
  ASSERT(t == NULL);
  test_close_runtime_when_idle(rt);
  ASSERT_EQ(atomic_load(&runs), 2);
  return TEST_OK;
}

/* A timed join gives WEFT_ETIMEDOUT and keeps the handle; a later join succeeds. */
TEST_IMPL(join_deadline) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_task_t *t = test_spawn(rt, add_one, (void *)0);
  ASSERT_EQ(test_join(t), 0);
  t = test_spawn(rt, wait_at_gate, &gate);
  int32_t code = 99;
  void *result = (void *)0x1;
  int64_t deadline = test_after_ms(rt, 30);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(t, deadline, &code, &result));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(t, 0, &code, &result)); /* past: one look */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(t, weft_now(rt), &code, &result));
  ASSERT_EQ(code, 99); /* outputs untouched on failure */
  ASSERT(result == (void *)0x1);
  test_gate_open(&gate);
  ASSERT_OK(weft_join(t, test_after_ms(rt, TEST_PATIENCE_MS), &code, &result));
  ASSERT_EQ(code, 0);
  ASSERT(result == NULL);
  /* A finished task joins even with a deadline in the past. */
  t = test_spawn(rt, fail_with_42, NULL);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  weft_status_t st;
  while ((st = weft_join(t, 0, &code, NULL)) == WEFT_ETIMEDOUT) ASSERT(weft_now(rt) < give_up);
  ASSERT_OK(st);
  ASSERT_EQ(code, 42);
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t join_self(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_task_t *me = weft_task_self();
  if (me == NULL) return 1;
  if (weft_join(me, WEFT_FOREVER, NULL, NULL) != WEFT_EDEADLK) return 2;
  if (strstr(weft_last_error(), "itself") == NULL) return 3;
  if (weft_join(me, 0, NULL, NULL) != WEFT_EDEADLK) return 4;
  return 0;
}

TEST_IMPL(join_self_deadlock) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t = test_spawn(rt, join_self, NULL);
  ASSERT_EQ(test_join(t), 0); /* the refused self-join left the handle valid */
  test_close_runtime(rt);
  return TEST_OK;
}

/* A handle is given back exactly once: a second join or detach is WEFT_EINVAL. */
TEST_IMPL(join_detach_twice) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t = test_spawn(rt, add_one, (void *)1);
  ASSERT_OK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_join(t, WEFT_FOREVER, NULL, NULL));
  ASSERT_ERROR_MENTIONS("already joined or detached");
  ASSERT_STATUS(WEFT_EINVAL, weft_detach(t));

  test_gate_t gate;
  test_gate_init(rt, &gate);
  t = test_spawn(rt, wait_at_gate, &gate); /* still running: its memory is alive */
  ASSERT_OK(weft_detach(t));
  ASSERT_STATUS(WEFT_EINVAL, weft_detach(t));
  ASSERT_ERROR_MENTIONS("already joined or detached");
  ASSERT_STATUS(WEFT_EINVAL, weft_join(t, 0, NULL, NULL));
  ASSERT_STATUS(WEFT_EBUSY, weft_runtime_close(rt)); /* the detached task runs on */
  test_gate_open(&gate);
  test_close_runtime_when_idle(rt);
  test_gate_destroy(&gate);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_task_t *target;
  atomic_int claimed_elsewhere;
} joiner_arg_t;

static int32_t join_target(void *arg, void **result) {
  joiner_arg_t *j = arg;
  int32_t code = -1;
  weft_status_t st;
  /* The test thread polls the handle with instant joins; while one of those holds it,
   * ours is refused as concurrent: retry, letting the test thread go on (on sim, a
   * retry that never reaches the platform would spin for ever while the test thread's
   * join waits for a turn). */
  while ((st = weft_join(j->target, WEFT_FOREVER, &code, result)) == WEFT_EINVAL) {
    if (strstr(weft_last_error(), "being joined") == NULL) return 1000;
    atomic_fetch_add(&j->claimed_elsewhere, 1);
    ASSERT_OK(weft_yield(j->rt));
  }
  return st == WEFT_OK ? code : 2000 + st;
}

/* Two joiners at once: one waits, the other is refused with WEFT_EINVAL; the waiting
 * one gets the code. A task may join a task it did not spawn. */
TEST_IMPL(join_concurrent_joiners) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  joiner_arg_t j = {rt, test_spawn(rt, wait_at_gate, &gate), 0};
  weft_task_t *joiner = test_spawn(rt, join_target, &j);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  weft_status_t st;
  while ((st = weft_join(j.target, 0, NULL, NULL)) == WEFT_ETIMEDOUT) {
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  ASSERT_STATUS(WEFT_EINVAL, st);
  ASSERT_ERROR_MENTIONS("being joined");
  ASSERT_STATUS(WEFT_EINVAL, weft_detach(j.target)); /* nor may it be detached now */
  test_gate_open(&gate);
  ASSERT_EQ(test_join(joiner), 0);
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t spawn_and_join_children(void *arg, void **result) {
  weft_runtime_t *rt = arg;
  (void)result;
  int32_t sum = 0;
  for (intptr_t i = 0; i < 50; i++) {
    weft_task_t *t = NULL;
    if (weft_spawn(rt, add_one, (void *)i, NULL, &t) != WEFT_OK) return -1;
    int32_t code = -1;
    void *r = NULL;
    if (weft_join(t, WEFT_FOREVER, &code, &r) != WEFT_OK) return -2;
    if ((intptr_t)r != i + 1) return -3;
    sum += code;
  }
  return sum;
}

/* Tasks spawn and join tasks, several at once. */
TEST_IMPL(spawn_from_tasks) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t[4];
  for (int i = 0; i < 4; i++) t[i] = test_spawn(rt, spawn_and_join_children, rt);
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(t[i]), 49 * 50 / 2);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t detached_counts(void *arg, void **result) {
  (void)result;
  weft_status_t st = test_gate_wait(arg);
  atomic_fetch_add(&runs, 1);
  return st;
}

/* A detached task runs to its end; the runtime stays busy until it has. */
TEST_IMPL(detach_running_task) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_task_t *t = test_spawn(rt, detached_counts, &gate);
  test_gate_await_waiters(rt, &gate, 1);
  ASSERT_OK(weft_detach(t));
  ASSERT_EQ(atomic_load(&runs), 0);
  test_gate_open(&gate);
  test_close_runtime_when_idle(rt);
  ASSERT_EQ(atomic_load(&runs), 1);
  test_gate_destroy(&gate);
  return TEST_OK;
}

/* --- cancellation -------------------------------------------------------------- */

typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  weft_cond_t c;
  weft_task_t *other;
  atomic_int started;
  atomic_int go;
} cancel_arg_t;

static void cancel_arg_init(weft_runtime_t *rt, cancel_arg_t *a) {
  memset(a, 0, sizeof *a);
  a->rt = rt;
  ASSERT_OK(weft_mutex_init(rt, &a->m, 0));
  ASSERT_OK(weft_cond_init(rt, &a->c));
}

static void cancel_arg_destroy(cancel_arg_t *a) {
  ASSERT_OK(weft_cond_destroy(&a->c));
  ASSERT_OK(weft_mutex_destroy(&a->m));
}

/* After a first WEFT_ECANCELED, every later cancellation point fails the same way. */
static int32_t check_sticky(cancel_arg_t *a) {
  if (!weft_task_cancelled()) return 100;
  if (weft_sleep_until(a->rt, weft_deadline_after(a->rt, 10000000000LL)) != WEFT_ECANCELED) return 101;
  if (weft_sleep_until(a->rt, WEFT_FOREVER) != WEFT_ECANCELED) return 102;
  if (weft_mutex_lock(&a->m) != WEFT_OK) return 103; /* locking is not a cancellation point */
  if (weft_cond_wait(&a->c, &a->m) != WEFT_ECANCELED) return 104;
  if (weft_mutex_unlock(&a->m) != WEFT_OK) return 105; /* held again after the wait */
  return 0;
}

static int32_t sleep_forever(void *arg, void **result) {
  cancel_arg_t *a = arg;
  (void)result;
  if (weft_task_cancelled()) return 1;
  weft_status_t st = weft_sleep_until(a->rt, WEFT_FOREVER);
  if (st != WEFT_ECANCELED) return 2;
  if (strstr(weft_last_error(), "weft_sleep_until") == NULL) return 3;
  return check_sticky(a);
}

/* A cancellation in sleep_until(WEFT_FOREVER) ends it promptly; cancel is sticky. */
TEST_IMPL(cancel_sleeping_task) {
  weft_runtime_t *rt = test_open_runtime();
  cancel_arg_t a;
  cancel_arg_init(rt, &a);
  weft_task_t *t = test_spawn(rt, sleep_forever, &a);
  test_wait_blocked(rt, t);
  ASSERT_OK(weft_cancel(t));
  int32_t code = -1;
  ASSERT_OK(weft_join(t, test_after_ms(rt, TEST_PATIENCE_MS), &code, NULL));
  ASSERT_EQ(code, 0);
  cancel_arg_destroy(&a);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t cond_wait_long(void *arg, void **result) {
  cancel_arg_t *a = arg;
  (void)result;
  if (weft_mutex_lock(&a->m) != WEFT_OK) return 1;
  weft_status_t st = weft_cond_wait_until(&a->c, &a->m, weft_deadline_after(a->rt, 60000000000LL));
  if (st != WEFT_ECANCELED) return 10 + st;
  if (weft_mutex_unlock(&a->m) != WEFT_OK) return 2; /* the mutex was held again */
  return check_sticky(a);
}

static int32_t cond_wait_forever(void *arg, void **result) {
  cancel_arg_t *a = arg;
  (void)result;
  if (weft_mutex_lock(&a->m) != WEFT_OK) return 1;
  weft_status_t st = weft_cond_wait(&a->c, &a->m);
  if (st != WEFT_ECANCELED) return 10 + st;
  if (weft_mutex_unlock(&a->m) != WEFT_OK) return 2;
  return 0;
}

/* A task blocked in a timed condition wait (deadline a minute away), or an untimed
 * one, is woken by a cancel with WEFT_ECANCELED and the mutex held again. */
TEST_IMPL(cancel_cond_waiting_task) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_fn fns[2] = {cond_wait_long, cond_wait_forever};
  for (int i = 0; i < 2; i++) {
    cancel_arg_t a;
    cancel_arg_init(rt, &a);
    weft_task_t *t = test_spawn(rt, fns[i], &a);
    test_wait_blocked(rt, t);
    ASSERT_OK(weft_cancel(t));
    int32_t code = -1;
    ASSERT_OK(weft_join(t, test_after_ms(rt, TEST_PATIENCE_MS), &code, NULL));
    ASSERT_EQ(code, 0);
    cancel_arg_destroy(&a);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t join_other(void *arg, void **result) {
  cancel_arg_t *a = arg;
  (void)result;
  int32_t code = -1;
  weft_status_t st = weft_join(a->other, WEFT_FOREVER, &code, NULL);
  if (st != WEFT_ECANCELED) return 10 + st;
  if (code != -1) return 2; /* no output on failure */
  if (weft_join(a->other, WEFT_FOREVER, &code, NULL) != WEFT_ECANCELED) return 3;
  return 0;
}

/* A task blocked joining another is woken by a cancel; the other task's handle stays
 * valid and is joined later. */
TEST_IMPL(cancel_joining_task) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  cancel_arg_t a;
  cancel_arg_init(rt, &a);
  a.other = test_spawn(rt, wait_at_gate, &gate);
  weft_task_t *joiner = test_spawn(rt, join_other, &a);
  test_wait_blocked(rt, joiner);
  ASSERT_OK(weft_cancel(joiner));
  int32_t code = -1;
  ASSERT_OK(weft_join(joiner, test_after_ms(rt, TEST_PATIENCE_MS), &code, NULL));
  ASSERT_EQ(code, 0);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(a.other, 0, NULL, NULL)); /* not cancelled */
  test_gate_open(&gate);
  ASSERT_EQ(test_join(a.other), 0);
  cancel_arg_destroy(&a);
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t spin_then_wait(void *arg, void **result) {
  cancel_arg_t *a = arg;
  (void)result;
  atomic_store(&a->started, 1);
  while (!atomic_load(&a->go)) {
  }
  /* Cancelled while computing: seen by weft_task_cancelled and by the next wait. */
  if (!weft_task_cancelled()) return 1;
  if (weft_sleep_until(a->rt, 0) != WEFT_ECANCELED) return 2;
  return check_sticky(a);
}

TEST_IMPL(cancel_before_waiting) {
  weft_runtime_t *rt = test_open_runtime();
  test_skip_on_one_thread(rt, "a task spins without weft calls while the main task runs");
  cancel_arg_t a;
  cancel_arg_init(rt, &a);
  weft_task_t *t = test_spawn(rt, spin_then_wait, &a);
  while (!atomic_load(&a.started)) ASSERT_OK(weft_yield(rt));
  ASSERT_OK(weft_cancel(t));
  ASSERT_OK(weft_cancel(t)); /* twice is fine */
  atomic_store(&a.go, 1);
  ASSERT_EQ(test_join(t), 0);
  cancel_arg_destroy(&a);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Cancelling a finished task does nothing; its code is still reported. */
TEST_IMPL(cancel_finished_task) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t = test_spawn(rt, fail_with_42, NULL);
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (weft_runtime_close(rt) == WEFT_EBUSY) { /* a probe only: fails while t runs */
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  /* The runtime closed once t ended; the handle stays usable. */
  ASSERT_OK(weft_cancel(t));
  ASSERT_OK(weft_cancel(t));
  int32_t code = 0;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, NULL));
  ASSERT_EQ(code, 42);

  rt = test_open_runtime();
  t = test_spawn(rt, fail_with_42, NULL);
  test_sleep_ms(rt, 5);
  ASSERT_OK(weft_cancel(t)); /* finished or about to: either way harmless */
  code = 0;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, NULL));
  ASSERT_EQ(code, 42);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task that cancels a handle and reads its id until the handle is given up, while
 * the test thread joins it: each call either sees the task (WEFT_OK; its id) or the
 * handle given up (WEFT_EINVAL; 0), never a state the join freed under it. (The id
 * may still read while a cancel is refused: the join gives the handle up first and
 * frees the state after.) */
typedef struct {
  weft_runtime_t *rt;
  weft_task_t *target;
  uint64_t id;
  atomic_int started;
} poker_arg_t;

static int32_t poke_until_given_up(void *arg, void **result) {
  (void)result;
  poker_arg_t *p = arg;
  atomic_store(&p->started, 1);
  for (;;) {
    weft_status_t st = weft_cancel(p->target);
    uint64_t id = weft_task_id(p->target);
    if (id != p->id && id != 0) return 1;
    if (st == WEFT_EINVAL) return 0;
    if (st != WEFT_OK) return 2;
    weft_yield(p->rt);
  }
}

TEST_IMPL(cancel_and_id_race_a_join) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 2000; round++) {
    poker_arg_t p = {rt, test_spawn(rt, add_one, (void *)(intptr_t)round), 0, 0};
    p.id = weft_task_id(p.target);
    ASSERT(p.id != 0);
    weft_task_t *poker = test_spawn(rt, poke_until_given_up, &p);
    /* Join once the poker runs, so that its calls meet the join. */
    while (!atomic_load(&p.started)) ASSERT_OK(weft_yield(rt));
    int32_t code = -1;
    ASSERT_OK(weft_join(p.target, WEFT_FOREVER, &code, NULL));
    ASSERT_EQ(code, round);
    ASSERT_EQ(test_join(poker), 0);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- identity ------------------------------------------------------------------ */

typedef struct {
  weft_task_t *self;
  uint64_t id;
  int32_t cancelled;
} identity_t;

static int32_t report_identity(void *arg, void **result) {
  identity_t *me = arg;
  (void)result;
  me->self = weft_task_self();
  me->id = weft_task_id(me->self);
  me->cancelled = weft_task_cancelled();
  return 0;
}

TEST_IMPL(task_identity) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT(weft_task_self() == NULL); /* the test's own thread is not a task */
  ASSERT_EQ(weft_task_cancelled(), 0);
  ASSERT_EQ(weft_task_id(NULL), 0);
  ASSERT_ERROR_MENTIONS("NULL");
  enum { N = 32 };
  identity_t ids[N];
  weft_task_t *t[N];
  uint64_t handle_ids[N];
  for (int i = 0; i < N; i++) {
    t[i] = test_spawn(rt, report_identity, &ids[i]);
    handle_ids[i] = weft_task_id(t[i]);
    ASSERT(handle_ids[i] != 0);
  }
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(test_join(t[i]), 0);
    ASSERT(ids[i].self == t[i]);
    ASSERT_EQ(ids[i].id, handle_ids[i]);
    ASSERT_EQ(ids[i].cancelled, 0);
    for (int j = 0; j < i; j++) ASSERT(ids[i].id != ids[j].id);
  }
  /* Ids are unique across runtimes too. */
  weft_runtime_t *rt2 = test_open_runtime();
  identity_t other;
  weft_task_t *t2 = test_spawn(rt2, report_identity, &other);
  ASSERT_EQ(test_join(t2), 0);
  for (int i = 0; i < N; i++) ASSERT(other.id != ids[i].id);
  test_close_runtime(rt2);
  uint64_t junk[64];
  memset(junk, 0, sizeof junk);
  ASSERT_EQ(weft_task_id((weft_task_t *)junk), 0);
  ASSERT_ERROR_MENTIONS("not a weft task");
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- hooks --------------------------------------------------------------------- */

typedef struct {
  atomic_int starts, exits, mismatches;
  weft_key_t key;
} hook_log_t;

static void on_start(weft_task_t *task, void *ud) {
  hook_log_t *log = ud;
  if (task == NULL || weft_task_self() != task) atomic_fetch_add(&log->mismatches, 1);
  if (weft_local_get(log->key) != NULL) atomic_fetch_add(&log->mismatches, 1);
  atomic_fetch_add(&log->starts, 1);
  weft_local_set(log->key, (void *)1); /* the task function sees what the hook set */
}

static void on_exit_hook(weft_task_t *task, void *ud) {
  hook_log_t *log = ud;
  if (task == NULL || weft_task_self() != task) atomic_fetch_add(&log->mismatches, 1);
  /* Runs after the function, before the task-local destructors. */
  if (weft_local_get(log->key) != (void *)2) atomic_fetch_add(&log->mismatches, 1);
  atomic_fetch_add(&log->exits, 1);
}

static hook_log_t *hook_log;

static int32_t hooked_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  if (atomic_load(&hook_log->starts) < 1) return 1;
  if (weft_local_get(hook_log->key) != (void *)1) return 2;
  weft_local_set(hook_log->key, (void *)2);
  return 0;
}

static atomic_int hook_dtor_calls;

static void hook_dtor(void *value) {
  if (value == (void *)2 && atomic_load(&hook_log->exits) >= 1) atomic_fetch_add(&hook_dtor_calls, 1);
}

/* weft_config_t.on_task_start / on_task_exit run once per task, on the task, in
 * order: start hook, function, exit hook, task-local destructors. */
TEST_IMPL(task_hooks) {
  static hook_log_t log;
  hook_log = &log;
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.on_task_start = on_start;
  cfg.on_task_exit = on_exit_hook;
  cfg.hook_ud = &log;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  ASSERT_OK(weft_key_create(rt, hook_dtor, &log.key));
  enum { N = 8 };
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) t[i] = test_spawn(rt, hooked_task, NULL);
  for (int i = 0; i < N; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(atomic_load(&log.starts), N);
  ASSERT_EQ(atomic_load(&log.exits), N);
  ASSERT_EQ(atomic_load(&log.mismatches), 0);
  ASSERT_EQ(atomic_load(&hook_dtor_calls), N);
  test_close_runtime(rt);
  return TEST_OK;
}

/* NULL for every pointer argument of the task functions. */
TEST_IMPL(tasks_null_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_task_t *t = (weft_task_t *)0x1;
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(NULL, count_run, NULL, NULL, &t));
  ASSERT_ERROR_MENTIONS("runtime");
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, NULL, NULL, NULL, &t));
  ASSERT_ERROR_MENTIONS("func");
  ASSERT_STATUS(WEFT_EINVAL, weft_spawn(rt, count_run, NULL, NULL, NULL));
  ASSERT_ERROR_MENTIONS("out");
  ASSERT(t == (weft_task_t *)0x1);
  ASSERT_STATUS(WEFT_EINVAL, weft_join(NULL, WEFT_FOREVER, NULL, NULL));
  ASSERT_ERROR_MENTIONS("task");
  ASSERT_STATUS(WEFT_EINVAL, weft_detach(NULL));
  ASSERT_ERROR_MENTIONS("task");
  ASSERT_STATUS(WEFT_EINVAL, weft_cancel(NULL));
  ASSERT_ERROR_MENTIONS("task");
  ASSERT_EQ(weft_task_id(NULL), 0);
  ASSERT_ERROR_MENTIONS("task");
  /* arg may be NULL; opts may be NULL; code and result may be NULL (join_failing_task) */
  t = test_spawn(rt, count_run, NULL);
  ASSERT_OK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  uint64_t junk[64];
  memset(junk, 0, sizeof junk);
  ASSERT_STATUS(WEFT_EINVAL, weft_join((weft_task_t *)junk, 0, NULL, NULL));
  ASSERT_ERROR_MENTIONS("not a weft task");
  ASSERT_STATUS(WEFT_EINVAL, weft_detach((weft_task_t *)junk));
  ASSERT_STATUS(WEFT_EINVAL, weft_cancel((weft_task_t *)junk));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A handle given up is refused by weft_cancel as by join and detach; a stack no
 * platform can give is WEFT_ENOMEM on every plugin. */
TEST_IMPL(cancel_given_up_handle_and_huge_stack) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_task_t *t = test_spawn(rt, wait_at_gate, &gate);
  ASSERT_OK(weft_cancel(t)); /* joinable: fine, and it ends the gate wait */
  ASSERT_OK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_cancel(t));
  ASSERT_ERROR_MENTIONS("already joined or detached");
  t = test_spawn(rt, wait_at_gate, &gate);
  ASSERT_OK(weft_detach(t));
  ASSERT_STATUS(WEFT_EINVAL, weft_cancel(t)); /* still running, but given up */
  ASSERT_ERROR_MENTIONS("already joined or detached");
  test_gate_open(&gate);

  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = SIZE_MAX;
  weft_task_t *never = NULL;
  ASSERT_STATUS(WEFT_ENOMEM, weft_spawn(rt, add_one, NULL, &opts, &never));
  ASSERT_ERROR_MENTIONS("stack");
  ASSERT(never == NULL);
  test_close_runtime_when_idle(rt);
  test_gate_destroy(&gate);
  return TEST_OK;
}

/* A detached task's handle is given up from its start: its own weft_cancel through
 * weft_task_self() is WEFT_EINVAL every time (it was WEFT_OK when the task ran before
 * weft_spawn had given the handle up). */
static atomic_int self_cancel_ok, self_cancel_inval;

static int32_t cancel_self(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_status_t s = weft_cancel(weft_task_self());
  atomic_fetch_add(s == WEFT_OK ? &self_cancel_ok : &self_cancel_inval, 1);
  return 0;
}

TEST_IMPL(cancel_self_in_detached_task) {
  enum { TASKS = 300 };
  weft_runtime_t *rt = test_open_runtime();
  atomic_store(&self_cancel_ok, 0);
  atomic_store(&self_cancel_inval, 0);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  for (int i = 0; i < TASKS; i++) ASSERT_OK(weft_spawn(rt, cancel_self, NULL, &opts, NULL));
  ASSERT_OK(weft_runtime_drain(rt, test_after_ms(rt, TEST_PATIENCE_MS)));
  ASSERT_EQ(atomic_load(&self_cancel_ok), 0);
  ASSERT_EQ(atomic_load(&self_cancel_inval), TASKS);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Stack sizes, the same on every platform that runs a task on its own thread (the
 * thread-per-task plugins; others skip): 0 gives WEFT_DEFAULT_STACK_SIZE, a request is
 * a minimum rounded up to whole pages (1234567 bytes: not glibc's rounded-down
 * 1234560), a tiny one is raised to WEFT_MIN_STACK_SIZE. */
#include <pthread.h>
#include <unistd.h>

static int32_t report_stack(void *arg, void **result) {
  (void)arg;
  pthread_attr_t attr;
  size_t size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return 1;
  int rc = pthread_attr_getstacksize(&attr, &size);
  pthread_attr_destroy(&attr);
  *result = (void *)(uintptr_t)size;
  return rc;
}

static size_t stack_given(weft_runtime_t *rt, size_t requested) {
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = requested;
  weft_task_t *t = NULL;
  int32_t code = -1;
  void *result = NULL;
  if (weft_spawn(rt, report_stack, NULL, &opts, &t) != WEFT_OK) return 0;
  if (weft_join(t, WEFT_FOREVER, &code, &result) != WEFT_OK || code != 0) return 0;
  return (size_t)(uintptr_t)result;
}

TEST_IMPL(stack_sizes) {
  weft_runtime_t *rt = test_open_runtime();
  if (!(weft_runtime_platform(rt)->caps & WEFT_CAP_OS_THREADS)) {
    /* A third-party plugin's tasks on threads are checked too (it went by name). */
    fprintf(stderr, "skip: the tasks are not OS threads, whose stack pthread reports\n");
    test_close_runtime(rt);
    return TEST_SKIP;
  }
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  /* Smallest first: glibc may hand a task a larger cached stack of an earlier one. */
  size_t asked[] = {1, 1234567, 3 << 20, 0};
  size_t floor_of[] = {WEFT_MIN_STACK_SIZE, 1234567, 3 << 20, WEFT_DEFAULT_STACK_SIZE};
  for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
    size_t given = stack_given(rt, asked[i]);
    if (given < floor_of[i] || given % page != 0) {
      fprintf(stderr, "stack_size %zu: the task got %zu bytes (page %zu)\n", asked[i], given, page);
      ASSERT(0);
    }
  }
  test_close_runtime(rt);
  return TEST_OK;
}
