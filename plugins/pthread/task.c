/*
 * Tasks: one joinable OS thread each.
 *
 * A task's handle is shared by the runtime, which gives it back with detach() exactly
 * once, and by the task's thread, which lets go when the task has ended; the last of
 * the two frees it. join() waits for `done`, not for the thread, so that it can give
 * up at a deadline or on cancellation; pthread_join only reaps a thread whose task has
 * already ended.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct weft_plat_task_t {
  pthread_t thread;
  void *ctx;       /* the runtime's, handed back to host->task_run */
  waiter_t waiter; /* how cancel() reaches the task's waits */
  int done;        /* host->task_run has returned; under waitq_for(task)->lock */
  int reaped;      /* pthread_join'ed; touched only through the runtime's handle */
  atomic_int refs; /* the runtime's handle and the thread */
};

/* Smaller stacks could not even run the runtime's bookkeeping around the task. */
#define MIN_STACK (64 * 1024)

static void task_release(weft_plat_task_t *t) {
  if (atomic_fetch_sub(&t->refs, 1) == 1) {
    pthread_mutex_destroy(&t->waiter.lock);
    free(t);
  }
}

static void *task_main(void *arg) {
  weft_plat_task_t *t = arg;
  wait_set_current(&t->waiter);
  /* The whole task: the runtime registers it, runs its hooks, its function and its
   * task-local destructors, and unregisters it. */
  host->task_run(t->ctx);
  wait_set_current(NULL);
  /* The runtime may be closing now: touch nothing of it, only the handle. */
  waitq_t *q = waitq_for(t);
  pthread_mutex_lock(&q->lock);
  t->done = 1;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->lock);
  task_release(t);
  return NULL;
}

/* Starts t's thread; 0 or an error number. */
static int start_thread(weft_plat_task_t *t, const weft_plat_spawn_t *opts) {
  pthread_attr_t attr;
  int rc = pthread_attr_init(&attr);
  if (rc != 0) return rc;
  if (opts->stack_size != 0)
    rc = pthread_attr_setstacksize(&attr, opts->stack_size < MIN_STACK ? MIN_STACK : opts->stack_size);
  if (rc == 0) rc = pthread_create(&t->thread, &attr, task_main, t);
  pthread_attr_destroy(&attr);
#ifdef __GLIBC__
  if (rc == 0 && opts->name != NULL) {
    char name[16]; /* Linux keeps 15 characters */
    snprintf(name, sizeof name, "%s", opts->name);
    pthread_setname_np(t->thread, name); /* for debuggers only: a failure does not matter */
  }
#endif
  return rc;
}

weft_status_t pt_spawn(weft_plat_rt_t *rt, void *ctx, const weft_plat_spawn_t *opts, weft_plat_task_t **out) {
  (void)rt;
  weft_plat_task_t *t = calloc(1, sizeof *t);
  if (t == NULL) return pt_fail("cannot allocate a task", ENOMEM);
  t->ctx = ctx;
  t->waiter.io_wake = -1;
  atomic_init(&t->refs, 2);
  int rc = pthread_mutex_init(&t->waiter.lock, NULL);
  if (rc != 0) {
    free(t);
    return pt_fail("pthread_mutex_init", rc);
  }
  rc = start_thread(t, opts);
  if (rc != 0) {
    pthread_mutex_destroy(&t->waiter.lock);
    free(t);
    weft_status_t st = pt_fail("cannot start an OS thread", rc); /* EAGAIN: WEFT_ENOMEM */
    /* The attributes hold a stack size, which pthread_attr_setstacksize accepted, and
     * nothing else: an EINVAL here is a stack that could not be mapped (valgrind's mmap
     * refuses an impossible size with EINVAL where Linux says ENOMEM, and glibc passes
     * it on). The system could not make the thread: WEFT_ENOMEM, as on native. */
    return st == WEFT_EINVAL ? WEFT_ENOMEM : st;
  }
  *out = t;
  return WEFT_OK;
}

weft_status_t pt_join(weft_plat_task_t *t, int64_t deadline) {
  waitq_t *q = waitq_for(t);
  weft_status_t st = WEFT_OK;
  host->blocking_enter();
  wait_begin(q);
  while (!t->done && (st = wait_once(q, deadline)) == WEFT_OK) {
  }
  wait_end(q);
  if (st == WEFT_OK && !t->reaped) {
    pthread_join(t->thread, NULL); /* the task has ended: this only reaps the thread */
    t->reaped = 1;
  }
  host->blocking_leave();
  return st;
}

weft_status_t pt_detach(weft_plat_task_t *t) {
  if (!t->reaped) pthread_detach(t->thread); /* the thread runs on, then frees itself */
  task_release(t);
  return WEFT_OK;
}

weft_status_t pt_cancel(weft_plat_task_t *t) {
  waiter_wake(&t->waiter);
  return WEFT_OK;
}

/* The plugin claims WEFT_CAP_SCHED_YIELD: weft_yield's fast path makes this same call
 * itself. Keep the two the same. */
weft_status_t pt_yield_now(weft_plat_rt_t *rt) {
  (void)rt;
  sched_yield();
  return WEFT_OK;
}

/* Each thread sleeps on the queue of an address of its own: only cancel() wakes it
 * before its deadline (and, spuriously, wakers of addresses sharing the queue). */
static _Thread_local char sleeper;

weft_status_t pt_sleep_until(weft_plat_rt_t *rt, int64_t deadline) {
  (void)rt;
  waitq_t *q = waitq_for(&sleeper);
  weft_status_t st;
  host->blocking_enter();
  wait_begin(q);
  while ((st = wait_once(q, deadline)) == WEFT_OK) {
  }
  wait_end(q);
  host->blocking_leave();
  return st == WEFT_ETIMEDOUT ? WEFT_OK : st; /* reaching the deadline is the point */
}
