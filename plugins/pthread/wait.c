/*
 * How this plugin waits. Every wait (a condition wait, a sleep, a join, a channel call
 * waiting for its partner) is one loop on a wait queue, inside a blocking region:
 *
 *     host->blocking_enter();
 *     wait_begin(q);                                   records q, locks it
 *     while (!ready && (st = wait_once(q, deadline)) == WEFT_OK) {}
 *     wait_end(q);                                     unlocks q, clears the record
 *     host->blocking_leave();
 *
 * and every waker changes the state under q's lock, then broadcasts q.
 *
 * Cancellation. The runtime sets the task's cancelled flag, then calls cancel(). A task
 * records the queue it waits on (in its waiter, under the waiter's lock) before it
 * locks that queue, and asks host->cancel_pending() with the queue locked before each
 * wait; cancel() reads the record under the waiter's lock and broadcasts the queue under
 * the queue's lock. So either cancel() finds no record, and the task, recording later,
 * sees the flag when it asks; or cancel() gets the queue's lock before the task asks
 * (which then sees the flag) or once it really waits (pthread_cond_wait releases the
 * lock atomically), and the broadcast wakes it. No wake-up is lost, and cancel() needs
 * no lock of the host's (its caller may hold the very mutex the task waits with).
 *
 * Lock order: a waiter's lock, then a queue's lock; never the other way round. The
 * host's blocking_enter/leave are called with neither held: they may wait themselves,
 * through this plugin.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <string.h>
#include <time.h>
#include <unistd.h>

static int waitq_init(waitq_t *q) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc != 0) return rc;
  /* Deadlines are CLOCK_MONOTONIC: a wall-clock change must not move them. */
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(&q->cond, &attr);
  pthread_condattr_destroy(&attr);
  if (rc != 0) return rc;
  rc = pthread_mutex_init(&q->lock, NULL);
  if (rc != 0) pthread_cond_destroy(&q->cond);
  return rc;
}

/* Every wait parks on one of these queues, picked by the address waited on (a
 * condition's bytes, a joined task, a sleeping thread, a waiting channel call), as a
 * kernel hashes futexes. Addresses that share a queue only cause spurious wake-ups,
 * which every wait loop absorbs. The queues are never freed, so cancel() can always lock the one it found. */
#define SHARED_QUEUES 64
static waitq_t shared[SHARED_QUEUES];

/* fork(): the child has only the forking thread. It must not inherit a queue's lock
 * held by a thread it does not have, nor a condition that still counts the parent's
 * waiters (a broadcast on it never returns in glibc). So every queue is locked across
 * the fork, unlocked in the parent and made anew in the child. No thread holds a queue
 * lock while it waits for anything but that lock's condition. */
static void lock_queues(void) {
  for (int i = 0; i < SHARED_QUEUES; i++) pthread_mutex_lock(&shared[i].lock);
}

static void unlock_queues(void) {
  for (int i = SHARED_QUEUES - 1; i >= 0; i--) pthread_mutex_unlock(&shared[i].lock);
}

static _Thread_local waiter_t *current;

/* The child also renews the forking thread's own waiter lock: a cancel() by another
 * thread of the parent may have held it at the fork, and a wait of the child (on a
 * runtime it opens anew) takes it first. */
static void renew_queues(void) {
  for (int i = 0; i < SHARED_QUEUES; i++) {
    memset(&shared[i], 0, sizeof shared[i]);
    (void)waitq_init(&shared[i]); /* fresh objects: glibc's inits cannot fail here */
  }
  if (current != NULL) {
    memset(&current->lock, 0, sizeof current->lock);
    (void)pthread_mutex_init(&current->lock, NULL);
    current->on = NULL;
  }
}

int wait_setup(void) {
  for (int i = 0; i < SHARED_QUEUES; i++) {
    int rc = waitq_init(&shared[i]);
    if (rc != 0) return rc;
  }
  return pthread_atfork(lock_queues, unlock_queues, renew_queues);
}

waitq_t *waitq_for(const void *addr) {
  uintptr_t a = (uintptr_t)addr >> 3; /* sync objects are 8-aligned */
  return &shared[(a ^ (a >> 6) ^ (a >> 12)) % SHARED_QUEUES];
}

void wait_set_current(waiter_t *w) { current = w; }

void wait_begin(waitq_t *q) {
  waiter_t *me = current;
  if (me != NULL) {
    pthread_mutex_lock(&me->lock);
    me->on = q;
    pthread_mutex_unlock(&me->lock);
  }
  pthread_mutex_lock(&q->lock);
}

void wait_end(waitq_t *q) {
  pthread_mutex_unlock(&q->lock);
  waiter_t *me = current;
  if (me != NULL) {
    pthread_mutex_lock(&me->lock);
    me->on = NULL;
    pthread_mutex_unlock(&me->lock);
  }
}

weft_status_t wait_once(waitq_t *q, int64_t deadline) {
  if (host->cancel_pending()) return WEFT_ECANCELED;
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;
  if (deadline == WEFT_FOREVER) {
    pthread_cond_wait(&q->cond, &q->lock);
  } else {
    struct timespec until = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
    pthread_cond_timedwait(&q->cond, &q->lock, &until); /* a timeout shows next time */
  }
  return WEFT_OK;
}

void wait_set_io_wake(int wake) {
  waiter_t *me = current;
  if (me != NULL) {
    pthread_mutex_lock(&me->lock);
    me->io_wake = wake;
    pthread_mutex_unlock(&me->lock);
  }
}

void waiter_wake(waiter_t *w) {
  pthread_mutex_lock(&w->lock);
  if (w->io_wake >= 0) { /* in fd_wait: its poll watches this eventfd (see io.c) */
    uint64_t one = 1;
    if (write(w->io_wake, &one, sizeof one) < 0) { /* full counter: readable already */
    }
  }
  if (w->on != NULL) {
    pthread_mutex_lock(&w->on->lock);
    pthread_cond_broadcast(&w->on->cond);
    pthread_mutex_unlock(&w->on->lock);
  }
  pthread_mutex_unlock(&w->lock);
}
