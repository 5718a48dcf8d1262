/* Lock-order and deadlock checks (WEFT_CHECK_LOCK_ORDER, WEFT_CHECK_DEADLOCK). */
#include <stdatomic.h>
#include <stdlib.h>

#include "test.h"

typedef struct {
  atomic_int reports;
  atomic_int deadlocks;
  char first[4096];
} report_log_t;

static void on_report(const char *report, void *ud) {
  report_log_t *log = ud;
  if (atomic_fetch_add(&log->reports, 1) == 0) snprintf(log->first, sizeof log->first, "%s", report);
}

static weft_runtime_t *open_checked(uint32_t flags, report_log_t *log) {
  memset(log, 0, sizeof *log);
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.flags = flags;
  cfg.on_check_report = on_report;
  cfg.hook_ud = log;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  return rt;
}

typedef struct {
  weft_mutex_t *first, *second;
} pair_t;

static int32_t lock_in_order(void *arg, void **result) {
  (void)result;
  pair_t *p = arg;
  if (weft_mutex_lock(p->first) != WEFT_OK) return 1;
  if (weft_mutex_lock(p->second) != WEFT_OK) return 2;
  weft_mutex_unlock(p->second);
  weft_mutex_unlock(p->first);
  return 0;
}

static void run_in_order(weft_runtime_t *rt, weft_mutex_t *first, weft_mutex_t *second) {
  pair_t p = {first, second};
  ASSERT_EQ(test_join(test_spawn(rt, lock_in_order, &p)), 0);
}

/* A then B in one task, later B then A in another, never at the same time: no
 * deadlock happens, and the inversion is reported exactly once, naming both locks. */
TEST_IMPL(checks_lock_order_inversion) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_LOCK_ORDER, &log);
  weft_mutex_t a, b;
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  ASSERT_OK(weft_mutex_set_name(&a, "accounts"));
  ASSERT_OK(weft_mutex_set_name(&b, "ledger"));
  run_in_order(rt, &a, &b);
  ASSERT_EQ(atomic_load(&log.reports), 0);
  run_in_order(rt, &b, &a);
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT(strncmp(log.first, "weft: lock-order inversion\n", 27) == 0);
  char addr[64];
  snprintf(addr, sizeof addr, "%p", (void *)&a);
  ASSERT(strstr(log.first, addr) != NULL);
  snprintf(addr, sizeof addr, "%p", (void *)&b);
  ASSERT(strstr(log.first, addr) != NULL);
  ASSERT(strstr(log.first, "\"accounts\"") != NULL && strstr(log.first, "\"ledger\"") != NULL);
  /* Each edge's backtrace shows the host's function that took the lock. */
  const char *first_edge = strstr(log.first, "(task");
  ASSERT(first_edge != NULL && strstr(first_edge, "lock_in_order") != NULL);
  const char *second_edge = strstr(first_edge + 1, "(task");
  ASSERT(second_edge != NULL && strstr(second_edge, "lock_in_order") != NULL);
  /* Once per pair: both orders again report nothing new. */
  run_in_order(rt, &a, &b);
  run_in_order(rt, &b, &a);
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&b));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A lock of another runtime held while taking one of this runtime adds nothing here;
 * when that memory is made a lock of this runtime, its orders count from then on. (The
 * pair was remembered, and hid the first order, so the inversion went unreported.) */
TEST_IMPL(checks_lock_memory_moved_between_runtimes) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_LOCK_ORDER, &log);
  weft_runtime_t *other = open_checked(WEFT_CHECK_LOCK_ORDER, &log);
  weft_mutex_t a, p;
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(other, &p, 0));
  ASSERT_OK(weft_mutex_lock(&p));
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_unlock(&a));
  ASSERT_OK(weft_mutex_unlock(&p));
  ASSERT_OK(weft_mutex_destroy(&p));
  ASSERT_OK(weft_mutex_init(rt, &p, 0)); /* the same memory, now this runtime's */
  ASSERT_OK(weft_mutex_lock(&p));
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_unlock(&a));
  ASSERT_OK(weft_mutex_unlock(&p));
  ASSERT_EQ(atomic_load(&log.reports), 0);
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_lock(&p));
  ASSERT_OK(weft_mutex_unlock(&p));
  ASSERT_OK(weft_mutex_unlock(&a));
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&p));
  test_close_runtime(other);
  test_close_runtime(rt);
  return TEST_OK;
}

/* One context taking the same locks in the same order again and again (each context
 * remembers the order edges it has put in the graph, to skip the graph next time):
 * still exactly one report when another task inverts the order, and a lock destroyed
 * and made again at the same address is a new lock whose edges count afresh. */
TEST_IMPL(checks_repeated_orders) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK, &log);
  weft_mutex_t a, b, c;
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  ASSERT_OK(weft_mutex_init(rt, &c, 0));
  for (int i = 0; i < 1000; i++) {
    ASSERT_OK(weft_mutex_lock(&a));
    ASSERT_OK(weft_mutex_lock(&b));
    ASSERT_OK(weft_mutex_lock(&c));
    ASSERT_OK(weft_mutex_unlock(&c));
    ASSERT_OK(weft_mutex_unlock(&b));
    ASSERT_OK(weft_mutex_unlock(&a));
  }
  ASSERT_EQ(atomic_load(&log.reports), 0);
  run_in_order(rt, &c, &a); /* against A -> C */
  ASSERT_EQ(atomic_load(&log.reports), 1);
  /* B made again: the caller's A -> B must reach the graph again, for B' -> A to be an
   * inversion. */
  ASSERT_OK(weft_mutex_destroy(&b));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  for (int i = 0; i < 10; i++) {
    ASSERT_OK(weft_mutex_lock(&a));
    ASSERT_OK(weft_mutex_lock(&b));
    ASSERT_OK(weft_mutex_unlock(&b));
    ASSERT_OK(weft_mutex_unlock(&a));
  }
  run_in_order(rt, &b, &a);
  ASSERT_EQ(atomic_load(&log.reports), 2);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&b));
  ASSERT_OK(weft_mutex_destroy(&c));
  test_close_runtime(rt);
  return TEST_OK;
}

/* What makes no edge or no cycle: a try-lock (it cannot wait), a recursive relock,
 * a lock destroyed and initialised again at the same address (a new lock); and with
 * checks off nothing is reported at all. */
TEST_IMPL(checks_what_is_not_an_inversion) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_LOCK_ORDER, &log);
  weft_mutex_t a, b, r;
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  ASSERT_OK(weft_mutex_init(rt, &r, WEFT_MUTEX_RECURSIVE));
  /* A, then try B: no edge A -> B; B then A later closes nothing. */
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_try_lock(&b));
  ASSERT_OK(weft_mutex_unlock(&b));
  ASSERT_OK(weft_mutex_unlock(&a));
  run_in_order(rt, &b, &a);
  /* R twice, then A: no edge R -> R. */
  ASSERT_OK(weft_mutex_lock(&r));
  ASSERT_OK(weft_mutex_lock(&r));
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_unlock(&a));
  ASSERT_OK(weft_mutex_unlock(&r));
  ASSERT_OK(weft_mutex_unlock(&r));
  /* A lock_until with a deadline still orders: A -> B here ... */
  ASSERT_OK(weft_mutex_lock(&a));
  ASSERT_OK(weft_mutex_lock_until(&b, test_after_ms(rt, 1000)));
  ASSERT_OK(weft_mutex_unlock(&b));
  ASSERT_OK(weft_mutex_unlock(&a));
  ASSERT_EQ(atomic_load(&log.reports), 1); /* ... against the earlier B -> A */
  /* B destroyed and made again at the same address is a new lock. */
  ASSERT_OK(weft_mutex_destroy(&b));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  run_in_order(rt, &b, &a);
  run_in_order(rt, &r, &b);
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&b));
  ASSERT_OK(weft_mutex_destroy(&r));
  test_close_runtime(rt);

  rt = open_checked(0, &log);
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  run_in_order(rt, &a, &b);
  run_in_order(rt, &b, &a);
  ASSERT_EQ(atomic_load(&log.reports), 0);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&b));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A condition wait that keeps another lock orders its mutex's relock after that lock:
 * M then N, then a wait on M while holding N, is an inversion (a task taking M then N
 * while the waiter wants M back deadlocks with it; it went unreported). A reader's
 * second read lock of an rwlock orders after nothing (it was reported as an inversion
 * with the lock taken in between). */
TEST_IMPL(checks_cond_relock_and_second_read) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_LOCK_ORDER, &log);
  weft_mutex_t m, n, b;
  weft_cond_t c;
  weft_rwlock_t l;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_OK(weft_mutex_init(rt, &n, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  ASSERT_OK(weft_cond_init(rt, &c));
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_OK(weft_mutex_lock(&b));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_mutex_unlock(&b));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_EQ(atomic_load(&log.reports), 0);
  ASSERT_OK(weft_mutex_lock(&m));
  ASSERT_OK(weft_mutex_lock(&n));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&c, &m, test_after_ms(rt, 2)));
  ASSERT_OK(weft_mutex_unlock(&n));
  ASSERT_OK(weft_mutex_unlock(&m));
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT(strncmp(log.first, "weft: lock-order inversion\n", 27) == 0);
  ASSERT_OK(weft_rwlock_destroy(&l));
  ASSERT_OK(weft_cond_destroy(&c));
  ASSERT_OK(weft_mutex_destroy(&b));
  ASSERT_OK(weft_mutex_destroy(&n));
  ASSERT_OK(weft_mutex_destroy(&m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* Tasks in a ring: task i takes lock i, waits until every task holds its lock, then
 * takes lock i+1. The wait that closes the ring gets WEFT_EDEADLK; its task backs off
 * (releases its lock) and everyone else finishes. */
#define RING_MAX 3
typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t locks[RING_MAX];
  int n;
  bool until_forever; /* member 0 waits with weft_mutex_lock_until(WEFT_FOREVER) */
  atomic_int holding;
  atomic_int deadlocks;
} ring_t;

typedef struct {
  ring_t *ring;
  int i;
} ring_member_t;

static int32_t ring_member(void *arg, void **result) {
  (void)result;
  ring_member_t *m = arg;
  ring_t *r = m->ring;
  weft_mutex_t *mine = &r->locks[m->i], *next = &r->locks[(m->i + 1) % r->n];
  if (weft_mutex_lock(mine) != WEFT_OK) return 1;
  atomic_fetch_add(&r->holding, 1);
  while (atomic_load(&r->holding) < r->n) weft_yield(r->rt);
  weft_status_t s = r->until_forever && m->i == 0 ? weft_mutex_lock_until(next, WEFT_FOREVER) : weft_mutex_lock(next);
  if (s == WEFT_EDEADLK) {
    if (strstr(weft_last_error(), "cycle") == NULL) return 3;
    atomic_fetch_add(&r->deadlocks, 1);
    weft_mutex_unlock(mine);
    return 0;
  }
  if (s != WEFT_OK) return 2;
  weft_mutex_unlock(next);
  weft_mutex_unlock(mine);
  return 0;
}

static void deadlock_ring(int n, bool until_forever) {
  report_log_t log;
  ring_t r;
  memset(&r, 0, sizeof r);
  r.rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  r.n = n;
  r.until_forever = until_forever;
  for (int i = 0; i < n; i++) ASSERT_OK(weft_mutex_init(r.rt, &r.locks[i], 0));
  ring_member_t members[RING_MAX];
  weft_task_t *tasks[RING_MAX];
  for (int i = 0; i < n; i++) {
    members[i] = (ring_member_t){&r, i};
    tasks[i] = test_spawn(r.rt, ring_member, &members[i]);
  }
  for (int i = 0; i < n; i++) ASSERT_EQ(test_join(tasks[i]), 0);
  ASSERT_EQ(atomic_load(&r.deadlocks), 1);
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT(strncmp(log.first, "weft: deadlock\n", 15) == 0);
  for (int i = 0; i < n; i++) ASSERT_OK(weft_mutex_destroy(&r.locks[i]));
  test_close_runtime(r.rt);
}

TEST_IMPL(checks_deadlock_two_tasks) {
  deadlock_ring(2, false);
  return TEST_OK;
}

TEST_IMPL(checks_deadlock_three_tasks) {
  deadlock_ring(3, false);
  return TEST_OK;
}

/* A timed lock whose deadline is WEFT_FOREVER waits for ever: checked as a plain lock
 * (it deadlocked silently). */
TEST_IMPL(checks_deadlock_lock_until_forever) {
  deadlock_ring(2, true);
  return TEST_OK;
}

/* A long chain of waits, none of them a cycle: task i holds lock i and waits for lock
 * i+1, the last one holds its lock and waits on a semaphore. Each wait walks the chain
 * behind it, on a task of the smallest stack; the walk was recursive, and the process
 * died of a stack overflow at some 135 tasks. */
#define CHAIN 200
typedef struct {
  weft_mutex_t locks[CHAIN];
  weft_sem_t go, holding;
} chain_t;

typedef struct {
  chain_t *chain;
  int i;
} chain_link_t;

static int32_t chain_link(void *arg, void **result) {
  (void)result;
  chain_link_t *l = arg;
  chain_t *c = l->chain;
  if (weft_mutex_lock(&c->locks[l->i]) != WEFT_OK) return 1;
  if (weft_sem_post(&c->holding) != WEFT_OK) return 3;
  weft_status_t s = l->i == CHAIN - 1 ? weft_sem_wait(&c->go) : weft_mutex_lock(&c->locks[l->i + 1]);
  if (s != WEFT_OK) {
    fprintf(stderr, "link %d: %s\n", l->i, weft_last_error());
    return 2;
  }
  if (l->i != CHAIN - 1) weft_mutex_unlock(&c->locks[l->i + 1]);
  weft_mutex_unlock(&c->locks[l->i]);
  return 0;
}

TEST_IMPL(checks_long_wait_chain) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  static chain_t c;
  static chain_link_t links[CHAIN];
  static weft_task_t *tasks[CHAIN];
  for (int i = 0; i < CHAIN; i++) ASSERT_OK(weft_mutex_init(rt, &c.locks[i], 0));
  ASSERT_OK(weft_sem_init(rt, &c.go, 0));
  ASSERT_OK(weft_sem_init(rt, &c.holding, 0));
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = WEFT_MIN_STACK_SIZE;
  for (int i = CHAIN - 1; i >= 0; i--) {
    links[i] = (chain_link_t){&c, i};
    ASSERT_OK(weft_spawn(rt, chain_link, &links[i], &opts, &tasks[i]));
    ASSERT_OK(weft_sem_wait(&c.holding));
    test_wait_blocked(rt, tasks[i]); /* in its wait before the next one walks it */
  }
  ASSERT_OK(weft_sem_post(&c.go));
  for (int i = 0; i < CHAIN; i++) ASSERT_EQ(test_join(tasks[i]), 0);
  ASSERT_EQ(atomic_load(&log.reports), 0);
  for (int i = 0; i < CHAIN; i++) ASSERT_OK(weft_mutex_destroy(&c.locks[i]));
  ASSERT_OK(weft_sem_destroy(&c.go));
  ASSERT_OK(weft_sem_destroy(&c.holding));
  test_close_runtime(rt);
  return TEST_OK;
}

static int32_t write_once(void *arg, void **result) {
  (void)result;
  if (weft_rwlock_write_lock(arg) != WEFT_OK) return 1;
  return weft_rwlock_unlock(arg) == WEFT_OK ? 0 : 2;
}

/* A second read lock by a reader waits only for writers: with no writer it is taken
 * and nothing is reported (on every platform: sim, which makes no try before a wait,
 * once refused it as a reader waiting for itself); with a writer waiting for the
 * reader, it would wait forever behind that writer: WEFT_EDEADLK, and the report names
 * the writer. */
TEST_IMPL(checks_deadlock_nested_read) {
  report_log_t log;
  weft_runtime_t *rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  weft_rwlock_t l;
  ASSERT_OK(weft_rwlock_init(rt, &l));
  ASSERT_OK(weft_rwlock_set_name(&l, "symbols"));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_OK(weft_rwlock_read_lock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_OK(weft_rwlock_unlock(&l));
  ASSERT_EQ(atomic_load(&log.reports), 0);
  ASSERT_OK(weft_rwlock_read_lock(&l));
  weft_task_t *writer = test_spawn(rt, write_once, &l);
  test_wait_blocked(rt, writer);
  ASSERT_STATUS(WEFT_EDEADLK, weft_rwlock_read_lock(&l));
  ASSERT_ERROR_MENTIONS("cycle");
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT(strncmp(log.first, "weft: deadlock\n", 15) == 0);
  ASSERT(strstr(log.first, "waits to read rwlock") != NULL);
  ASSERT(strstr(log.first, "symbols") != NULL);
  ASSERT(strstr(log.first, "queued behind the writer") != NULL);
  ASSERT_OK(weft_rwlock_unlock(&l)); /* the refused lock took nothing */
  ASSERT_EQ(test_join(writer), 0);
  ASSERT_OK(weft_rwlock_destroy(&l));
  test_close_runtime(rt);
  return TEST_OK;
}

/* A task holds N and waits on a condition with M; whatever ends its wait, it takes M
 * back first. Main takes M (free while the task waits), then asks for N: a cycle (the
 * task waits for M, held by main, which waits for N, held by the task). It is refused
 * with WEFT_EDEADLK and reported; it hung, the condition wait not being counted as a
 * wait for its mutex (found by review). Then main lets M go, and the task's wait ends
 * at its deadline. */
typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m, n;
  weft_cond_t c;
} cond_cycle_t;

static int32_t hold_n_and_wait_with_m(void *arg, void **result) {
  (void)result;
  cond_cycle_t *k = arg;
  ASSERT_OK(weft_mutex_lock(&k->n));
  ASSERT_OK(weft_mutex_lock(&k->m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&k->c, &k->m, test_after_ms(k->rt, 200)));
  ASSERT_OK(weft_mutex_unlock(&k->m));
  ASSERT_OK(weft_mutex_unlock(&k->n));
  return 0;
}

TEST_IMPL(checks_deadlock_through_cond_wait) {
  report_log_t log;
  static cond_cycle_t k;
  k.rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  ASSERT_OK(weft_mutex_init(k.rt, &k.m, 0));
  ASSERT_OK(weft_mutex_init(k.rt, &k.n, 0));
  ASSERT_OK(weft_cond_init(k.rt, &k.c));
  weft_task_t *t = test_spawn(k.rt, hold_n_and_wait_with_m, &k);
  test_wait_blocked(k.rt, t);
  ASSERT_OK(weft_mutex_lock(&k.m));
  ASSERT_STATUS(WEFT_EDEADLK, weft_mutex_lock(&k.n));
  ASSERT_ERROR_MENTIONS("cycle");
  ASSERT_EQ(atomic_load(&log.reports), 1);
  ASSERT(strncmp(log.first, "weft: deadlock\n", 15) == 0);
  ASSERT_OK(weft_mutex_unlock(&k.m));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(weft_cond_destroy(&k.c));
  ASSERT_OK(weft_mutex_destroy(&k.n));
  ASSERT_OK(weft_mutex_destroy(&k.m));
  test_close_runtime(k.rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t m;
  weft_task_t *child;
  atomic_int go;
} cancel_join_t;

static int32_t lock_and_leave(void *arg, void **result) {
  (void)result;
  cancel_join_t *c = arg;
  if (weft_mutex_lock(&c->m) != WEFT_OK) return 1;
  return weft_mutex_unlock(&c->m) == WEFT_OK ? 0 : 2;
}

static int32_t join_the_child(void *arg, void **result) {
  (void)result;
  cancel_join_t *c = arg;
  while (!atomic_load(&c->go))
    if (weft_yield(c->rt) != WEFT_OK) return 99;
  return weft_join(c->child, WEFT_FOREVER, NULL, NULL);
}

/* A join is a cancellation point: a cancelled task's join does not wait, so it closes
 * no cycle. Main holds a mutex a child waits for; a joiner joins the child; main joins
 * the joiner. Cancelled before its join (then main's join, waiting first, would have
 * made the joiner's a cycle) or while it waits in it (its wait was an edge of the
 * cycle main's join would close), the joiner's join is WEFT_ECANCELED, main's join
 * succeeds, and nothing is reported. */
TEST_IMPL(checks_cancelled_joiner) {
  report_log_t log;
  static cancel_join_t c;
  c.rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  ASSERT_OK(weft_mutex_init(c.rt, &c.m, 0));
  for (int already_waiting = 0; already_waiting < 2; already_waiting++) {
    ASSERT_OK(weft_mutex_lock(&c.m));
    c.child = test_spawn(c.rt, lock_and_leave, &c);
    test_wait_blocked(c.rt, c.child);
    atomic_store(&c.go, already_waiting);
    weft_task_t *joiner = test_spawn(c.rt, join_the_child, &c);
    if (already_waiting) test_wait_blocked(c.rt, joiner);
    ASSERT_OK(weft_cancel(joiner));
    atomic_store(&c.go, 1);
    int32_t code = -1;
    ASSERT_OK(weft_join(joiner, WEFT_FOREVER, &code, NULL));
    ASSERT_EQ(code, WEFT_ECANCELED);
    ASSERT_OK(weft_mutex_unlock(&c.m));
    ASSERT_EQ(test_join(c.child), 0);
  }
  ASSERT_EQ(atomic_load(&log.reports), 0);
  ASSERT_OK(weft_mutex_destroy(&c.m));
  test_close_runtime(c.rt);
  return TEST_OK;
}

/* Two tasks joining each other: exactly one join is WEFT_EDEADLK (its handle stays
 * valid); the other join completes once the refused task returns. */
typedef struct {
  weft_runtime_t *rt;
  weft_task_t *tasks[2];
  test_gate_t gate;
  atomic_int deadlocks;
  atomic_int joined[2]; /* joined[i]: task i joined the other */
} join_pair_t;

typedef struct {
  join_pair_t *pair;
  int i;
} join_member_t;

static int32_t join_the_other(void *arg, void **result) {
  (void)result;
  join_member_t *m = arg;
  if (test_gate_wait(&m->pair->gate) != WEFT_OK) return 1;
  weft_status_t s = weft_join(m->pair->tasks[1 - m->i], WEFT_FOREVER, NULL, NULL);
  if (s == WEFT_EDEADLK) {
    atomic_fetch_add(&m->pair->deadlocks, 1);
    return 0;
  }
  if (s != WEFT_OK) return 2;
  atomic_store(&m->pair->joined[m->i], 1);
  return 0;
}

TEST_IMPL(checks_join_cycle) {
  report_log_t log;
  join_pair_t p;
  memset(&p, 0, sizeof p);
  p.rt = open_checked(WEFT_CHECK_DEADLOCK, &log);
  test_gate_init(p.rt, &p.gate);
  join_member_t members[2] = {{&p, 0}, {&p, 1}};
  for (int i = 0; i < 2; i++) p.tasks[i] = test_spawn(p.rt, join_the_other, &members[i]);
  test_gate_await_waiters(p.rt, &p.gate, 2);
  test_gate_open(&p.gate);
  /* Whoever did not join the other is still ours to join. */
  int joined = -1;
  int64_t give_up = test_after_ms(p.rt, TEST_PATIENCE_MS);
  while (joined < 0) {
    if (atomic_load(&p.joined[0])) joined = 0;
    else if (atomic_load(&p.joined[1])) joined = 1;
    else {
      ASSERT(weft_now(p.rt) < give_up);
      test_sleep_ms(p.rt, 1);
    }
  }
  ASSERT_EQ(test_join(p.tasks[joined]), 0);
  ASSERT_EQ(atomic_load(&p.deadlocks), 1);
  ASSERT_EQ(atomic_load(&log.reports), 1);
  test_gate_destroy(&p.gate);
  test_close_runtime(p.rt);
  return TEST_OK;
}

/* $WEFT_CHECKS turns the checks on without the host's code; an unknown name is refused. */
TEST_IMPL(checks_from_the_environment) {
  setenv("WEFT_CHECKS", "lock-order", 1);
  weft_runtime_t *rt = test_open_runtime();
  unsetenv("WEFT_CHECKS");
  weft_mutex_t a, b;
  ASSERT_OK(weft_mutex_init(rt, &a, 0));
  ASSERT_OK(weft_mutex_init(rt, &b, 0));
  /* The report goes to stderr (no callback); the runs still complete. */
  run_in_order(rt, &a, &b);
  run_in_order(rt, &b, &a);
  ASSERT_OK(weft_mutex_destroy(&a));
  ASSERT_OK(weft_mutex_destroy(&b));
  test_close_runtime(rt);
  setenv("WEFT_CHECKS", "races", 1);
  weft_runtime_t *refused = NULL;
  ASSERT_STATUS(WEFT_EINVAL, weft_runtime_open(NULL, &refused));
  ASSERT_ERROR_MENTIONS("unknown check \"races\"");
  unsetenv("WEFT_CHECKS");
  ASSERT_STATUS(WEFT_EINVAL, weft_mutex_set_name(NULL, "x"));
  return TEST_OK;
}
