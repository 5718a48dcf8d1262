/* Task groups and weft_parallel_for. */
#include <stdatomic.h>
#include <stdlib.h>

#include "test.h"

typedef struct {
  atomic_ullong sum;
  atomic_ullong calls;
  atomic_ullong min_len;
  unsigned char *visits; /* one byte per index, or NULL */
  size_t base;
} range_log_t;

static void log_init(range_log_t *log, unsigned char *visits, size_t base) {
  atomic_store(&log->sum, 0);
  atomic_store(&log->calls, 0);
  atomic_store(&log->min_len, ~0ull);
  log->visits = visits;
  log->base = base;
}

static int32_t sum_range(size_t begin, size_t end, void *ud) {
  range_log_t *log = ud;
  unsigned long long s = 0;
  for (size_t i = begin; i < end; i++) {
    s += i;
    if (log->visits) log->visits[i - log->base]++;
  }
  atomic_fetch_add(&log->sum, s);
  atomic_fetch_add(&log->calls, 1);
  unsigned long long len = end - begin, min = atomic_load(&log->min_len);
  while (len < min && !atomic_compare_exchange_weak(&log->min_len, &min, len)) {
  }
  return 0;
}

static unsigned long long triangle(size_t begin, size_t end) {
  unsigned long long s = 0;
  for (size_t i = begin; i < end; i++) s += i;
  return s;
}

/* Every index of 10^7 is visited exactly once and the sum is exact, with a chosen grain
 * and with weft's. */
TEST_IMPL(parallel_for_covers_exactly) {
  weft_runtime_t *rt = test_open_runtime();
  enum { N = 10000000 };
  unsigned char *visits = calloc(N, 1);
  ASSERT(visits != NULL);
  range_log_t log;
  size_t grains[] = {0, 1000, 4096};
  for (size_t g = 0; g < 3; g++) {
    memset(visits, 0, N);
    log_init(&log, visits, 0);
    int32_t code = -1;
    ASSERT_OK(weft_parallel_for(rt, 0, N, grains[g], sum_range, &log, &code));
    ASSERT_EQ(code, 0);
    ASSERT(atomic_load(&log.sum) == (unsigned long long)N * (N - 1) / 2);
    for (size_t i = 0; i < N; i++) ASSERT_EQ(visits[i], 1);
    if (grains[g]) ASSERT(atomic_load(&log.min_len) >= grains[g]);
  }
  free(visits);
  test_close_runtime(rt);
  return TEST_OK;
}

/* No sub-range is shorter than the grain unless the whole range is; empty ranges call
 * nothing; bad input is refused. */
TEST_IMPL(parallel_for_grain_and_edges) {
  weft_runtime_t *rt = test_open_runtime();
  range_log_t log;
  for (size_t len = 1; len < 200; len += 13) {
    for (size_t grain = 1; grain < 64; grain *= 3) {
      log_init(&log, NULL, 0);
      ASSERT_OK(weft_parallel_for(rt, 1000, 1000 + len, grain, sum_range, &log, NULL));
      ASSERT(atomic_load(&log.sum) == triangle(1000, 1000 + len));
      unsigned long long want = grain < len ? grain : len;
      ASSERT(atomic_load(&log.min_len) >= want);
    }
  }
  log_init(&log, NULL, 0);
  int32_t code = -1;
  ASSERT_OK(weft_parallel_for(rt, 5, 5, 0, sum_range, &log, &code));
  ASSERT_EQ(code, 0);
  ASSERT_EQ(atomic_load(&log.calls), 0);
  ASSERT_STATUS(WEFT_EINVAL, weft_parallel_for(rt, 6, 5, 0, sum_range, &log, &code));
  ASSERT_ERROR_MENTIONS("begin (6) is after end (5)");
  ASSERT_STATUS(WEFT_EINVAL, weft_parallel_for(rt, 0, 5, 0, NULL, &log, &code));
  ASSERT_ERROR_MENTIONS("body is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_parallel_for(NULL, 0, 5, 0, sum_range, &log, &code));
  /* The last index of the address space is reachable. */
  log_init(&log, NULL, 0);
  ASSERT_OK(weft_parallel_for(rt, SIZE_MAX - 100, SIZE_MAX, 7, sum_range, &log, NULL));
  ASSERT_EQ(atomic_load(&log.calls) > 0, 1);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A failing body stops the sub-ranges not started yet; its code comes back. */
static int32_t fail_at_5000(size_t begin, size_t end, void *ud) {
  atomic_ullong *calls = ud;
  atomic_fetch_add(calls, 1);
  return (begin <= 5000 && 5000 < end) ? 7 : 0;
}

/* Fails at once: over a range of 2^40 one-element sub-ranges, the rest are skipped in
 * one step (they were claimed one by one, and the call ran for hours). */
static int32_t fail_at_once(size_t begin, size_t end, void *ud) {
  (void)begin;
  (void)end;
  atomic_fetch_add((atomic_ullong *)ud, 1);
  return 9;
}

/* Nested: every body runs a parallel loop of its own. */
typedef struct {
  weft_runtime_t *rt;
  atomic_ullong total;
} nest_t;

static int32_t outer_body(size_t begin, size_t end, void *ud) {
  nest_t *n = ud;
  for (size_t i = begin; i < end; i++) {
    range_log_t inner;
    log_init(&inner, NULL, 0);
    int32_t code = -1;
    if (weft_parallel_for(n->rt, 0, 1000, 10, sum_range, &inner, &code) != WEFT_OK || code != 0) return 9;
    atomic_fetch_add(&n->total, atomic_load(&inner.sum));
  }
  return 0;
}

TEST_IMPL(parallel_for_failure_and_nesting) {
  weft_runtime_t *rt = test_open_runtime();
  atomic_ullong calls = 0;
  int32_t code = 0;
  ASSERT_OK(weft_parallel_for(rt, 0, 100000, 100, fail_at_5000, &calls, &code));
  ASSERT_EQ(code, 7);
  ASSERT(atomic_load(&calls) >= 1 && atomic_load(&calls) <= 1000);
  atomic_store(&calls, 0);
  ASSERT_OK(weft_parallel_for(rt, 0, (size_t)1 << 40, 1, fail_at_once, &calls, &code));
  ASSERT_EQ(code, 9);
  ASSERT(atomic_load(&calls) >= 1 && atomic_load(&calls) <= 64);
  nest_t n = {.rt = rt};
  ASSERT_OK(weft_parallel_for(rt, 0, 64, 1, outer_body, &n, &code));
  ASSERT_EQ(code, 0);
  ASSERT(atomic_load(&n.total) == 64ull * triangle(0, 1000));
  test_close_runtime(rt);
  return TEST_OK;
}

/* Several tasks run parallel loops at once. */
typedef struct {
  weft_runtime_t *rt;
  size_t begin;
  unsigned long long sum;
} looper_t;

static int32_t run_a_loop(void *arg, void **result) {
  (void)result;
  looper_t *l = arg;
  for (int round = 0; round < 20; round++) {
    range_log_t log;
    log_init(&log, NULL, 0);
    int32_t code = -1;
    if (weft_parallel_for(l->rt, l->begin, l->begin + 100000, 0, sum_range, &log, &code) != WEFT_OK) return 1;
    if (code != 0 || atomic_load(&log.sum) != triangle(l->begin, l->begin + 100000)) return 2;
  }
  return 0;
}

TEST_IMPL(parallel_for_from_several_tasks) {
  weft_runtime_t *rt = test_open_runtime();
  looper_t loopers[4];
  weft_task_t *tasks[4];
  for (int i = 0; i < 4; i++) {
    loopers[i] = (looper_t){.rt = rt, .begin = (size_t)i * 1000000};
    tasks[i] = test_spawn(rt, run_a_loop, &loopers[i]);
  }
  for (int i = 0; i < 4; i++) ASSERT_EQ(test_join(tasks[i]), 0);
  /* The pool's workers end with the runtime: a drain and a close succeed. */
  ASSERT_OK(weft_runtime_drain(rt, WEFT_FOREVER));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task that calls weft_parallel_for while a drain waits: the call completes, and so
 * does the drain (the pool's workers, started by the call after the drain had stopped
 * the pool, ran on and kept the drain waiting for ever). */
typedef struct {
  weft_runtime_t *rt;
  test_gate_t *gate;
  range_log_t log;
  int32_t code;
} drain_looper_t;

static int32_t loop_after_gate(void *arg, void **result) {
  (void)result;
  drain_looper_t *l = arg;
  if (test_gate_wait(l->gate) != WEFT_OK) return 1;
  if (weft_parallel_for(l->rt, 0, 100000, 1000, sum_range, &l->log, &l->code) != WEFT_OK) return 2;
  return 0;
}

static int32_t open_gate_later(void *arg, void **result) {
  (void)result;
  drain_looper_t *l = arg;
  test_sleep_ms(l->rt, 30); /* the drain is waiting by then */
  test_gate_open(l->gate);
  return 0;
}

TEST_IMPL(parallel_for_during_drain) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  static drain_looper_t l;
  l = (drain_looper_t){.rt = rt, .gate = &gate, .code = -1};
  log_init(&l.log, NULL, 0);
  weft_task_t *t = test_spawn(rt, loop_after_gate, &l);
  test_gate_await_waiters(rt, &gate, 1);
  weft_task_t *opener = test_spawn(rt, open_gate_later, &l);
  ASSERT_OK(weft_runtime_drain(rt, test_after_ms(rt, TEST_PATIENCE_MS)));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(test_join(opener), 0);
  ASSERT_EQ(l.code, 0);
  ASSERT_EQ(atomic_load(&l.log.sum), triangle(0, 100000));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A cancelled task's weft_parallel_for still runs every chunk and returns when they are
 * done (its waits for the other participants are no cancellation points: they returned
 * at once, and the caller spun on the pool's lock). */
static int32_t busy_range(size_t begin, size_t end, void *ud) {
  range_log_t *log = ud;
  volatile uint64_t x = 0;
  for (int k = 0; k < 20000; k++) x += (uint64_t)k;
  (void)x;
  return sum_range(begin, end, log);
}

static int32_t loop_when_cancelled(void *arg, void **result) {
  (void)result;
  drain_looper_t *l = arg;
  while (!weft_task_cancelled()) weft_yield(l->rt);
  if (weft_parallel_for(l->rt, 0, 256, 1, busy_range, &l->log, &l->code) != WEFT_OK) return 2;
  return 0;
}

TEST_IMPL(parallel_for_from_a_cancelled_task) {
  weft_runtime_t *rt = test_open_runtime();
  static drain_looper_t l;
  l = (drain_looper_t){.rt = rt, .code = -1};
  log_init(&l.log, NULL, 0);
  weft_task_t *t = test_spawn(rt, loop_when_cancelled, &l);
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(l.code, 0);
  ASSERT_EQ(atomic_load(&l.log.sum), triangle(0, 256));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task inside weft_parallel_for, its bodies waiting for main: the close is refused at
 * once, and a drain whose deadline has passed times out at once (both stopped the pool
 * first, which waited for the bodies: main's gate, opened after them, was never opened). */
typedef struct {
  weft_runtime_t *rt;
  test_gate_t *gate;
  range_log_t log;
  int32_t code;
} gated_loop_t;

static int32_t sum_after_gate(size_t begin, size_t end, void *ud) {
  gated_loop_t *l = ud;
  if (test_gate_wait(l->gate) != WEFT_OK) return 1;
  return sum_range(begin, end, &l->log);
}

static int32_t loop_behind_gate(void *arg, void **result) {
  (void)result;
  gated_loop_t *l = arg;
  if (weft_parallel_for(l->rt, 0, 4, 1, sum_after_gate, l, &l->code) != WEFT_OK) return 2;
  return 0;
}

TEST_IMPL(parallel_for_busy_at_close_and_drain) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  static gated_loop_t l;
  l = (gated_loop_t){.rt = rt, .gate = &gate, .code = -1};
  log_init(&l.log, NULL, 0);
  weft_task_t *t = test_spawn(rt, loop_behind_gate, &l);
  test_gate_await_waiters(rt, &gate, 1);
  ASSERT_STATUS(WEFT_EBUSY, weft_runtime_close(rt));
  ASSERT_ERROR_MENTIONS("still run");
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_runtime_drain(rt, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_runtime_drain(rt, test_after_ms(rt, 20)));
  test_gate_open(&gate);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(l.code, 0);
  ASSERT_EQ(atomic_load(&l.log.sum), triangle(0, 4));
  /* The pool works on after the refused close and the drains that timed out. */
  l.code = -1;
  log_init(&l.log, NULL, 0);
  ASSERT_OK(weft_parallel_for(rt, 0, 4, 1, sum_after_gate, &l, &l.code));
  ASSERT_EQ(l.code, 0);
  ASSERT_EQ(atomic_load(&l.log.sum), triangle(0, 4));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- groups ---- */

static atomic_int group_ran, group_cancelled;

static int32_t add_to_group_count(void *arg, void **result) {
  (void)result;
  atomic_fetch_add(&group_ran, (int)(intptr_t)arg);
  return 0;
}

/* Waits on the gate (cancellation point); counts a cancellation. */
static int32_t wait_gate_counting(void *arg, void **result) {
  (void)result;
  weft_status_t s = test_gate_wait(arg);
  if (s == WEFT_ECANCELED) atomic_fetch_add(&group_cancelled, 1);
  return 0;
}

static int32_t fail_with_5(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 5;
}

TEST_IMPL(group_success_and_failure) {
  weft_runtime_t *rt = test_open_runtime();
  weft_group_t *g = NULL;
  ASSERT_OK(weft_group_new(rt, &g));
  atomic_store(&group_ran, 0);
  for (int i = 1; i <= 100; i++) ASSERT_OK(weft_group_spawn(g, add_to_group_count, (void *)(intptr_t)i, NULL));
  int32_t code = -1;
  ASSERT_OK(weft_group_wait(g, WEFT_FOREVER, &code));
  ASSERT_EQ(code, 0);
  ASSERT_EQ(atomic_load(&group_ran), 5050);
  ASSERT_OK(weft_group_wait(g, 0, &code)); /* empty: at once */

  /* Siblings waiting at a gate are cancelled by the first failure. */
  test_gate_t gate;
  test_gate_init(rt, &gate);
  atomic_store(&group_cancelled, 0);
  for (int i = 0; i < 8; i++) ASSERT_OK(weft_group_spawn(g, wait_gate_counting, &gate, NULL));
  test_gate_await_waiters(rt, &gate, 8);
  ASSERT_OK(weft_group_spawn(g, fail_with_5, NULL, NULL));
  ASSERT_OK(weft_group_wait(g, WEFT_FOREVER, &code));
  ASSERT_EQ(code, 5);
  ASSERT_EQ(atomic_load(&group_cancelled), 8);
  ASSERT_STATUS(WEFT_ECANCELED, weft_group_spawn(g, add_to_group_count, NULL, NULL));
  ASSERT_ERROR_MENTIONS("code 5");
  ASSERT_OK(weft_group_free(g));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Several waits on one group at once (from tasks that are not its members): each
 * returns the group's code once every task is joined, and one whose deadline passes
 * first times out alone. Two waits once joined the same task, and the second failed
 * with WEFT_EINVAL ("being joined by another thread"). */
typedef struct {
  weft_group_t *g;
  int64_t deadline;
  weft_status_t status;
  int32_t code;
} group_waiter_t;

static int32_t wait_for_group(void *arg, void **result) {
  group_waiter_t *w = arg;
  (void)result;
  w->status = weft_group_wait(w->g, w->deadline, &w->code);
  return 0;
}

static int32_t nap_and_count(void *arg, void **result) {
  (void)result;
  weft_runtime_t *rt = arg;
  ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, 1 + atomic_fetch_add(&group_ran, 1) % 4)));
  return 0;
}

TEST_IMPL(group_concurrent_waits) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 20; round++) {
    weft_group_t *g = NULL;
    ASSERT_OK(weft_group_new(rt, &g));
    atomic_store(&group_ran, 0);
    for (int i = 0; i < 8; i++) ASSERT_OK(weft_group_spawn(g, nap_and_count, rt, NULL));
    group_waiter_t waiters[3];
    weft_task_t *tasks[3];
    for (int i = 0; i < 3; i++) {
      waiters[i] = (group_waiter_t){g, WEFT_FOREVER, -1, -1};
      tasks[i] = test_spawn(rt, wait_for_group, &waiters[i]);
    }
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ(test_join(tasks[i]), 0);
      ASSERT_OK(waiters[i].status);
      ASSERT_EQ(waiters[i].code, 0);
    }
    ASSERT_EQ(atomic_load(&group_ran), 8);
    ASSERT_OK(weft_group_free(g));
  }
  /* A wait whose deadline passes while the others wait on. */
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_group_t *g = NULL;
  ASSERT_OK(weft_group_new(rt, &g));
  for (int i = 0; i < 4; i++) ASSERT_OK(weft_group_spawn(g, wait_gate_counting, &gate, NULL));
  test_gate_await_waiters(rt, &gate, 4);
  group_waiter_t patient = {g, WEFT_FOREVER, -1, -1}, hasty = {g, test_after_ms(rt, 20), -1, -1};
  weft_task_t *p = test_spawn(rt, wait_for_group, &patient);
  weft_task_t *h = test_spawn(rt, wait_for_group, &hasty);
  ASSERT_EQ(test_join(h), 0);
  ASSERT_STATUS(WEFT_ETIMEDOUT, hasty.status);
  test_gate_open(&gate);
  ASSERT_EQ(test_join(p), 0);
  ASSERT_OK(patient.status);
  ASSERT_EQ(patient.code, 0);
  ASSERT_OK(weft_group_free(g));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(group_timeout_free_and_errors) {
  weft_runtime_t *rt = test_open_runtime();
  weft_group_t *g = NULL;
  ASSERT_OK(weft_group_new(rt, &g));
  test_gate_t gate;
  test_gate_init(rt, &gate);
  atomic_store(&group_cancelled, 0);
  for (int i = 0; i < 4; i++) ASSERT_OK(weft_group_spawn(g, wait_gate_counting, &gate, NULL));
  test_gate_await_waiters(rt, &gate, 4);
  int32_t code = -1;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_group_wait(g, test_after_ms(rt, 20), &code));
  ASSERT_EQ(code, -1);
  ASSERT_STATUS(WEFT_EBUSY, weft_runtime_close(rt)); /* the group's tasks run on */
  /* Freed while they run: cancelled, waited for, gone. */
  ASSERT_OK(weft_group_free(g));
  ASSERT_EQ(atomic_load(&group_cancelled), 4);
  ASSERT_STATUS(WEFT_EINVAL, weft_group_wait(g, 0, &code));
  ASSERT_ERROR_MENTIONS("was freed");

  ASSERT_STATUS(WEFT_EINVAL, weft_group_new(NULL, &g));
  ASSERT_STATUS(WEFT_EINVAL, weft_group_new(rt, NULL));
  ASSERT_OK(weft_group_new(rt, &g));
  ASSERT_STATUS(WEFT_EINVAL, weft_group_spawn(g, NULL, NULL, NULL));
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  ASSERT_STATUS(WEFT_EINVAL, weft_group_spawn(g, add_to_group_count, NULL, &opts));
  ASSERT_ERROR_MENTIONS("WEFT_SPAWN_DETACHED");
  weft_spawn_opts_init(&opts);
  opts.stack_size = SIZE_MAX; /* as weft_spawn: one answer on every platform */
  ASSERT_STATUS(WEFT_ENOMEM, weft_group_spawn(g, add_to_group_count, NULL, &opts));
  ASSERT_ERROR_MENTIONS("cannot be had");
  ASSERT_OK(weft_group_free(g));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task of a group being freed spawns into it after the free's cancel went by: the
 * spawn is refused (or its task cancelled), so the free never waits for a task nobody
 * cancelled. */
typedef struct {
  weft_runtime_t *rt;
  weft_group_t *g;
  test_gate_t *gate;
  atomic_int go;
  weft_status_t spawned;
} late_spawner_t;

static int32_t spawn_when_told(void *arg, void **result) {
  (void)result;
  late_spawner_t *l = arg;
  /* No cancellation point here: the free's cancel is noticed by nobody. */
  while (!atomic_load(&l->go)) weft_yield(l->rt);
  l->spawned = weft_group_spawn(l->g, wait_gate_counting, l->gate, NULL);
  return 0;
}

static int32_t free_group(void *arg, void **result) {
  (void)result;
  return weft_group_free(arg);
}

TEST_IMPL(group_free_cancels_late_spawns) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  atomic_store(&group_cancelled, 0);
  weft_group_t *g = NULL;
  ASSERT_OK(weft_group_new(rt, &g));
  late_spawner_t l = {.rt = rt, .g = g, .gate = &gate, .spawned = -1};
  ASSERT_OK(weft_group_spawn(g, spawn_when_told, &l, NULL));
  weft_task_t *freer = test_spawn(rt, free_group, g);
  test_sleep_ms(rt, 20); /* the free has cancelled the spawner and waits for it */
  atomic_store(&l.go, 1);
  int32_t code = -1;
  weft_status_t joined = weft_join(freer, test_after_ms(rt, 5000), &code, NULL);
  if (joined == WEFT_ETIMEDOUT) {
    test_gate_open(&gate); /* let the stray task end, then fail */
    ASSERT_EQ(test_join(freer), 0);
  }
  ASSERT_OK(joined);
  ASSERT_EQ(code, 0);
  /* Refused (the free had begun), or started and cancelled by its spawner. */
  if (l.spawned == WEFT_OK) ASSERT_EQ(atomic_load(&group_cancelled), 1);
  else ASSERT_STATUS(WEFT_ECANCELED, l.spawned);
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task of the group that waits for it or frees it would wait for itself:
 * WEFT_EDEADLK at once, before anything is joined or cancelled (its siblings ran on;
 * the free had cancelled them all first, the caller too). */
typedef struct {
  weft_group_t *g;
  weft_status_t waited, freed;
} member_t;

static int32_t wait_for_own_group(void *arg, void **result) {
  (void)result;
  member_t *m = arg;
  m->waited = weft_group_wait(m->g, WEFT_FOREVER, NULL);
  m->freed = weft_group_free(m->g);
  return weft_task_cancelled() ? 1 : 0;
}

TEST_IMPL(group_member_waits_refused) {
  weft_runtime_t *rt = test_open_runtime();
  test_gate_t gate;
  test_gate_init(rt, &gate);
  atomic_store(&group_cancelled, 0);
  weft_group_t *g = NULL;
  ASSERT_OK(weft_group_new(rt, &g));
  ASSERT_OK(weft_group_spawn(g, wait_gate_counting, &gate, NULL));
  test_gate_await_waiters(rt, &gate, 1);
  member_t m = {g, -1, -1};
  ASSERT_OK(weft_group_spawn(g, wait_for_own_group, &m, NULL));
  ASSERT_OK(weft_group_spawn(g, add_to_group_count, NULL, NULL)); /* newer than the member */
  test_sleep_ms(rt, 20);
  test_gate_open(&gate);
  int32_t code = -1;
  ASSERT_OK(weft_group_wait(g, test_after_ms(rt, TEST_PATIENCE_MS), &code));
  ASSERT_EQ(code, 0); /* the member was not cancelled: it returned 0 */
  ASSERT_STATUS(WEFT_EDEADLK, m.waited);
  ASSERT_STATUS(WEFT_EDEADLK, m.freed);
  ASSERT_EQ(atomic_load(&group_cancelled), 0);
  ASSERT_OK(weft_group_free(g));
  test_gate_destroy(&gate);
  test_close_runtime(rt);
  return TEST_OK;
}

/* A group's task reaches its own handle through weft_task_self, but the handle is the
 * group's: a detach of it is WEFT_EINVAL (a join too), and the group still waits for
 * the task and is freed (a detach that went through left the group a task whose state
 * was gone: the group's next wait crashed joining it). */
typedef struct {
  weft_status_t detached, joined;
  int says_group;
  uint64_t id;
  atomic_int done;
} self_handle_t;

static int32_t give_up_own_handle(void *arg, void **result) {
  (void)result;
  self_handle_t *s = arg;
  weft_task_t *me = weft_task_self();
  s->id = weft_task_id(me);
  s->detached = weft_detach(me);
  s->says_group = strstr(weft_last_error(), "group") != NULL;
  s->joined = weft_join(me, 0, NULL, NULL);
  atomic_store(&s->done, 1);
  return 7;
}

TEST_IMPL(group_task_handle_stays_the_groups) {
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 50; round++) {
    weft_group_t *g = NULL;
    ASSERT_OK(weft_group_new(rt, &g));
    self_handle_t s = {-1, -1, 0, 0, 0};
    ASSERT_OK(weft_group_spawn(g, give_up_own_handle, &s, NULL));
    /* Its calls before the group's wait begins (a wait already joining the task made
     * the handle busy: WEFT_EINVAL for that reason). */
    int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
    while (!atomic_load(&s.done)) {
      ASSERT(weft_now(rt) < give_up);
      test_sleep_ms(rt, 1);
    }
    int32_t code = -1;
    ASSERT_OK(weft_group_wait(g, test_after_ms(rt, TEST_PATIENCE_MS), &code));
    ASSERT_EQ(code, 7);
    ASSERT_STATUS(WEFT_EINVAL, s.detached);
    ASSERT_STATUS(WEFT_EINVAL, s.joined);
    ASSERT(s.says_group);
    ASSERT(s.id != 0);
    ASSERT_OK(weft_group_free(g));
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- a task's failure reaches its receivers ---- */

typedef struct {
  weft_chan_t *results;
  int fail;
} producer_t;

static int32_t produce_or_fail(void *arg, void **result) {
  (void)result;
  producer_t *p = arg;
  if (p->fail) return 42; /* never sends */
  int v = 7;
  return weft_chan_send(p->results, &v, WEFT_FOREVER) == WEFT_OK ? 0 : 1;
}

/* spawn, then recv on the channel the task would send its result on: a linked channel
 * is closed when the task ends, with its code, so the receiver never waits for ever. */
static int32_t wait_for_gate(void *arg, void **result) {
  (void)result;
  return test_gate_wait(arg) == WEFT_OK ? 0 : 1;
}

TEST_IMPL(task_failure_reaches_recv) {
  weft_runtime_t *rt = test_open_runtime();
  for (int fail = 0; fail < 2; fail++) {
    weft_chan_t *ch = NULL;
    ASSERT_OK(weft_chan_new(rt, sizeof(int), 1, NULL, &ch));
    producer_t p = {.results = ch, .fail = fail};
    weft_task_t *t = test_spawn(rt, produce_or_fail, &p);
    ASSERT_OK(weft_task_link_chan(t, ch));
    int v = 0;
    weft_status_t s = weft_chan_recv(ch, &v, WEFT_FOREVER);
    if (fail) {
      ASSERT_STATUS(WEFT_ECLOSED, s);
      ASSERT_EQ(weft_chan_close_code(ch), 42);
    } else {
      ASSERT_OK(s);
      ASSERT_EQ(v, 7);
      ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(ch, &v, WEFT_FOREVER)); /* then closed, code 0 */
      ASSERT_EQ(weft_chan_close_code(ch), 0);
    }
    ASSERT_EQ(test_join(t), fail ? 42 : 0);
    /* Linking to a task that has ended closes at once; a joined handle is refused. */
    ASSERT_STATUS(WEFT_EINVAL, weft_task_link_chan(t, ch));
    weft_chan_release(ch);
  }
  /* A channel of another runtime is refused: the task would close it at its end,
   * maybe once that runtime has closed. */
  weft_runtime_t *rt2 = test_open_runtime();
  weft_chan_t *foreign = NULL;
  ASSERT_OK(weft_chan_new(rt2, sizeof(int), 1, NULL, &foreign));
  test_gate_t gate;
  test_gate_init(rt, &gate);
  weft_task_t *waiting = test_spawn(rt, wait_for_gate, &gate);
  ASSERT_STATUS(WEFT_EINVAL, weft_task_link_chan(waiting, foreign));
  ASSERT_ERROR_MENTIONS("another runtime");
  test_gate_open(&gate);
  ASSERT_EQ(test_join(waiting), 0);
  test_gate_destroy(&gate);
  ASSERT_EQ(weft_chan_close_code(foreign), 0); /* not closed by the task's end */
  weft_chan_release(foreign);
  test_close_runtime(rt2);
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(int), 0, NULL, &ch));
  ASSERT_EQ(weft_chan_close_code(ch), 0);
  ASSERT_OK(weft_chan_close_with(ch, -3));
  ASSERT_OK(weft_chan_close_with(ch, 9)); /* the first close's code stays */
  ASSERT_EQ(weft_chan_close_code(ch), -3);
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}
