/*
 * Mutexes, condition variables and rwlocks, in the plugin bytes of the host's
 * weft_mutex_t / weft_cond_t / weft_rwlock_t (8-aligned, zeroed, never moved while in
 * use). Nothing is allocated per object.
 *
 * The runtime already checks owners, recursion and misuse, so a mutex here is a plain
 * pthread mutex. Locks try once without ceremony and enter a blocking region only when
 * they must wait.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <assert.h>
#include <errno.h>
#include <time.h>

/* The room the runtime leaves (the table reports the real sizes; the loader checks). */
static_assert(sizeof(pthread_mutex_t) <= WEFT_PLATFORM_MUTEX_BYTES, "pthread_mutex_t does not fit a weft_mutex_t");
static_assert(sizeof(pt_cond_t) <= WEFT_PLATFORM_COND_BYTES, "pt_cond_t does not fit a weft_cond_t");
static_assert(sizeof(pthread_rwlock_t) <= WEFT_PLATFORM_RWLOCK_BYTES, "pthread_rwlock_t does not fit a weft_rwlock_t");
static_assert(_Alignof(pthread_mutex_t) <= WEFT_PLATFORM_SYNC_ALIGN && _Alignof(pthread_rwlock_t) <= WEFT_PLATFORM_SYNC_ALIGN,
              "weft aligns sync objects to 8 bytes only");

/* A pthread result as a weft status: 0 is WEFT_OK, EBUSY (a try that failed) is
 * WEFT_EBUSY without further detail, anything else a failure with its strerror. */
static weft_status_t status_of(const char *call, int rc) {
  if (rc == 0) return WEFT_OK;
  if (rc == EBUSY) return WEFT_EBUSY;
  return pt_fail(call, rc);
}

/* --- mutexes ---------------------------------------------------------------------- */

weft_status_t pt_mutex_init(weft_plat_rt_t *rt, void *obj) {
  (void)rt;
  return status_of("pthread_mutex_init", pthread_mutex_init(obj, NULL));
}

weft_status_t pt_mutex_destroy(void *obj) { return status_of("pthread_mutex_destroy", pthread_mutex_destroy(obj)); }

weft_status_t pt_mutex_lock(void *obj) {
  if (pthread_mutex_trylock(obj) == 0) return WEFT_OK;
  host->blocking_enter();
  int rc = pthread_mutex_lock(obj);
  host->blocking_leave();
  return status_of("pthread_mutex_lock", rc);
}

weft_status_t pt_mutex_trylock(void *obj) { return status_of("pthread_mutex_trylock", pthread_mutex_trylock(obj)); }

weft_status_t pt_mutex_lock_until(void *obj, int64_t deadline) {
  if (pthread_mutex_trylock(obj) == 0) return WEFT_OK;
  if (deadline == WEFT_FOREVER) return pt_mutex_lock(obj);
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;
  struct timespec until = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
  host->blocking_enter();
  /* POSIX.1-2024, glibc 2.30: a deadline on CLOCK_MONOTONIC, like every deadline here. */
  int rc = pthread_mutex_clocklock(obj, CLOCK_MONOTONIC, &until);
  host->blocking_leave();
  return rc == ETIMEDOUT ? WEFT_ETIMEDOUT : status_of("pthread_mutex_clocklock", rc);
}

weft_status_t pt_mutex_unlock(void *obj) { return status_of("pthread_mutex_unlock", pthread_mutex_unlock(obj)); }

/* --- condition variables -------------------------------------------------------------- */

weft_status_t pt_cond_init(weft_plat_rt_t *rt, void *obj) {
  (void)rt;
  ((pt_cond_t *)obj)->seq = 0;
  return WEFT_OK;
}

weft_status_t pt_cond_destroy(void *obj) {
  (void)obj;
  return WEFT_OK;
}

weft_status_t pt_cond_wait_until(void *cond, void *mutex, int64_t deadline) {
  pt_cond_t *c = cond;
  waitq_t *q = waitq_for(c);
  weft_status_t st;
  host->blocking_enter();
  wait_begin(q);
  /* Read under the queue's lock, which we hold until we wait: a signal sent once the
   * mutex is released changes `seq` and broadcasts only when we are waiting. */
  uint32_t seen = c->seq;
  pthread_mutex_unlock(mutex);
  while ((st = wait_once(q, deadline)) == WEFT_OK && c->seq == seen) {
  }
  wait_end(q);
  pthread_mutex_lock(mutex); /* whatever the outcome, the caller gets its mutex back */
  host->blocking_leave();
  return st;
}

/* Waiters of other conditions may share the queue, so a pthread_cond_signal could wake
 * the wrong one: signal wakes every waiter of this condition, which the ABI allows
 * (spurious wake-ups). */
weft_status_t pt_cond_signal(void *obj) { return pt_cond_broadcast(obj); }

weft_status_t pt_cond_broadcast(void *obj) {
  pt_cond_t *c = obj;
  waitq_t *q = waitq_for(c);
  pthread_mutex_lock(&q->lock);
  c->seq++;
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->lock);
  return WEFT_OK;
}

/* --- rwlocks ----------------------------------------------------------------------- */

weft_status_t pt_rwlock_init(weft_plat_rt_t *rt, void *obj) {
  (void)rt;
  pthread_rwlockattr_t attr;
  int rc = pthread_rwlockattr_init(&attr);
  if (rc != 0) return pt_fail("pthread_rwlockattr_init", rc);
#ifdef __GLIBC__
  /* glibc prefers readers by default, which lets a stream of readers starve a writer:
   * once a writer waits, new readers queue behind it. (POSIX leaves the policy to the
   * implementation: check yours.) */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
#endif
  rc = pthread_rwlock_init(obj, &attr);
  pthread_rwlockattr_destroy(&attr);
  return status_of("pthread_rwlock_init", rc);
}

weft_status_t pt_rwlock_destroy(void *obj) { return status_of("pthread_rwlock_destroy", pthread_rwlock_destroy(obj)); }

weft_status_t pt_rwlock_read_lock(void *obj) {
  if (pthread_rwlock_tryrdlock(obj) == 0) return WEFT_OK;
  host->blocking_enter();
  int rc = pthread_rwlock_rdlock(obj);
  host->blocking_leave();
  return status_of("pthread_rwlock_rdlock", rc);
}

/* POSIX.1-2024, glibc 2.30: deadlines on CLOCK_MONOTONIC, like every deadline here. */
weft_status_t pt_rwlock_read_lock_until(void *obj, int64_t deadline) {
  if (pthread_rwlock_tryrdlock(obj) == 0) return WEFT_OK;
  if (deadline == WEFT_FOREVER) return pt_rwlock_read_lock(obj);
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;
  struct timespec until = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
  host->blocking_enter();
  int rc = pthread_rwlock_clockrdlock(obj, CLOCK_MONOTONIC, &until);
  host->blocking_leave();
  return rc == ETIMEDOUT ? WEFT_ETIMEDOUT : status_of("pthread_rwlock_clockrdlock", rc);
}

weft_status_t pt_rwlock_try_read_lock(void *obj) {
  int rc = pthread_rwlock_tryrdlock(obj);
  return rc == EAGAIN ? WEFT_EBUSY : status_of("pthread_rwlock_tryrdlock", rc); /* EAGAIN: too many readers */
}

weft_status_t pt_rwlock_write_lock(void *obj) {
  if (pthread_rwlock_trywrlock(obj) == 0) return WEFT_OK;
  host->blocking_enter();
  int rc = pthread_rwlock_wrlock(obj);
  host->blocking_leave();
  return status_of("pthread_rwlock_wrlock", rc);
}

weft_status_t pt_rwlock_write_lock_until(void *obj, int64_t deadline) {
  if (pthread_rwlock_trywrlock(obj) == 0) return WEFT_OK;
  if (deadline == WEFT_FOREVER) return pt_rwlock_write_lock(obj);
  if (pt_expired(deadline)) return WEFT_ETIMEDOUT;
  struct timespec until = {.tv_sec = deadline / 1000000000, .tv_nsec = deadline % 1000000000};
  host->blocking_enter();
  int rc = pthread_rwlock_clockwrlock(obj, CLOCK_MONOTONIC, &until);
  host->blocking_leave();
  return rc == ETIMEDOUT ? WEFT_ETIMEDOUT : status_of("pthread_rwlock_clockwrlock", rc);
}

weft_status_t pt_rwlock_try_write_lock(void *obj) {
  return status_of("pthread_rwlock_trywrlock", pthread_rwlock_trywrlock(obj));
}

weft_status_t pt_rwlock_unlock(void *obj) { return status_of("pthread_rwlock_unlock", pthread_rwlock_unlock(obj)); }
