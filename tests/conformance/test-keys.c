/* Task-local keys: per-task values, destructors, host threads, invalid keys. */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"

typedef struct {
  atomic_int destroyed;
  weft_task_t *destroyed_on; /* weft_task_self() inside the destructor */
  pthread_t thread;          /* pthread_self() inside the destructor */
  void *then;                /* reset_once: the value to set once this one is destroyed */
} value_t;

static void destroy_value(void *p) {
  value_t *v = p;
  v->destroyed_on = weft_task_self();
  v->thread = pthread_self();
  atomic_fetch_add(&v->destroyed, 1);
}

static weft_key_t key_a, key_b, key_plain, key_reset;

typedef struct {
  weft_runtime_t *rt;
  int index;
  value_t first, second, unset_later, reset, reset_again;
  int plain;
  pthread_t thread;
} task_values_t;

/* A destructor may set a value again: that one is destroyed in a later round. */
static void reset_once(void *p) {
  value_t *v = p;
  destroy_value(v);
  if (v->then != NULL && weft_local_set(key_reset, v->then) != WEFT_OK) abort();
}

static int32_t use_keys(void *arg, void **result) {
  task_values_t *me = arg;
  (void)result;
  me->thread = pthread_self();
  if (weft_local_get(key_a) != NULL || weft_local_get(key_b) != NULL) return 1;
  if (weft_local_set(key_a, &me->first) != WEFT_OK) return 2;
  if (weft_local_set(key_a, &me->second) != WEFT_OK) return 3; /* first is not destroyed */
  if (weft_local_set(key_b, &me->unset_later) != WEFT_OK) return 4;
  if (weft_local_set(key_b, NULL) != WEFT_OK) return 5; /* NULL: no destructor call */
  if (weft_local_set(key_plain, &me->plain) != WEFT_OK) return 6; /* no destructor */
  if (weft_local_set(key_reset, &me->reset) != WEFT_OK) return 7;
  for (int i = 0; i < 20; i++) {
    if (weft_yield(me->rt) != WEFT_OK) return 8;
    if (weft_local_get(key_a) != &me->second) return 9; /* nobody else's value */
    if (weft_local_get(key_plain) != &me->plain) return 10;
  }
  if (weft_local_get(key_b) != NULL) return 11;
  return 0;
}

/* Each task has its own values; at exit each non-NULL value is destroyed exactly once,
 * on the task itself; replaced and NULL values are not; a destructor that sets a value
 * again gets that one destroyed too. */
TEST_IMPL(keys_destructors) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_key_create(rt, destroy_value, &key_a));
  ASSERT_OK(weft_key_create(rt, destroy_value, &key_b));
  ASSERT_OK(weft_key_create(rt, NULL, &key_plain));
  ASSERT_OK(weft_key_create(rt, reset_once, &key_reset));
  ASSERT(key_a != 0 && key_b != 0 && key_plain != 0 && key_reset != 0);
  ASSERT(key_a != key_b && key_b != key_plain && key_plain != key_reset && key_a != key_reset);
  int os_threads = (weft_runtime_platform(rt)->caps & WEFT_CAP_OS_THREADS) != 0;
  enum { N = 8 };
  static task_values_t v[N];
  weft_task_t *t[N];
  for (int i = 0; i < N; i++) {
    memset(&v[i], 0, sizeof v[i]);
    v[i].rt = rt;
    v[i].index = i;
    v[i].reset.then = &v[i].reset_again;
    t[i] = test_spawn(rt, use_keys, &v[i]);
  }
  /* Static, and a value_t: the main thread's slot destructor runs on it at exit, after
   * this function's frame is gone. */
  static value_t main_value;
  ASSERT_OK(weft_local_set(key_a, &main_value));
  weft_task_t *handles[N];
  memcpy(handles, t, sizeof handles);
  for (int i = 0; i < N; i++) ASSERT_EQ(test_join(t[i]), 0);
  for (int i = 0; i < N; i++) {
    ASSERT_EQ(atomic_load(&v[i].first.destroyed), 0);
    ASSERT_EQ(atomic_load(&v[i].second.destroyed), 1);
    ASSERT_EQ(atomic_load(&v[i].unset_later.destroyed), 0);
    ASSERT_EQ(atomic_load(&v[i].reset.destroyed), 1);
    ASSERT_EQ(atomic_load(&v[i].reset_again.destroyed), 1);
    ASSERT(v[i].second.destroyed_on == handles[i]); /* on the task itself */
    ASSERT(v[i].reset_again.destroyed_on == handles[i]);
    if (os_threads) ASSERT(pthread_equal(v[i].second.thread, v[i].thread));
  }
  ASSERT(weft_local_get(key_a) == &main_value); /* the tasks left ours alone */
  test_close_runtime(rt);
  ASSERT(weft_local_get(key_a) == &main_value); /* keys outlive runtimes */
  return TEST_OK;
}

/* A destructor may read another key's value: the one whose destructor has not run yet
 * is still there, as under pthread (every value was taken out before the first
 * destructor ran, and it read NULL); its own key reads NULL. */
static weft_key_t key_x, key_y;
static int value_x, value_y;
static void *x_saw_y, *y_saw_x, *x_saw_x, *y_saw_y;

static void destroy_x(void *p) {
  (void)p;
  x_saw_y = weft_local_get(key_y);
  x_saw_x = weft_local_get(key_x);
}

static void destroy_y(void *p) {
  (void)p;
  y_saw_x = weft_local_get(key_x);
  y_saw_y = weft_local_get(key_y);
}

static int32_t set_x_and_y(void *arg, void **result) {
  (void)arg;
  (void)result;
  ASSERT_OK(weft_local_set(key_x, &value_x));
  ASSERT_OK(weft_local_set(key_y, &value_y));
  return 0;
}

TEST_IMPL(keys_destructor_reads_other_keys) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_key_create(rt, destroy_x, &key_x));
  ASSERT_OK(weft_key_create(rt, destroy_y, &key_y));
  x_saw_y = y_saw_x = x_saw_x = y_saw_y = (void *)1;
  ASSERT_EQ(test_join(test_spawn(rt, set_x_and_y, NULL)), 0);
  ASSERT(x_saw_x == NULL && y_saw_y == NULL);
  /* Whichever ran first saw the other's value; the second, NULL. */
  ASSERT((x_saw_y == &value_y && y_saw_x == NULL) || (y_saw_x == &value_x && x_saw_y == NULL));
  ASSERT_OK(weft_key_delete(key_x));
  ASSERT_OK(weft_key_delete(key_y));
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  value_t value;
  pthread_t self;
  int failed;
} host_thread_t;

static void *host_thread_sets(void *arg) {
  host_thread_t *h = arg;
  h->self = pthread_self();
  if (weft_local_get(key_a) != NULL) h->failed = 1;
  if (weft_local_set(key_a, &h->value) != WEFT_OK) h->failed = 2;
  if (weft_local_get(key_a) != &h->value) h->failed = 3;
  return NULL;
}

/* A host thread (not a task) has its own values, destroyed when it exits, on it. */
TEST_IMPL(keys_host_threads) {
  test_skip_if_one_thread("needs host threads (pthread_create) calling weft");
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_key_create(rt, destroy_value, &key_a));
  int mine = 0;
  ASSERT(weft_local_get(key_a) == NULL);
  ASSERT_OK(weft_local_set(key_a, &mine));
  static host_thread_t h[4];
  pthread_t threads[4];
  for (int i = 0; i < 4; i++) ASSERT(pthread_create(&threads[i], NULL, host_thread_sets, &h[i]) == 0);
  for (int i = 0; i < 4; i++) {
    ASSERT(pthread_join(threads[i], NULL) == 0);
    ASSERT_EQ(h[i].failed, 0);
    ASSERT_EQ(atomic_load(&h[i].value.destroyed), 1);
    ASSERT(pthread_equal(h[i].value.thread, h[i].self));
    ASSERT(h[i].value.destroyed_on == NULL); /* not a task */
  }
  ASSERT(weft_local_get(key_a) == &mine);
  ASSERT_OK(weft_local_set(key_a, NULL));
  ASSERT(weft_local_get(key_a) == NULL);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Keys that were never created: WEFT_EINVAL from set, NULL (and the error) from get. */
TEST_IMPL(keys_invalid) {
  weft_runtime_t *rt = test_open_runtime();
  weft_key_t k = 0;
  ASSERT_OK(weft_key_create(rt, NULL, &k));
  int x = 0;
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(0, &x));
  ASSERT_ERROR_MENTIONS("key 0");
  ASSERT(weft_local_get(0) == NULL);
  ASSERT_ERROR_MENTIONS("weft_local_get");
  ASSERT_ERROR_MENTIONS("key 0");
  weft_key_t never = WEFT_KEYS_MAX + 1;
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(never, &x));
  ASSERT(weft_local_get(never) == NULL);
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(UINT32_MAX, &x));
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(k + 1, &x)); /* not created yet */
  ASSERT_OK(weft_local_set(k, &x));
  ASSERT(weft_local_get(k) == &x);
  ASSERT_OK(weft_local_set(k, NULL)); /* NULL is a value like any other */
  ASSERT(weft_local_get(k) == NULL);
  test_close_runtime(rt);
  weft_key_t out = 77;
  ASSERT_STATUS(WEFT_EINVAL, weft_key_create(rt, NULL, &out)); /* closed runtime */
  ASSERT_EQ(out, 77);
  return TEST_OK;
}

/* At most WEFT_KEYS_MAX live keys; then WEFT_ENOMEM, *out untouched, old keys still
 * work; deleting one makes room for one more. */
TEST_IMPL(keys_exhaustion) {
  weft_runtime_t *rt = test_open_runtime();
  weft_key_t first = 0, last = 0, k = 0;
  long created = 0;
  weft_status_t st;
  while ((st = weft_key_create(rt, NULL, &k)) == WEFT_OK) {
    if (created == 0) first = k;
    ASSERT(k != 0 && k != last);
    last = k;
    ASSERT(++created <= WEFT_KEYS_MAX);
  }
  ASSERT_STATUS(WEFT_ENOMEM, st);
  ASSERT_ERROR_MENTIONS("keys");
  ASSERT(created >= 1);
  k = 12345;
  ASSERT_STATUS(WEFT_ENOMEM, weft_key_create(rt, NULL, &k));
  ASSERT_EQ(k, 12345);
  int x;
  ASSERT_OK(weft_local_set(first, &x));
  ASSERT_OK(weft_local_set(last, &x));
  ASSERT(weft_local_get(last) == &x);
  ASSERT_OK(weft_key_delete(last));
  ASSERT_OK(weft_key_create(rt, NULL, &k));
  ASSERT(k != last && WEFT_KEY_SLOT(k) == WEFT_KEY_SLOT(last));
  ASSERT(weft_local_get(k) == NULL); /* last's value is not k's */
  ASSERT_STATUS(WEFT_ENOMEM, weft_key_create(rt, NULL, &k));
  test_close_runtime(rt);
  return TEST_OK;
}

static atomic_int deleted_dtor_calls;
static void count_deleted_dtor(void *p) {
  (void)p;
  atomic_fetch_add(&deleted_dtor_calls, 1);
}

static weft_key_t doomed;

static int32_t set_doomed(void *arg, void **result) {
  (void)result;
  return weft_local_set(doomed, arg) == WEFT_OK ? 0 : 1;
}

/* A deleted key: refused by every call, its values forgotten (their destructor never
 * runs), its slot reused by a later key that does not see them. */
TEST_IMPL(keys_delete) {
  weft_runtime_t *rt = test_open_runtime();
  int x, y;
  ASSERT_OK(weft_key_create(rt, count_deleted_dtor, &doomed));
  ASSERT_OK(weft_local_set(doomed, &x));
  /* A task that sets a value and is still running when the key goes. */
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  weft_task_t *t;
  ASSERT_OK(weft_spawn(rt, set_doomed, &y, NULL, &t));
  int32_t code = -1;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, NULL));
  ASSERT_EQ(code, 0);
  ASSERT_EQ(atomic_load(&deleted_dtor_calls), 1); /* the task's value, at its exit */
  ASSERT_OK(weft_key_delete(doomed));
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(doomed, &x));
  ASSERT_ERROR_MENTIONS("weft_local_set");
  ASSERT_ERROR_MENTIONS("not a live key");
  ASSERT(weft_local_get(doomed) == NULL);
  ASSERT_ERROR_MENTIONS("weft_local_get");
  ASSERT_STATUS(WEFT_EINVAL, weft_key_delete(doomed)); /* twice */
  ASSERT_ERROR_MENTIONS("weft_key_delete");
  ASSERT_STATUS(WEFT_EINVAL, weft_key_delete(0));
  ASSERT_STATUS(WEFT_EINVAL, weft_key_delete(UINT32_MAX));
  /* The next key may take the slot: it starts at NULL, here and in foreach's view. */
  weft_key_t next;
  ASSERT_OK(weft_key_create(rt, NULL, &next));
  ASSERT(next != doomed);
  ASSERT(weft_local_get(next) == NULL);
  ASSERT_OK(weft_mutex_destroy(&m));
  test_close_runtime(rt);
  /* This thread's value of the deleted key is never destroyed. */
  ASSERT_EQ(atomic_load(&deleted_dtor_calls), 1);
  return TEST_OK;
}

typedef struct {
  weft_key_t key;
  void *seen;
  bool found;
} locals_probe_t;

static bool read_own_local(const weft_task_info_t *info, void *ud) {
  locals_probe_t *p = ud;
  if (info->id != weft_self_id()) return false;
  p->found = true;
  size_t slot = WEFT_KEY_SLOT(p->key);
  p->seen = slot < info->nlocals ? info->locals[slot] : NULL;
  return true;
}

/* Keys made and deleted without end never run out, and each differs from the last;
 * weft_tasks_foreach shows a reused slot's value under the live key only. */
TEST_IMPL(keys_create_delete_forever) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_thread_attach(rt));
  weft_key_t previous = 0;
  int x;
  for (long i = 0; i < 3 * (long)WEFT_KEYS_MAX / 100; i++) {
    weft_key_t k;
    ASSERT_OK(weft_key_create(rt, NULL, &k));
    ASSERT(k != previous);
    ASSERT(weft_local_get(k) == NULL);
    ASSERT_OK(weft_local_set(k, &x));
    if (i % 1000 == 0) {
      locals_probe_t p = {.key = k};
      ASSERT_OK(weft_tasks_foreach(rt, read_own_local, &p));
      ASSERT(p.found && p.seen == &x);
    }
    ASSERT_OK(weft_key_delete(k));
    if (i % 1000 == 0) {
      /* The slot's old value is not shown once its key is gone. */
      locals_probe_t p = {.key = k};
      ASSERT_OK(weft_tasks_foreach(rt, read_own_local, &p));
      ASSERT(p.found && p.seen == NULL);
    }
    previous = k;
  }
  ASSERT_OK(weft_thread_detach(rt));
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(keys_null_arguments) {
  weft_runtime_t *rt = test_open_runtime();
  weft_key_t k = 77;
  ASSERT_STATUS(WEFT_EINVAL, weft_key_create(rt, destroy_value, NULL));
  ASSERT_ERROR_MENTIONS("out");
  ASSERT_EQ(k, 77);
  ASSERT_OK(weft_key_create(rt, NULL, &k)); /* dtor may be NULL */
  ASSERT_OK(weft_local_set(k, NULL));
  test_close_runtime(rt);
  return TEST_OK;
}

/* Keys belong to no runtime: one made with NULL before any runtime is open, and one
 * made with a runtime closed since, both work in the tasks of a later runtime, and
 * their destructors run there. */
static weft_key_t key_early, key_of_closed;

static int32_t set_both_keys(void *arg, void **result) {
  value_t *v = arg;
  (void)result;
  if (weft_local_get(key_early) != NULL || weft_local_get(key_of_closed) != NULL) return 1;
  if (weft_local_set(key_early, &v[0]) != WEFT_OK) return 2;
  if (weft_local_set(key_of_closed, &v[1]) != WEFT_OK) return 3;
  if (weft_local_get(key_early) != &v[0] || weft_local_get(key_of_closed) != &v[1]) return 4;
  return 0;
}

TEST_IMPL(keys_outlive_runtimes) {
  ASSERT_OK(weft_key_create(NULL, destroy_value, &key_early));
  ASSERT(key_early != 0);
  weft_runtime_t *first = test_open_runtime();
  ASSERT_OK(weft_key_create(first, destroy_value, &key_of_closed));
  ASSERT(key_of_closed != key_early);
  test_close_runtime(first);
  weft_runtime_t *rt = test_open_runtime();
  for (int round = 0; round < 10; round++) {
    value_t v[2];
    memset(v, 0, sizeof v);
    ASSERT_EQ(test_join(test_spawn(rt, set_both_keys, v)), 0);
    ASSERT_EQ(atomic_load(&v[0].destroyed), 1);
    ASSERT_EQ(atomic_load(&v[1].destroyed), 1);
  }
  test_close_runtime(rt);
  ASSERT_OK(weft_key_delete(key_early));
  ASSERT_OK(weft_key_delete(key_of_closed));
  ASSERT_STATUS(WEFT_EINVAL, weft_local_set(key_early, NULL));
  return TEST_OK;
}

/* --- weft calls from thread-exit destructors ------------------------------------ */

typedef struct {
  weft_mutex_t m;
  weft_key_t key;
  pthread_key_t pkey;
  atomic_int weft_dtor_ok, weft_dtor_runs;
  atomic_int pthread_dtor_ok, pthread_dtor_runs;
} exit_calls_t;

static exit_calls_t exit_calls;

/* What a VM does when a thread goes away: take a lock to unlink the thread's data,
 * and survive a call that fails. */
static int weft_calls_work(void) {
  if (weft_mutex_lock(&exit_calls.m) != WEFT_OK) return 0;
  if (weft_mutex_unlock(&exit_calls.m) != WEFT_OK) return 0;
  if (weft_mutex_unlock(&exit_calls.m) != WEFT_EPERM) return 0;
  if (strstr(weft_last_error(), "weft_mutex_unlock") == NULL) return 0;
  int x;
  if (weft_local_set(exit_calls.key, NULL) != WEFT_OK) return 0;
  (void)x;
  return 1;
}

static void weft_key_dtor_calls_weft(void *value) {
  (void)value;
  atomic_fetch_add(&exit_calls.weft_dtor_runs, 1);
  if (weft_calls_work()) atomic_fetch_add(&exit_calls.weft_dtor_ok, 1);
}

static void pthread_key_dtor_calls_weft(void *value) {
  (void)value;
  atomic_fetch_add(&exit_calls.pthread_dtor_runs, 1);
  if (weft_calls_work()) atomic_fetch_add(&exit_calls.pthread_dtor_ok, 1);
}

static void *thread_with_exit_calls(void *arg) {
  (void)arg;
  /* Use weft on this thread first, so that its weft state exists and is torn down at
   * exit, then leave values for both kinds of destructor. */
  if (weft_mutex_lock(&exit_calls.m) != WEFT_OK || weft_mutex_unlock(&exit_calls.m) != WEFT_OK) return (void *)1;
  if (weft_mutex_unlock(&exit_calls.m) != WEFT_EPERM) return (void *)2;
  if (weft_local_set(exit_calls.key, &exit_calls) != WEFT_OK) return (void *)3;
  if (pthread_setspecific(exit_calls.pkey, &exit_calls) != 0) return (void *)4;
  return NULL;
}

static void *thread_sets_only_pthread_key(void *arg) {
  (void)arg;
  return pthread_setspecific(exit_calls.pkey, &exit_calls) == 0 ? NULL : (void *)1;
}

/* Destructors that run when a host thread exits (weft's own key destructors, and
 * pthread key destructors, which glibc runs after every thread_local is gone) may call
 * weft: locks work, failures return their codes, nothing aborts. */
TEST_IMPL(keys_thread_exit_calls_weft) {
  weft_runtime_t *rt = test_open_runtime();
  test_skip_on_one_thread(rt, "needs host threads (pthread_create) calling weft");
  ASSERT_OK(weft_mutex_init(rt, &exit_calls.m, 0));
  ASSERT_OK(weft_key_create(rt, weft_key_dtor_calls_weft, &exit_calls.key));
  ASSERT(pthread_key_create(&exit_calls.pkey, pthread_key_dtor_calls_weft) == 0);
  for (int i = 0; i < 3; i++) {
    pthread_t thread;
    void *ret = (void *)0x1;
    ASSERT(pthread_create(&thread, NULL, thread_with_exit_calls, NULL) == 0);
    ASSERT(pthread_join(thread, &ret) == 0);
    ASSERT(ret == NULL);
  }
  ASSERT_EQ(atomic_load(&exit_calls.weft_dtor_runs), 3);
  ASSERT_EQ(atomic_load(&exit_calls.weft_dtor_ok), 3);
  ASSERT_EQ(atomic_load(&exit_calls.pthread_dtor_runs), 3);
  ASSERT_EQ(atomic_load(&exit_calls.pthread_dtor_ok), 3);
  /* A thread whose first weft call is made from a pthread key destructor. */
  pthread_t thread;
  ASSERT(pthread_create(&thread, NULL, thread_sets_only_pthread_key, NULL) == 0);
  ASSERT(pthread_join(thread, NULL) == 0);
  ASSERT_EQ(atomic_load(&exit_calls.pthread_dtor_runs), 4);
  ASSERT_EQ(atomic_load(&exit_calls.pthread_dtor_ok), 4);
  ASSERT_OK(weft_mutex_destroy(&exit_calls.m));
  test_close_runtime(rt);
  return TEST_OK;
}

/* weft_task_state(): each task reads its own state pointer, inline, across many yields
 * (green tasks move between workers meanwhile; sim switches tasks on one thread); a
 * task that never set one reads NULL; a host thread has its own. */
enum { STATE_TASKS = 6, STATE_ROUNDS = 300 };

typedef struct {
  weft_runtime_t *rt;
  int mine;
} state_arg_t;

static int32_t keep_own_state(void *arg, void **result) {
  (void)result;
  state_arg_t *a = arg;
  if (weft_task_state() != NULL || weft_task_state_get() != NULL) return 1;
  if (weft_task_set_state(&a->mine) != WEFT_OK) return 2;
  for (int i = 0; i < STATE_ROUNDS; i++) {
    if (weft_task_state() != &a->mine || weft_task_state_get() != &a->mine) return 3;
    if (weft_yield(a->rt) != WEFT_OK) return 4;
  }
  if (weft_task_set_state(NULL) != WEFT_OK || weft_task_state() != NULL) return 5;
  return 0;
}

TEST_IMPL(task_state_follows_the_task) {
  weft_runtime_t *rt = test_open_runtime();
  int main_state;
  ASSERT_OK(weft_task_set_state(&main_state));
  ASSERT(weft_task_state() == &main_state);
  state_arg_t args[STATE_TASKS];
  weft_task_t *tasks[STATE_TASKS];
  for (int i = 0; i < STATE_TASKS; i++) {
    args[i] = (state_arg_t){rt, i};
    tasks[i] = test_spawn(rt, keep_own_state, &args[i]);
  }
  for (int i = 0; i < STATE_TASKS; i++) ASSERT_EQ(test_join(tasks[i]), 0);
  ASSERT(weft_task_state() == &main_state); /* the host thread's, untouched */
  ASSERT_OK(weft_task_set_state(NULL));
  ASSERT(weft_task_state() == NULL && weft_task_state_get() == NULL);
  test_close_runtime(rt);
  return TEST_OK;
}
