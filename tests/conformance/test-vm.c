/*
 * VM integration: mutators, safepoints, stop-the-world, blocking regions, the task
 * registry, lifecycle hooks and foreign threads.
 *
 * The stop-the-world tests share one harness: mutator tasks do "managed work" (bump
 * the shared `epoch`) only while they run managed code, and a collector checks that
 * the epoch does not move between weft_stw_begin and weft_stw_end, and that a mutator
 * never finds `in_stop` set. Each test puts the mutators in one state (polling,
 * blocked in a weft call, in a host-made blocking region) before stopping the world,
 * and most also release what they wait for *during* the stop, so that they wake inside
 * their blocking region and must wait there. Waits for a condition are bounded
 * (VM_BOUND_MS) and only fail the test when the condition never comes; no result
 * depends on how fast anything runs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "test.h"

#define VM_MAX 8
#define VM_BOUND_MS 20000 /* a bound for what must happen; never reached when correct */

typedef struct vm vm_t;
typedef struct {
  vm_t *vm;
  int index;
} vm_arg_t;

struct vm {
  weft_runtime_t *rt;
  const void *flag;
  int n;
  atomic_long epoch;      /* bumped by mutators only while they run managed code */
  atomic_int in_stop;     /* set by the collector while it holds the stopped world */
  atomic_int violations;  /* managed work seen while in_stop was set */
  atomic_int quit;
  atomic_long counts[VM_MAX];
  vm_arg_t args[VM_MAX];
  weft_task_t *tasks[VM_MAX];
  /* What the mutators block on. */
  weft_mutex_t m;
  weft_cond_t c;
  weft_rwlock_t l;
  long gen; /* protected by m */
  int fds[2];
  /* Two-requesters test. */
  atomic_int holder;
  atomic_int stops;
};

/* Fresh for every test: each test runs in its own process. */
static vm_t vm_state;

static vm_t *vm_setup(int n) {
  vm_t *vm = &vm_state;
  ASSERT(n <= VM_MAX);
  vm->rt = test_open_runtime();
  vm->flag = weft_safepoint_flag(vm->rt);
  ASSERT(vm->flag != NULL);
  vm->n = n;
  ASSERT_OK(weft_mutex_init(vm->rt, &vm->m, 0));
  ASSERT_OK(weft_cond_init(vm->rt, &vm->c));
  ASSERT_OK(weft_rwlock_init(vm->rt, &vm->l));
  for (int i = 0; i < n; i++) {
    vm->args[i].vm = vm;
    vm->args[i].index = i;
  }
  return vm;
}

static void managed_work(vm_t *vm, int index) {
  if (atomic_load(&vm->in_stop)) atomic_fetch_add(&vm->violations, 1);
  atomic_fetch_add(&vm->epoch, 1);
  atomic_fetch_add(&vm->counts[index], 1);
}

static void nap_ms(weft_runtime_t *rt, int ms) { ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, ms))); }

static void spawn_mutators(vm_t *vm, weft_task_fn fn) {
  for (int i = 0; i < vm->n; i++) {
    char name[32];
    snprintf(name, sizeof name, "mutator-%d", i);
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = name;
    ASSERT_OK(weft_spawn(vm->rt, fn, &vm->args[i], &opts, &vm->tasks[i]));
  }
}

/* Waits until every mutator has done managed work at least `above` times. */
static void wait_counts_above(vm_t *vm, const long *above) {
  for (int waited = 0;; waited++) {
    int all = 1;
    for (int i = 0; i < vm->n; i++)
      if (atomic_load(&vm->counts[i]) <= (above ? above[i] : 0)) all = 0;
    if (all) return;
    ASSERT(waited < VM_BOUND_MS);
    nap_ms(vm->rt, 1);
  }
}

typedef struct {
  uint32_t state;
  int matching;        /* tasks in `state` */
  int running_tasks;   /* tasks RUNNING */
  int running_foreign; /* attached threads RUNNING */
  int entries;
} census_t;

static bool census_visit(const weft_task_info_t *info, void *ud) {
  census_t *c = ud;
  if (info->state == WEFT_TASK_STARTING) return 0; /* not a mutator yet */
  c->entries++;
  if (info->task != NULL && info->state == c->state) c->matching++;
  if (info->state == WEFT_TASK_RUNNING) {
    if (info->task != NULL)
      c->running_tasks++;
    else
      c->running_foreign++;
  }
  return 0;
}

static census_t census(weft_runtime_t *rt, uint32_t state) {
  census_t c = {state, 0, 0, 0, 0};
  ASSERT_OK(weft_tasks_foreach(rt, census_visit, &c));
  return c;
}

/* Waits until the runtime has `n` mutators. */
static void wait_entries(weft_runtime_t *rt, int n) {
  for (int waited = 0; census(rt, 0).entries != n; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    nap_ms(rt, 1);
  }
}

/* Waits until at least `n` tasks are in `state` at the same time. */
static void wait_tasks_in_state(weft_runtime_t *rt, int n, uint32_t state) {
  for (int waited = 0; census(rt, state).matching < n; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    nap_ms(rt, 1);
  }
}

/*
 * One stop-the-world by the calling collector: while stopped, no other mutator is
 * RUNNING (only the collector itself, if it is attached) and the epoch does not move,
 * through `during(vm)` (which may release what the mutators wait for) and a hold of
 * `hold_ms`.
 */
static void stop_and_check(vm_t *vm, int collector_attached, void (*during)(vm_t *), int hold_ms) {
  ASSERT_OK(weft_stw_begin(vm->rt, test_after_ms(vm->rt, VM_BOUND_MS)));
  atomic_store(&vm->in_stop, 1);
  long before = atomic_load(&vm->epoch);
  census_t c = census(vm->rt, 0);
  ASSERT_EQ(c.running_tasks, 0);
  ASSERT_EQ(c.running_foreign, collector_attached);
  if (during) during(vm);
  if (hold_ms > 0) nap_ms(vm->rt, hold_ms);
  c = census(vm->rt, 0);
  ASSERT_EQ(c.running_tasks, 0);
  ASSERT_EQ(c.running_foreign, collector_attached);
  long after = atomic_load(&vm->epoch);
  atomic_store(&vm->in_stop, 0);
  ASSERT_OK(weft_stw_end(vm->rt));
  ASSERT_EQ(after, before);
}

static void join_all(vm_t *vm) {
  for (int i = 0; i < vm->n; i++) ASSERT_EQ(test_join(vm->tasks[i]), 0);
}

static void vm_teardown(vm_t *vm) {
  ASSERT_EQ(atomic_load(&vm->violations), 0);
  ASSERT_OK(weft_rwlock_destroy(&vm->l));
  ASSERT_OK(weft_cond_destroy(&vm->c));
  ASSERT_OK(weft_mutex_destroy(&vm->m));
  test_close_runtime(vm->rt);
}

/* Takes `m` again during a stop: mutators that were handed it must have given it back. */
static void relock_m(vm_t *vm) { ASSERT_OK(weft_mutex_lock_until(&vm->m, test_after_ms(vm->rt, VM_BOUND_MS))); }

/* --- running mutators that poll ------------------------------------------------- */

static int32_t poller(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  return 0;
}

TEST_IMPL(vm_stw_running_pollers) {
  vm_t *vm = vm_setup(4);
  spawn_mutators(vm, poller);
  wait_counts_above(vm, NULL);
  for (int k = 0; k < 100; k++) stop_and_check(vm, 0, NULL, k % 20 == 0 ? 20 : 0);
  long seen[VM_MAX];
  for (int i = 0; i < vm->n; i++) seen[i] = atomic_load(&vm->counts[i]);
  wait_counts_above(vm, seen); /* they run again after the stops */
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_mutex_lock on a mutex the collector holds -------------------- */

static int32_t locker(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    ASSERT_OK(weft_mutex_lock(&vm->m));
    managed_work(vm, a->index);
    ASSERT_OK(weft_mutex_unlock(&vm->m));
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  return 0;
}

/* Unlocks m inside the stop (a waiter is handed it but may not run), then takes it back. */
static void unlock_then_relock_m(vm_t *vm) {
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  nap_ms(vm->rt, 30);
  relock_m(vm);
}

TEST_IMPL(vm_stw_mutex_lock_blocked) {
  vm_t *vm = vm_setup(4);
  ASSERT_OK(weft_mutex_lock(&vm->m));
  spawn_mutators(vm, locker);
  wait_tasks_in_state(vm->rt, vm->n, WEFT_TASK_BLOCKING);
  stop_and_check(vm, 0, NULL, 20);
  stop_and_check(vm, 0, unlock_then_relock_m, 20);
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  wait_counts_above(vm, NULL);
  for (int k = 0; k < 30; k++) stop_and_check(vm, 0, NULL, 0); /* under contention */
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_cond_wait -------------------------------------------------- */

static int32_t cond_waiter(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  long seen = 0;
  ASSERT_OK(weft_mutex_lock(&vm->m));
  while (!atomic_load(&vm->quit)) {
    while (vm->gen == seen && !atomic_load(&vm->quit)) ASSERT_OK(weft_cond_wait(&vm->c, &vm->m));
    seen = vm->gen;
    managed_work(vm, a->index);
  }
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  return 0;
}

static void wake_waiters(vm_t *vm) {
  ASSERT_OK(weft_mutex_lock(&vm->m));
  vm->gen++;
  ASSERT_OK(weft_cond_broadcast(&vm->c));
  ASSERT_OK(weft_mutex_unlock(&vm->m));
}

/* Wakes the waiters inside the stop (they re-take m but may not run), then takes m. */
static void wake_then_relock_m(vm_t *vm) {
  wake_waiters(vm);
  nap_ms(vm->rt, 30);
  relock_m(vm);
  ASSERT_OK(weft_mutex_unlock(&vm->m));
}

TEST_IMPL(vm_stw_cond_wait_blocked) {
  vm_t *vm = vm_setup(4);
  spawn_mutators(vm, cond_waiter);
  wait_tasks_in_state(vm->rt, vm->n, WEFT_TASK_BLOCKING);
  stop_and_check(vm, 0, NULL, 20);
  stop_and_check(vm, 0, wake_then_relock_m, 20);
  wait_counts_above(vm, NULL); /* each ran once for that wake-up, after the stop */
  for (int k = 0; k < 30; k++) {
    wake_waiters(vm);
    stop_and_check(vm, 0, NULL, 0);
  }
  atomic_store(&vm->quit, 1);
  wake_waiters(vm);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_rwlock_read_lock behind the collector's write lock ----------- */

static int32_t reader(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    ASSERT_OK(weft_rwlock_read_lock(&vm->l));
    managed_work(vm, a->index);
    ASSERT_OK(weft_rwlock_unlock(&vm->l));
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  return 0;
}

static void unlock_then_relock_l(vm_t *vm) {
  ASSERT_OK(weft_rwlock_unlock(&vm->l));
  nap_ms(vm->rt, 30);
  for (int waited = 0; weft_rwlock_try_write_lock(&vm->l) != WEFT_OK; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    nap_ms(vm->rt, 1);
  }
}

TEST_IMPL(vm_stw_rwlock_blocked) {
  vm_t *vm = vm_setup(4);
  ASSERT_OK(weft_rwlock_write_lock(&vm->l));
  spawn_mutators(vm, reader);
  wait_tasks_in_state(vm->rt, vm->n, WEFT_TASK_BLOCKING);
  stop_and_check(vm, 0, unlock_then_relock_l, 20);
  ASSERT_OK(weft_rwlock_unlock(&vm->l));
  wait_counts_above(vm, NULL);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_join (the child blocked on a mutex the collector holds) ------- */

static int32_t child_locks_m(void *arg, void **result) {
  vm_t *vm = arg;
  (void)result;
  ASSERT_OK(weft_mutex_lock(&vm->m));
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  return 5;
}

static int32_t joiner(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    weft_task_t *child = test_spawn(vm->rt, child_locks_m, vm);
    ASSERT_EQ(test_join(child), 5);
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  return 0;
}

TEST_IMPL(vm_stw_join_blocked) {
  vm_t *vm = vm_setup(3);
  ASSERT_OK(weft_mutex_lock(&vm->m));
  spawn_mutators(vm, joiner);
  wait_tasks_in_state(vm->rt, 2 * vm->n, WEFT_TASK_BLOCKING); /* joiners and children */
  stop_and_check(vm, 0, NULL, 20);
  stop_and_check(vm, 0, unlock_then_relock_m, 20);
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  wait_counts_above(vm, NULL);
  for (int k = 0; k < 30; k++) stop_and_check(vm, 0, NULL, 0); /* tasks start and exit */
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_sleep_until (deadlines pass during the stop) ------------------ */

static int32_t sleeper(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    ASSERT_OK(weft_sleep_until(vm->rt, test_after_ms(vm->rt, 10)));
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  return 0;
}

TEST_IMPL(vm_stw_sleep_blocked) {
  vm_t *vm = vm_setup(4);
  spawn_mutators(vm, sleeper);
  wait_tasks_in_state(vm->rt, vm->n, WEFT_TASK_BLOCKING);
  for (int k = 0; k < 5; k++) stop_and_check(vm, 0, NULL, 40);
  for (int k = 0; k < 30; k++) stop_and_check(vm, 0, NULL, 0);
  wait_counts_above(vm, NULL);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- blocked in weft_chan_recv (a rendezvous hand-off completes during the stop) ---- */

static weft_chan_t *vm_chan;

static int32_t receiver(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  for (;;) {
    int value = 0;
    weft_status_t st = weft_chan_recv(vm_chan, &value, WEFT_FOREVER);
    if (st == WEFT_ECLOSED) return 0;
    ASSERT_OK(st);
    ASSERT_EQ(value, 7);
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
}

/* Hands one element to every blocked receiver: each send completes only when a receiver
 * takes it, so the receivers are woken during the stop and must stay parked. */
static void send_during_stop(vm_t *vm) {
  int value = 7;
  for (int i = 0; i < vm->n; i++) ASSERT_OK(weft_chan_send(vm_chan, &value, test_after_ms(vm->rt, VM_BOUND_MS)));
  nap_ms(vm->rt, 20);
}

/* Every receiver has handled `rounds` elements and waits in weft_chan_recv again (a
 * receiver still leaving its last receive also shows BLOCKING, hence the counts). */
static void wait_receivers(vm_t *vm, long rounds) {
  for (int waited = 0;; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    int all = 1;
    for (int i = 0; i < vm->n; i++)
      if (atomic_load(&vm->counts[i]) != rounds) all = 0;
    if (all && census(vm->rt, WEFT_TASK_BLOCKING).matching == vm->n) return;
    nap_ms(vm->rt, 1);
  }
}

TEST_IMPL(vm_stw_chan_recv_blocked) {
  vm_t *vm = vm_setup(4);
  ASSERT_OK(weft_chan_new(vm->rt, sizeof(int), 0, NULL, &vm_chan));
  spawn_mutators(vm, receiver);
  wait_receivers(vm, 0);
  stop_and_check(vm, 0, NULL, 20);
  for (long k = 1; k <= 5; k++) {
    stop_and_check(vm, 0, send_during_stop, 0);
    wait_receivers(vm, k);
  }
  ASSERT_OK(weft_chan_close(vm_chan));
  join_all(vm);
  weft_chan_release(vm_chan);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- in a host-made blocking region around a blocking read() ----------------------- */

static int32_t host_reader(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  for (;;) {
    char byte = 0;
    ASSERT_OK(weft_blocking_begin(vm->rt));
    ASSERT_OK(weft_blocking_begin(vm->rt)); /* nested: only the outermost end may wait */
    ssize_t got = read(vm->fds[0], &byte, 1);
    ASSERT_OK(weft_blocking_end(vm->rt));
    ASSERT_OK(weft_blocking_end(vm->rt));
    ASSERT_EQ(got, 1);
    if (byte == 'q') return 0;
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
}

static void feed_readers(vm_t *vm, char byte) {
  for (int i = 0; i < vm->n; i++) ASSERT_EQ(write(vm->fds[1], &byte, 1), 1);
}

static void feed_during_stop(vm_t *vm) {
  feed_readers(vm, 'x');
  nap_ms(vm->rt, 30);
}

TEST_IMPL(vm_stw_host_blocking_region) {
  test_skip_if_one_thread("a task blocks the one thread in read() until another writes the pipe");
  vm_t *vm = vm_setup(4);
  ASSERT_EQ(pipe(vm->fds), 0);
  spawn_mutators(vm, host_reader);
  wait_tasks_in_state(vm->rt, vm->n, WEFT_TASK_BLOCKING);
  stop_and_check(vm, 0, NULL, 20);
  stop_and_check(vm, 0, feed_during_stop, 20);
  for (int k = 0; k < 30; k++) {
    feed_readers(vm, 'x');
    stop_and_check(vm, 0, NULL, 0);
  }
  feed_readers(vm, 'q');
  join_all(vm);
  ASSERT_EQ(atomic_load(&vm->epoch), 31 * vm->n);
  close(vm->fds[0]);
  close(vm->fds[1]);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- a task that ends inside its region, during a stop -------------------------------- */

/* A task function that returns with a blocking region still open ends it when it
 * returns, and waits there for a stop in force to end: what follows is host code (the
 * elem_drop of a linked channel whose last reference the task held). That ran during
 * the stop before. */
typedef struct {
  weft_runtime_t *rt;
  atomic_int in_region;
  atomic_int go;
} region_leaver_t;

static atomic_int world_stopped_now, drops_seen, drops_in_stop;

static void note_drop(void *elem, void *ud) {
  (void)elem;
  (void)ud;
  atomic_fetch_add(&drops_seen, 1);
  if (atomic_load(&world_stopped_now)) atomic_fetch_add(&drops_in_stop, 1);
}

static int32_t return_inside_region(void *arg, void **result) {
  (void)result;
  region_leaver_t *l = arg;
  if (weft_blocking_begin(l->rt) != WEFT_OK) return 1;
  atomic_store(&l->in_region, 1);
  while (!atomic_load(&l->go)) test_sleep_ms(l->rt, 1);
  return 0; /* the region is still open */
}

TEST_IMPL(vm_task_end_runs_host_code_after_the_stop) {
  weft_runtime_t *rt = test_open_runtime();
  atomic_store(&drops_seen, 0);
  atomic_store(&drops_in_stop, 0);
  weft_chan_opts_t opts;
  weft_chan_opts_init(&opts);
  opts.elem_drop = note_drop;
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(int), 4, &opts, &ch));
  int v = 1;
  ASSERT_OK(weft_chan_send(ch, &v, 0));
  static region_leaver_t l;
  l = (region_leaver_t){.rt = rt};
  weft_task_t *t = test_spawn(rt, return_inside_region, &l);
  ASSERT_OK(weft_task_link_chan(t, ch));
  weft_chan_release(ch); /* the task's reference is the last */
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  while (!atomic_load(&l.in_region)) {
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
  ASSERT_OK(weft_stw_begin(rt, WEFT_FOREVER));
  atomic_store(&world_stopped_now, 1);
  atomic_store(&l.go, 1);
  test_sleep_ms(rt, 50); /* the task returns meanwhile */
  atomic_store(&world_stopped_now, 0);
  ASSERT_OK(weft_stw_end(rt));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_EQ(atomic_load(&drops_seen), 1);
  ASSERT_EQ(atomic_load(&drops_in_stop), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- spinning on weft_yield, never polling ---------------------------------------- */

static atomic_int spin_go;

static int32_t yield_spinner(void *arg, void **result) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  (void)result;
  while (!atomic_load(&vm->quit)) {
    while (!atomic_load(&spin_go) && !atomic_load(&vm->quit)) ASSERT_OK(weft_yield(vm->rt));
    managed_work(vm, a->index);
  }
  return 0;
}

static void release_spinners(vm_t *vm) {
  atomic_store(&spin_go, 1);
  nap_ms(vm->rt, 20);
}

TEST_IMPL(vm_stw_yield_spinners) {
  test_skip_if_one_thread("a task computes without weft calls while another one runs");
  vm_t *vm = vm_setup(3);
  spawn_mutators(vm, yield_spinner);
  wait_entries(vm->rt, vm->n);
  stop_and_check(vm, 0, NULL, 10);
  stop_and_check(vm, 0, release_spinners, 10); /* they leave weft_yield only after the stop */
  wait_counts_above(vm, NULL);
  atomic_store(&spin_go, 0);
  for (int k = 0; k < 30; k++) stop_and_check(vm, 0, NULL, 0);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- a timeout while one mutator never polls -------------------------------------- */

static atomic_int rogue_quit;

static int32_t rogue(void *arg, void **result) {
  (void)arg;
  (void)result;
  while (!atomic_load(&rogue_quit)) {
    /* Computes without a safepoint poll and without calling weft. */
  }
  return 0;
}

TEST_IMPL(vm_stw_timeout_names_mutator) {
  test_skip_if_one_thread("a task computes without weft calls while another one runs");
  vm_t *vm = vm_setup(3);
  spawn_mutators(vm, poller);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = "rogue-spinner";
  weft_task_t *spinner = NULL;
  ASSERT_OK(weft_spawn(vm->rt, rogue, NULL, &opts, &spinner));
  wait_counts_above(vm, NULL);
  wait_entries(vm->rt, vm->n + 1); /* the spinner is a mutator */
  /* The pollers stop at their next poll, if the deadline gives them time to get there.
   * 100 ms is plenty, except on a machine slow enough (valgrind runs one thread at a
   * time, and the spinner takes its turns): there, twice the time while a poller is
   * named, up to the patience. */
  for (int64_t ms = 100;; ms *= 2) {
    ASSERT_STATUS(WEFT_ETIMEDOUT, weft_stw_begin(vm->rt, test_after_ms(vm->rt, ms)));
    ASSERT_ERROR_MENTIONS("rogue-spinner");
    if (strstr(weft_last_error(), "mutator-") == NULL) break; /* the pollers did stop */
    ASSERT(ms < TEST_PATIENCE_MS);
  }
  ASSERT_STATUS(WEFT_EPERM, weft_stw_end(vm->rt));       /* nothing is held */
  /* The world resumed: the pollers run again. */
  long seen[VM_MAX];
  for (int i = 0; i < vm->n; i++) seen[i] = atomic_load(&vm->counts[i]);
  wait_counts_above(vm, seen);
  /* A deadline already past: one look, then ETIMEDOUT again. */
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_stw_begin(vm->rt, 0));
  ASSERT_ERROR_MENTIONS("rogue-spinner");
  atomic_store(&rogue_quit, 1);
  ASSERT_EQ(test_join(spinner), 0);
  stop_and_check(vm, 0, NULL, 10);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- two (here three) concurrent requesters --------------------------------------- */

#define REQUESTER_ROUNDS 150

static void requester_round(vm_t *vm, int who) {
  ASSERT_OK(weft_stw_begin(vm->rt, test_after_ms(vm->rt, VM_BOUND_MS)));
  ASSERT_EQ(atomic_exchange(&vm->holder, who), 0);
  atomic_store(&vm->in_stop, 1);
  long before = atomic_load(&vm->epoch);
  for (int spin = 0; spin < 2000; spin++) (void)atomic_load(&vm->epoch);
  ASSERT_EQ(atomic_load(&vm->epoch), before);
  atomic_store(&vm->in_stop, 0);
  ASSERT_EQ(atomic_exchange(&vm->holder, 0), who);
  atomic_fetch_add(&vm->stops, 1);
  ASSERT_OK(weft_stw_end(vm->rt));
}

/* A requester that is itself a mutator: it polls between its stops. */
static int32_t requester_task(void *arg, void **result) {
  vm_arg_t *a = arg;
  (void)result;
  for (int k = 0; k < REQUESTER_ROUNDS; k++) {
    requester_round(a->vm, 100 + a->index);
    WEFT_SAFEPOINT_POLL(a->vm->rt, a->vm->flag);
  }
  return 0;
}

/* A requester on a thread that is not a mutator. */
static void *requester_thread(void *arg) {
  for (int k = 0; k < REQUESTER_ROUNDS; k++) requester_round(arg, 200);
  return NULL;
}

TEST_IMPL(vm_stw_two_requesters) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  vm_t *vm = vm_setup(2);
  spawn_mutators(vm, poller);
  wait_counts_above(vm, NULL);
  vm_arg_t req_args[2] = {{vm, 0}, {vm, 1}};
  weft_task_t *req[2];
  for (int i = 0; i < 2; i++) req[i] = test_spawn(vm->rt, requester_task, &req_args[i]);
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, NULL, requester_thread, vm), 0);
  for (int i = 0; i < 2; i++) ASSERT_EQ(test_join(req[i]), 0);
  ASSERT_EQ(pthread_join(thread, NULL), 0);
  ASSERT_EQ(atomic_load(&vm->stops), 3 * REQUESTER_ROUNDS);
  ASSERT_EQ(atomic_load(&vm->holder), 0);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- the owner of the stopped world may call blocking weft functions --------------- */

static weft_mutex_t contended;
static atomic_int contended_held;

static void *hold_contended_briefly(void *arg) {
  weft_runtime_t *rt = arg;
  ASSERT_OK(weft_mutex_lock(&contended));
  atomic_store(&contended_held, 1);
  nap_ms(rt, 30);
  ASSERT_OK(weft_mutex_unlock(&contended));
  return NULL;
}

static void owner_blocks(vm_t *vm) {
  nap_ms(vm->rt, 5);
  ASSERT_OK(weft_safepoint(vm->rt)); /* the owner is never parked */
  ASSERT_OK(weft_yield(vm->rt));
  ASSERT_OK(weft_blocking_begin(vm->rt));
  ASSERT_OK(weft_blocking_end(vm->rt));
  /* A lock held by a thread that is no mutator: the owner waits for it in a region. */
  pthread_t holder;
  ASSERT_EQ(pthread_create(&holder, NULL, hold_contended_briefly, vm->rt), 0);
  while (!atomic_load(&contended_held)) nap_ms(vm->rt, 1);
  ASSERT_OK(weft_mutex_lock(&contended));
  ASSERT_OK(weft_mutex_unlock(&contended));
  ASSERT_EQ(pthread_join(holder, NULL), 0);
  ASSERT_OK(weft_mutex_lock(&vm->m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_cond_wait_until(&vm->c, &vm->m, test_after_ms(vm->rt, 5)));
  ASSERT_OK(weft_mutex_unlock(&vm->m));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_join(vm->tasks[0], test_after_ms(vm->rt, 5), NULL, NULL));
  ASSERT_STATUS(WEFT_EDEADLK, weft_stw_begin(vm->rt, WEFT_FOREVER));
}

TEST_IMPL(vm_stw_owner_may_block) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  vm_t *vm = vm_setup(3);
  ASSERT_OK(weft_mutex_init(vm->rt, &contended, 0));
  ASSERT_OK(weft_thread_attach(vm->rt)); /* the collector is a mutator too */
  spawn_mutators(vm, poller);
  wait_counts_above(vm, NULL);
  stop_and_check(vm, 1, owner_blocks, 0);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  ASSERT_OK(weft_thread_detach(vm->rt));
  ASSERT_OK(weft_mutex_destroy(&contended));
  vm_teardown(vm);
  return TEST_OK;
}

/* --- an owner that exits without weft_stw_end resumes the world -------------------- */

static int32_t stop_and_exit_task(void *arg, void **result) {
  vm_t *vm = arg;
  (void)result;
  ASSERT_OK(weft_stw_begin(vm->rt, test_after_ms(vm->rt, VM_BOUND_MS)));
  return 0;
}

static void *stop_and_exit_thread(void *arg) {
  vm_t *vm = arg;
  ASSERT_OK(weft_stw_begin(vm->rt, test_after_ms(vm->rt, VM_BOUND_MS)));
  return NULL;
}

TEST_IMPL(vm_stw_owner_exit_resumes) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  vm_t *vm = vm_setup(3);
  spawn_mutators(vm, poller);
  wait_counts_above(vm, NULL);
  ASSERT_EQ(test_join(test_spawn(vm->rt, stop_and_exit_task, vm)), 0);
  long seen[VM_MAX];
  for (int i = 0; i < vm->n; i++) seen[i] = atomic_load(&vm->counts[i]);
  wait_counts_above(vm, seen);
  stop_and_check(vm, 0, NULL, 0);
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, NULL, stop_and_exit_thread, vm), 0);
  ASSERT_EQ(pthread_join(thread, NULL), 0);
  for (int i = 0; i < vm->n; i++) seen[i] = atomic_load(&vm->counts[i]);
  wait_counts_above(vm, seen);
  stop_and_check(vm, 0, NULL, 0);
  atomic_store(&vm->quit, 1);
  join_all(vm);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- a task cancelled while parked stays parked until the world resumes ------------ */

static int32_t cancellable_poller(void *arg, void **result) {
  vm_arg_t *a = arg;
  (void)result;
  for (;;) {
    managed_work(a->vm, a->index);
    WEFT_SAFEPOINT_POLL(a->vm->rt, a->vm->flag);
    if (weft_task_cancelled()) return 7;
  }
}

static int32_t cancellable_sleeper(void *arg, void **result) {
  vm_arg_t *a = arg;
  (void)result;
  for (;;) {
    weft_status_t status = weft_sleep_until(a->vm->rt, test_after_ms(a->vm->rt, 5));
    if (status == WEFT_ECANCELED) return 8;
    ASSERT_OK(status);
    managed_work(a->vm, a->index);
  }
}

static void cancel_both(vm_t *vm) {
  ASSERT_OK(weft_cancel(vm->tasks[0]));
  ASSERT_OK(weft_cancel(vm->tasks[1]));
  nap_ms(vm->rt, 30);
  /* The sleeper's sleep returned ECANCELED, but it may not even return from it yet. */
  ASSERT_EQ(census(vm->rt, 0).entries, 2);
}

TEST_IMPL(vm_stw_cancelled_mutator_stays_parked) {
  vm_t *vm = vm_setup(2);
  vm->tasks[0] = test_spawn(vm->rt, cancellable_poller, &vm->args[0]);
  vm->tasks[1] = test_spawn(vm->rt, cancellable_sleeper, &vm->args[1]);
  wait_counts_above(vm, NULL);
  stop_and_check(vm, 0, cancel_both, 10);
  ASSERT_EQ(test_join(vm->tasks[0]), 7);
  ASSERT_EQ(test_join(vm->tasks[1]), 8);
  vm_teardown(vm);
  return TEST_OK;
}

/* --- a task that starts during a stop waits for its end ---------------------------- */

static atomic_int hook_starts, hook_exits, hook_self_mismatch;

static void count_start(weft_task_t *task, void *ud) {
  (void)ud;
  if (weft_task_self() != task) atomic_fetch_add(&hook_self_mismatch, 1);
  atomic_fetch_add(&hook_starts, 1);
}

static void count_exit(weft_task_t *task, void *ud) {
  (void)ud;
  if (weft_task_self() != task) atomic_fetch_add(&hook_self_mismatch, 1);
  atomic_fetch_add(&hook_exits, 1);
}

static atomic_int late_ran;

static int32_t late_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  atomic_store(&late_ran, 1);
  return 0;
}

TEST_IMPL(vm_task_started_during_stop_waits) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.on_task_start = count_start;
  cfg.on_task_exit = count_exit;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  ASSERT_OK(weft_stw_begin(rt, WEFT_FOREVER));
  weft_task_t *late = test_spawn(rt, late_task, NULL);
  nap_ms(rt, 30);
  ASSERT_EQ(atomic_load(&hook_starts), 0);
  ASSERT_EQ(atomic_load(&late_ran), 0);
  ASSERT_OK(weft_stw_end(rt));
  ASSERT_EQ(test_join(late), 0);
  ASSERT_EQ(atomic_load(&late_ran), 1);
  ASSERT_EQ(atomic_load(&hook_starts), 1);
  ASSERT_EQ(atomic_load(&hook_exits), 1);
  ASSERT_EQ(atomic_load(&hook_self_mismatch), 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- foreign threads: attach, attach twice, detach, never attached, exit attached -- */

static void *attached_poller(void *arg) {
  vm_arg_t *a = arg;
  vm_t *vm = a->vm;
  ASSERT_OK(weft_thread_attach(vm->rt));
  ASSERT_OK(weft_thread_attach(vm->rt)); /* counted */
  while (!atomic_load(&vm->quit)) {
    managed_work(vm, a->index);
    WEFT_SAFEPOINT_POLL(vm->rt, vm->flag);
  }
  ASSERT_OK(weft_thread_detach(vm->rt));
  ASSERT_OK(weft_safepoint(vm->rt)); /* still attached once */
  ASSERT_OK(weft_thread_detach(vm->rt));
  ASSERT_STATUS(WEFT_EPERM, weft_safepoint(vm->rt));
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_detach(vm->rt));
  return NULL;
}

static void *never_attached(void *arg) {
  vm_t *vm = arg;
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_detach(vm->rt));
  ASSERT_ERROR_MENTIONS("not attached");
  return NULL;
}

static void *exits_attached(void *arg) {
  vm_t *vm = arg;
  weft_runtime_t *other = test_open_runtime();
  ASSERT_OK(weft_thread_attach(vm->rt));
  ASSERT_STATUS(WEFT_EBUSY, weft_thread_attach(other)); /* one runtime at a time */
  ASSERT_OK(weft_blocking_begin(vm->rt));               /* and even left in a region */
  test_close_runtime(other);
  return NULL;
}

static bool count_foreign(const weft_task_info_t *info, void *ud) {
  if (info->task == NULL) ++*(int *)ud;
  return 0;
}

TEST_IMPL(vm_attach_detach_foreign_threads) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  vm_t *vm = vm_setup(3);
  pthread_t threads[VM_MAX];
  for (int i = 0; i < vm->n; i++) ASSERT_EQ(pthread_create(&threads[i], NULL, attached_poller, &vm->args[i]), 0);
  wait_counts_above(vm, NULL);
  for (int k = 0; k < 50; k++) stop_and_check(vm, 0, NULL, k % 10 == 0 ? 10 : 0);
  int foreign = 0;
  ASSERT_OK(weft_tasks_foreach(vm->rt, count_foreign, &foreign));
  ASSERT_EQ(foreign, vm->n);
  atomic_store(&vm->quit, 1);
  for (int i = 0; i < vm->n; i++) ASSERT_EQ(pthread_join(threads[i], NULL), 0);
  pthread_t other;
  ASSERT_EQ(pthread_create(&other, NULL, never_attached, vm), 0);
  ASSERT_EQ(pthread_join(other, NULL), 0);
  ASSERT_EQ(pthread_create(&other, NULL, exits_attached, vm), 0);
  ASSERT_EQ(pthread_join(other, NULL), 0);
  foreign = 0;
  ASSERT_OK(weft_tasks_foreach(vm->rt, count_foreign, &foreign));
  ASSERT_EQ(foreign, 0); /* the exited thread is no mutator any more */
  stop_and_check(vm, 0, NULL, 0);
  vm_teardown(vm); /* closes: nobody is attached */
  return TEST_OK;
}

static atomic_int attached_flag;

static void *attach_then_mark(void *arg) {
  weft_runtime_t *rt = arg;
  ASSERT_OK(weft_thread_attach(rt));
  atomic_store(&attached_flag, 1);
  ASSERT_OK(weft_thread_detach(rt));
  return NULL;
}

TEST_IMPL(vm_attach_during_stop_waits) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_stw_begin(rt, WEFT_FOREVER));
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, NULL, attach_then_mark, rt), 0);
  nap_ms(rt, 30);
  ASSERT_EQ(atomic_load(&attached_flag), 0);
  ASSERT_OK(weft_stw_end(rt));
  ASSERT_EQ(pthread_join(thread, NULL), 0);
  ASSERT_EQ(atomic_load(&attached_flag), 1);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- lifecycle hooks: once per task, on the task, around its function -------------- */

#define HOOK_TASKS 16

typedef struct {
  atomic_int phase; /* 1 start hook, 2 function, 3 exit hook, 4 destructor */
} hook_marker_t;

static hook_marker_t markers[HOOK_TASKS];
static atomic_int next_marker, hook_order_errors, hook_dtors;
static weft_key_t hook_key;

static void marker_dtor(void *value) {
  hook_marker_t *mk = value;
  if (atomic_exchange(&mk->phase, 4) != 3) atomic_fetch_add(&hook_order_errors, 1);
  atomic_fetch_add(&hook_dtors, 1);
}

static void marking_start(weft_task_t *task, void *ud) {
  count_start(task, ud);
  hook_marker_t *mk = &markers[atomic_fetch_add(&next_marker, 1) % HOOK_TASKS];
  if (atomic_exchange(&mk->phase, 1) != 0) atomic_fetch_add(&hook_order_errors, 1);
  ASSERT_OK(weft_local_set(hook_key, mk));
}

static void marking_exit(weft_task_t *task, void *ud) {
  count_exit(task, ud);
  hook_marker_t *mk = weft_local_get(hook_key);
  if (mk == NULL || atomic_exchange(&mk->phase, 3) != 2) atomic_fetch_add(&hook_order_errors, 1);
}

static int32_t marked_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  hook_marker_t *mk = weft_local_get(hook_key);
  if (mk == NULL || atomic_exchange(&mk->phase, 2) != 1) atomic_fetch_add(&hook_order_errors, 1);
  return 0;
}

TEST_IMPL(vm_hooks_once_per_task) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.on_task_start = marking_start;
  cfg.on_task_exit = marking_exit;
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(&cfg, &rt));
  ASSERT_OK(weft_key_create(rt, marker_dtor, &hook_key));
  weft_task_t *joined[HOOK_TASKS];
  int njoined = 0;
  for (int i = 0; i < HOOK_TASKS; i++) {
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    if (i % 2) opts.flags = WEFT_SPAWN_DETACHED;
    weft_task_t *t = NULL;
    ASSERT_OK(weft_spawn(rt, marked_task, NULL, &opts, &t));
    if (t) joined[njoined++] = t;
  }
  for (int i = 0; i < njoined; i++) ASSERT_EQ(test_join(joined[i]), 0);
  for (int waited = 0; atomic_load(&hook_dtors) < HOOK_TASKS; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    nap_ms(rt, 1);
  }
  ASSERT_EQ(atomic_load(&hook_starts), HOOK_TASKS);
  ASSERT_EQ(atomic_load(&hook_exits), HOOK_TASKS);
  ASSERT_EQ(atomic_load(&hook_dtors), HOOK_TASKS);
  ASSERT_EQ(atomic_load(&hook_self_mismatch), 0);
  ASSERT_EQ(atomic_load(&hook_order_errors), 0);
  for (int i = 0; i < HOOK_TASKS; i++) ASSERT_EQ(atomic_load(&markers[i].phase), 4);
  /* Detached tasks may still be on their way out. */
  weft_status_t closed;
  for (int waited = 0; (closed = weft_runtime_close(rt)) == WEFT_EBUSY; waited++) {
    ASSERT(waited < VM_BOUND_MS);
    usleep(1000);
  }
  ASSERT_OK(closed);
  return TEST_OK;
}

/* --- tasks_foreach: every live mutator with id, name, state and locals ------------- */

#define ROOT_TASKS 5

typedef struct {
  vm_t *vm;
  int index;
  atomic_ullong id;
  int seen;
} root_t;

static root_t roots[ROOT_TASKS];
static root_t main_root;
static weft_key_t root_key;
static atomic_int roots_ready;

static int32_t rooted_task(void *arg, void **result) {
  root_t *r = arg;
  (void)result;
  ASSERT_OK(weft_local_set(root_key, r));
  atomic_store(&r->id, weft_task_id(weft_task_self()));
  atomic_fetch_add(&roots_ready, 1);
  while (!atomic_load(&r->vm->quit)) {
    managed_work(r->vm, r->index);
    WEFT_SAFEPOINT_POLL(r->vm->rt, r->vm->flag);
  }
  return 0;
}

typedef struct {
  int entries;
  int errors;
  int others_with_locals;
  int limit;
} roots_walk_t;

static bool visit_roots(const weft_task_info_t *info, void *ud) {
  roots_walk_t *w = ud;
  w->entries++;
  if (info->struct_size != sizeof(weft_task_info_t)) w->errors++;
  void *local = info->nlocals >= root_key ? info->locals[root_key - 1] : NULL;
  if (info->task == NULL) {
    /* The collector itself: attached, running, its own locals visible. */
    if (info->state != WEFT_TASK_RUNNING || local != &main_root || info->name != NULL) w->errors++;
  } else {
    root_t *r = local;
    char name[32];
    if (r == NULL || r < roots || r >= roots + ROOT_TASKS) {
      w->errors++;
    } else {
      snprintf(name, sizeof name, "root-%d", r->index);
      if (atomic_load(&r->id) != info->id || info->name == NULL || strcmp(info->name, name) != 0) w->errors++;
      if (info->state == WEFT_TASK_RUNNING) w->errors++;
      r->seen++;
    }
  }
  return w->limit > 0 && w->entries >= w->limit;
}

static bool count_others_with_locals(const weft_task_info_t *info, void *ud) {
  roots_walk_t *w = ud;
  if (info->task != NULL && info->locals != NULL) w->others_with_locals++;
  return 0;
}

TEST_IMPL(vm_tasks_foreach_roots) {
  vm_t *vm = vm_setup(ROOT_TASKS);
  ASSERT_OK(weft_key_create(vm->rt, NULL, &root_key));
  ASSERT_OK(weft_thread_attach(vm->rt));
  ASSERT_OK(weft_local_set(root_key, &main_root));
  for (int i = 0; i < ROOT_TASKS; i++) {
    roots[i].vm = vm;
    roots[i].index = i;
    char name[32];
    snprintf(name, sizeof name, "root-%d", i);
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = name;
    ASSERT_OK(weft_spawn(vm->rt, rooted_task, &roots[i], &opts, &vm->tasks[i]));
  }
  while (atomic_load(&roots_ready) < ROOT_TASKS) nap_ms(vm->rt, 1);

  ASSERT_OK(weft_stw_begin(vm->rt, test_after_ms(vm->rt, VM_BOUND_MS)));
  roots_walk_t walk = {0, 0, 0, 0};
  ASSERT_OK(weft_tasks_foreach(vm->rt, visit_roots, &walk));
  ASSERT_EQ(walk.errors, 0);
  ASSERT_EQ(walk.entries, ROOT_TASKS + 1);
  for (int i = 0; i < ROOT_TASKS; i++) ASSERT_EQ(roots[i].seen, 1);
  roots_walk_t first = {0, 0, 0, 1}; /* a non-zero return stops the walk */
  ASSERT_OK(weft_tasks_foreach(vm->rt, visit_roots, &first));
  ASSERT_EQ(first.entries, 1);
  ASSERT_OK(weft_stw_end(vm->rt));

  /* Outside a stop, other mutators' locals are not handed out (they may change). */
  roots_walk_t outside = {0, 0, 0, 0};
  ASSERT_OK(weft_tasks_foreach(vm->rt, count_others_with_locals, &outside));
  ASSERT_EQ(outside.others_with_locals, 0);

  atomic_store(&vm->quit, 1);
  join_all(vm);
  ASSERT_OK(weft_thread_detach(vm->rt));
  vm_teardown(vm);
  return TEST_OK;
}

/* --- error cases ------------------------------------------------------------------ */

static bool never_called(const weft_task_info_t *info, void *ud) {
  (void)ud;
  (void)info;
  return 0;
}

static void *hold_world_until_told(void *arg) {
  vm_t *vm = arg;
  ASSERT_OK(weft_stw_begin(vm->rt, WEFT_FOREVER));
  atomic_store(&vm->holder, 1);
  while (atomic_load(&vm->holder) != 2) usleep(1000);
  ASSERT_OK(weft_stw_end(vm->rt));
  return NULL;
}

/* --- stops of two runtimes at once; waits on one runtime from a task of another ---- */

/* A thread stops the worlds of two runtimes, ends one of the stops, and exits holding
 * the other: that one resumes too, whichever it is. A context once kept one runtime
 * whose world it held, and the second stop overwrote the first (or the end of either
 * cleared it): the other world stayed stopped for good, and its runtime unclosable. */
typedef struct {
  weft_runtime_t *a, *b;
  int end_first_a;
} two_stops_t;

static void *stop_two_end_one_and_exit(void *arg) {
  two_stops_t *t = arg;
  ASSERT_OK(weft_stw_begin(t->a, WEFT_FOREVER));
  ASSERT_OK(weft_stw_begin(t->b, WEFT_FOREVER));
  ASSERT_OK(weft_stw_end(t->end_first_a ? t->a : t->b));
  return NULL;
}

TEST_IMPL(vm_stw_holder_of_two_worlds_exits) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  for (int end_first_a = 0; end_first_a < 2; end_first_a++) {
    two_stops_t t = {test_open_runtime(), test_open_runtime(), end_first_a};
    pthread_t thread;
    ASSERT_EQ(pthread_create(&thread, NULL, stop_two_end_one_and_exit, &t), 0);
    ASSERT_EQ(pthread_join(thread, NULL), 0);
    weft_runtime_t *left = end_first_a ? t.b : t.a;
    ASSERT_OK(weft_stw_begin(left, test_after_ms(left, VM_BOUND_MS)));
    ASSERT_OK(weft_stw_end(left));
    test_close_runtime(t.a);
    test_close_runtime(t.b);
  }
  return TEST_OK;
}

/* The function of weft_blocking_call ends the region the call opened (an unbalanced
 * weft_blocking_end), or closes the runtime: the call returns (it spun for ever), with
 * WEFT_EPERM for the first. */
typedef struct {
  weft_runtime_t *rt;
  weft_status_t inner;
} inner_call_t;

static void end_the_callers_region(void *arg) {
  inner_call_t *c = arg;
  c->inner = weft_blocking_end(c->rt);
}

static void close_inside(void *arg) {
  inner_call_t *c = arg;
  c->inner = weft_runtime_close(c->rt);
}

static int32_t call_that_ends_its_region(void *arg, void **result) {
  inner_call_t *c = arg;
  (void)result;
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_call(c->rt, end_the_callers_region, c));
  ASSERT_ERROR_MENTIONS("weft_blocking_call");
  /* The task is in no region now, and runs on as any task. */
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_end(c->rt));
  ASSERT_OK(weft_yield(c->rt));
  return 0;
}

TEST_IMPL(vm_blocking_call_function_ends_the_region) {
  weft_runtime_t *rt = test_open_runtime();
  inner_call_t c = {rt, -1};
  ASSERT_EQ(test_join(test_spawn(rt, call_that_ends_its_region, &c)), 0);
  ASSERT_OK(c.inner);
  /* The same from an attached thread; then a function that closes the runtime. */
  ASSERT_OK(weft_thread_attach(rt));
  c.inner = -1;
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_call(rt, end_the_callers_region, &c));
  ASSERT_OK(c.inner);
  c.inner = -1;
  weft_status_t call = weft_blocking_call(rt, close_inside, &c);
  if (c.inner == WEFT_OK) {
    ASSERT_OK(call);
  } else {
    ASSERT_OK(call);
    ASSERT_OK(weft_thread_detach(rt));
    test_close_runtime(rt);
  }
  return TEST_OK;
}

/* A task of runtime B waits in a call on runtime A (weft_stw_begin while another
 * thread holds A's world, weft_runtime_drain while A has a task asleep): a stop of B
 * does not wait for it, as for any wait inside weft. It did: the wait on A's world
 * lock masked the task's blocking regions, and B's stop timed out naming it. */
typedef struct {
  weft_runtime_t *a, *b;
  atomic_int held, release, waiting;
} cross_t;

static void *hold_world_until_released(void *arg) {
  cross_t *x = arg;
  ASSERT_OK(weft_stw_begin(x->a, WEFT_FOREVER));
  atomic_store(&x->held, 1);
  while (!atomic_load(&x->release)) usleep(1000);
  ASSERT_OK(weft_stw_end(x->a));
  return NULL;
}

static int32_t stop_other_runtime(void *arg, void **result) {
  cross_t *x = arg;
  (void)result;
  atomic_store(&x->waiting, 1);
  ASSERT_OK(weft_stw_begin(x->a, WEFT_FOREVER)); /* waits for the holder */
  ASSERT_OK(weft_stw_end(x->a));
  return 0;
}

static int32_t drain_other_runtime(void *arg, void **result) {
  cross_t *x = arg;
  (void)result;
  atomic_store(&x->waiting, 1);
  ASSERT_OK(weft_runtime_drain(x->a, WEFT_FOREVER));
  return 0;
}

static int32_t sleep_until_released(void *arg, void **result) {
  cross_t *x = arg;
  (void)result;
  while (!atomic_load(&x->release)) ASSERT_OK(weft_sleep_until(x->a, test_after_ms(x->a, 1)));
  return 0;
}

TEST_IMPL(vm_wait_on_another_runtime_is_blocking) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  for (int drain = 0; drain < 2; drain++) {
    static cross_t x;
    memset(&x, 0, sizeof x);
    x.a = test_open_runtime();
    x.b = test_open_runtime();
    pthread_t holder;
    weft_task_t *sleeper = NULL;
    if (drain) {
      sleeper = test_spawn(x.a, sleep_until_released, &x);
    } else {
      ASSERT_EQ(pthread_create(&holder, NULL, hold_world_until_released, &x), 0);
      while (!atomic_load(&x.held)) usleep(1000);
    }
    weft_task_t *waiter = test_spawn(x.b, drain ? drain_other_runtime : stop_other_runtime, &x);
    while (!atomic_load(&x.waiting)) usleep(1000);
    usleep(20000); /* into its wait */
    ASSERT_OK(weft_stw_begin(x.b, test_after_ms(x.b, VM_BOUND_MS)));
    ASSERT_OK(weft_stw_end(x.b));
    atomic_store(&x.release, 1);
    if (drain) {
      ASSERT_EQ(test_join(sleeper), 0);
    } else {
      ASSERT_EQ(pthread_join(holder, NULL), 0);
    }
    ASSERT_EQ(test_join(waiter), 0);
    test_close_runtime(x.a);
    test_close_runtime(x.b);
  }
  return TEST_OK;
}

/* --- the handles weft_tasks_foreach hands out -------------------------------------- */

/* While tasks end and new ones take their shells, every handle a visitor gets names
 * the task it visits for the whole call (it named the next spawn's task, and a
 * visitor's weft_cancel cancelled a bystander); and a task whose spawn fails while a
 * visitor calls weft through its handle is freed only after that call (it was freed
 * under it: a crash). */
static atomic_int reg_stop, reg_mismatches, reg_visits;
static weft_runtime_t *reg_rt;

static int32_t reg_quick(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static int32_t reg_spawn_and_join(void *arg, void **result) {
  (void)arg;
  (void)result;
  while (!atomic_load(&reg_stop)) ASSERT_EQ(test_join(test_spawn(reg_rt, reg_quick, NULL)), 0);
  return 0;
}

static void *reg_spawns_that_fail(void *arg) {
  (void)arg;
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = (size_t)1 << 55;
  opts.name = "doomed";
  while (!atomic_load(&reg_stop)) {
    weft_task_t *t = NULL;
    ASSERT_STATUS(WEFT_ENOMEM, weft_spawn(reg_rt, reg_quick, NULL, &opts, &t));
  }
  return NULL;
}

static bool reg_visit(const weft_task_info_t *info, void *ud) {
  (void)ud;
  if (info->task == NULL) return false;
  atomic_fetch_add(&reg_visits, 1);
  if (info->name != NULL && strcmp(info->name, "doomed") == 0) (void)weft_cancel(info->task);
  uint64_t id = weft_task_id(info->task);
  if (id != 0 && id != info->id) atomic_fetch_add(&reg_mismatches, 1);
  return false;
}

TEST_IMPL(vm_foreach_handles_name_their_tasks) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  reg_rt = test_open_runtime();
  atomic_store(&reg_stop, 0);
  atomic_store(&reg_mismatches, 0);
  atomic_store(&reg_visits, 0);
  weft_task_t *spawner = test_spawn(reg_rt, reg_spawn_and_join, NULL);
  pthread_t failing;
  ASSERT_EQ(pthread_create(&failing, NULL, reg_spawns_that_fail, NULL), 0);
  int rounds = test_under_valgrind() ? 300 : 20000;
  for (int i = 0; i < rounds; i++) ASSERT_OK(weft_tasks_foreach(reg_rt, reg_visit, NULL));
  atomic_store(&reg_stop, 1);
  ASSERT_EQ(pthread_join(failing, NULL), 0);
  ASSERT_EQ(test_join(spawner), 0);
  ASSERT_EQ(atomic_load(&reg_mismatches), 0);
  ASSERT(atomic_load(&reg_visits) > 0);
  test_close_runtime(reg_rt);
  return TEST_OK;
}

TEST_IMPL(vm_errors) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  /* NULL runtime: every function. */
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_attach(NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_detach(NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_safepoint(NULL));
  ASSERT(weft_safepoint_flag(NULL) == NULL);
  ASSERT_STATUS(WEFT_EINVAL, weft_stw_begin(NULL, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EINVAL, weft_stw_end(NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_blocking_begin(NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_blocking_end(NULL));
  ASSERT_STATUS(WEFT_EINVAL, weft_tasks_foreach(NULL, never_called, NULL));

  vm_t *vm = vm_setup(0);
  ASSERT_STATUS(WEFT_EINVAL, weft_tasks_foreach(vm->rt, NULL, NULL));
  /* Not a mutator. */
  ASSERT_STATUS(WEFT_EPERM, weft_safepoint(vm->rt));
  ASSERT_ERROR_MENTIONS("not a mutator");
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_begin(vm->rt));
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_end(vm->rt));
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_detach(vm->rt));
  /* A mutator: end without begin, detach inside a region. */
  ASSERT_OK(weft_thread_attach(vm->rt));
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_end(vm->rt));
  ASSERT_OK(weft_blocking_begin(vm->rt));
  ASSERT_STATUS(WEFT_EBUSY, weft_thread_detach(vm->rt));
  ASSERT_OK(weft_blocking_end(vm->rt));
  ASSERT_OK(weft_safepoint(vm->rt));
  /* Stop-the-world: end without a stop, nested begin, close during a stop. */
  ASSERT_STATUS(WEFT_EPERM, weft_stw_end(vm->rt));
  ASSERT_OK(weft_stw_begin(vm->rt, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EDEADLK, weft_stw_begin(vm->rt, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EBUSY, weft_runtime_close(vm->rt));
  ASSERT_OK(weft_stw_end(vm->rt));
  ASSERT_STATUS(WEFT_EPERM, weft_stw_end(vm->rt));
  ASSERT_OK(weft_thread_detach(vm->rt));
  /* End by a thread that does not hold the stop; a non-mutator's deadline. */
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, NULL, hold_world_until_told, vm), 0);
  while (atomic_load(&vm->holder) != 1) usleep(1000);
  ASSERT_STATUS(WEFT_EPERM, weft_stw_end(vm->rt));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_stw_begin(vm->rt, test_after_ms(vm->rt, 20)));
  ASSERT_ERROR_MENTIONS("another thread");
  atomic_store(&vm->holder, 2);
  ASSERT_EQ(pthread_join(thread, NULL), 0);
  /* A closed runtime. */
  weft_runtime_t *rt = vm->rt;
  vm_teardown(vm);
  ASSERT_STATUS(WEFT_EINVAL, weft_thread_attach(rt));
  ASSERT_STATUS(WEFT_EINVAL, weft_stw_begin(rt, WEFT_FOREVER));
  ASSERT_STATUS(WEFT_EINVAL, weft_safepoint(rt));
  return TEST_OK;
}
