/*
 * The pthread platform's internals, shared by its files:
 *
 *   plugin.c   the table, weft_platform_entry, the clock, error details
 *   wait.c     the one way this plugin waits, and how cancel() wakes a waiter
 *   task.c     tasks (one OS thread each), join, detach, cancel, sleep, yield
 *   sync.c     mutexes, condition variables, rwlocks in host memory
 *   chan.c     channels and select
 *   io.c       waits for fd readiness (fd_wait, fd_forget)
 *
 * It includes weft_platform.h and nothing else of weft. Everything here is hidden
 * (-fvisibility=hidden): the only exported symbol is weft_platform_entry.
 */
#ifndef WEFT_PTHREAD_PLUGIN_H
#define WEFT_PTHREAD_PLUGIN_H

/* pthread_mutex_clocklock, pthread_rwlockattr_setkind_np, pthread_setname_np. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <pthread.h>
#include <stdint.h>

#include "weft_platform.h"

/* The runtime's services, kept by weft_platform_entry (static, valid for ever). */
extern const weft_host_t *host;

/* --- plugin.c ------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds: the clock of every deadline. */
int64_t pt_clock(void);
/* True when `deadline` means "do not wait" (at or before now; never WEFT_FOREVER). */
int pt_expired(int64_t deadline);
/* Turns the failed pthread call `call` (error number `err`) into a weft status and
 * hands its strerror text to the runtime for weft_last_error(). */
weft_status_t pt_fail(const char *call, int err);

/* --- wait.c --------------------------------------------------------------------- */

/* A place to wait: a mutex and a CLOCK_MONOTONIC condition. A waker changes what the
 * waiters look at with `lock` held, then broadcasts `cond`. */
typedef struct waitq {
  pthread_mutex_t lock;
  pthread_cond_t cond;
} waitq_t;

/* What cancel() needs to wake a task: the queue it waits on, if any, or the eventfd of
 * the fd_wait it is in (io.c). */
typedef struct waiter {
  pthread_mutex_t lock; /* guards `on` and `io_wake`; taken before any queue's lock */
  waitq_t *on;
  int io_wake; /* -1 when the task is not in fd_wait */
} waiter_t;

/* The queue for waits on the object at `addr` (shared by address, never freed). */
waitq_t *waitq_for(const void *addr);
/* Creates the shared queues; 0 or an error number. Called once, by the entry. */
int wait_setup(void);

/* The waiter of the calling thread: set by a task's thread while it runs the task,
 * NULL on threads the host made (they are never cancelled). */
void wait_set_current(waiter_t *w);
/* Records q as the queue the caller waits on (for cancel), then locks q. */
void wait_begin(waitq_t *q);
/* Unlocks q, then clears the record. */
void wait_end(waitq_t *q);
/* With q locked by wait_begin: WEFT_ECANCELED if the caller is cancelled,
 * WEFT_ETIMEDOUT if the deadline has passed, else waits once for a broadcast (or the
 * deadline, or a spurious wake-up) and returns WEFT_OK: look again. */
weft_status_t wait_once(waitq_t *q, int64_t deadline);
/* Wakes the task owning `w` if it waits (its cancelled flag is already set). */
void waiter_wake(waiter_t *w);
/* Records `wake` as the eventfd cancel() writes to while the calling task waits on an
 * fd; -1 clears the record (before the eventfd is closed). No-op on host threads. */
void wait_set_io_wake(int wake);

/* --- io.c ----------------------------------------------------------------------- */

/* The waiting fd_wait calls of one runtime, by fd, for fd_forget. */
#define IO_BUCKETS 64
typedef struct io_waiter io_waiter_t;
typedef struct io_registry {
  pthread_mutex_t lock;
  io_waiter_t *buckets[IO_BUCKETS];
} io_registry_t;
/* 0 or an error number. */
int io_registry_init(io_registry_t *r);
void io_registry_destroy(io_registry_t *r);

/* The plugin's state per runtime: threads and the clock are the process's, so only
 * the IO waiters are kept per runtime (fd_forget in one runtime leaves another's
 * waiters alone). */
struct weft_plat_rt_t {
  io_registry_t io;
};

/* A condition variable is a sequence number; its waiters wait on the shared queue of
 * its address, like every wait of this plugin (see wait.c). Not a pthread_cond_t: a
 * task waiting in one can only be woken without losing the wake-up by a thread holding
 * the waiter's mutex, and cancel() cannot take it (its caller may hold it already, and
 * the host may destroy it meanwhile). `seq` is read and written under the queue's lock. */
typedef struct {
  uint32_t seq;
} pt_cond_t;

/* --- the table's members (task.c, sync.c, chan.c) ---------------------------------- */

weft_status_t pt_yield_now(weft_plat_rt_t *rt);
weft_status_t pt_sleep_until(weft_plat_rt_t *rt, int64_t deadline);
weft_status_t pt_spawn(weft_plat_rt_t *rt, void *ctx, const weft_plat_spawn_t *opts, weft_plat_task_t **out);
weft_status_t pt_join(weft_plat_task_t *task, int64_t deadline);
weft_status_t pt_detach(weft_plat_task_t *task);
weft_status_t pt_cancel(weft_plat_task_t *task);

weft_status_t pt_mutex_init(weft_plat_rt_t *rt, void *obj);
weft_status_t pt_mutex_destroy(void *obj);
weft_status_t pt_mutex_lock(void *obj);
weft_status_t pt_mutex_trylock(void *obj);
weft_status_t pt_mutex_lock_until(void *obj, int64_t deadline);
weft_status_t pt_mutex_unlock(void *obj);

weft_status_t pt_cond_init(weft_plat_rt_t *rt, void *obj);
weft_status_t pt_cond_destroy(void *obj);
weft_status_t pt_cond_wait_until(void *cond, void *mutex, int64_t deadline);
weft_status_t pt_cond_signal(void *obj);
weft_status_t pt_cond_broadcast(void *obj);

weft_status_t pt_rwlock_init(weft_plat_rt_t *rt, void *obj);
weft_status_t pt_rwlock_destroy(void *obj);
weft_status_t pt_rwlock_read_lock(void *obj);
weft_status_t pt_rwlock_read_lock_until(void *obj, int64_t deadline);
weft_status_t pt_rwlock_try_read_lock(void *obj);
weft_status_t pt_rwlock_write_lock(void *obj);
weft_status_t pt_rwlock_write_lock_until(void *obj, int64_t deadline);
weft_status_t pt_rwlock_try_write_lock(void *obj);
weft_status_t pt_rwlock_unlock(void *obj);

weft_status_t pt_chan_new(weft_plat_rt_t *rt, size_t elem_size, size_t capacity, weft_plat_chan_t **out);
weft_status_t pt_chan_send(weft_plat_chan_t *ch, const void *elem, int64_t deadline);
weft_status_t pt_chan_recv(weft_plat_chan_t *ch, void *out, int64_t deadline);
weft_status_t pt_chan_close(weft_plat_chan_t *ch);
size_t pt_chan_len(weft_plat_chan_t *ch);
void pt_chan_free(weft_plat_chan_t *ch, weft_plat_elem_drop_fn drop, void *ud);
weft_status_t pt_fd_wait(weft_plat_rt_t *rt, int32_t fd, uint32_t events, int64_t deadline, uint32_t *revents);
weft_status_t pt_fd_forget(weft_plat_rt_t *rt, int32_t fd);

weft_status_t pt_chan_select(const weft_plat_select_case_t *cases, size_t n, int64_t deadline, uint32_t flags,
                             size_t *chosen);

#endif
