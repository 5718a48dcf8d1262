/*
 * The pthread platform: every task is an OS thread, every wait a pthread wait. It is
 * weft's reference plugin in plain C and the template for writing one (see
 * docs/plugins.md). This file holds what every plugin has: the table, the entry
 * function, the runtime state and the clock.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const weft_host_t *host;

int64_t pt_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int pt_expired(int64_t deadline) { return deadline != WEFT_FOREVER && deadline <= pt_clock(); }

weft_status_t pt_fail(const char *call, int err) {
  char detail[160];
  snprintf(detail, sizeof detail, "%s: %s", call, strerror(err));
  host->set_error_detail(detail); /* copied by the runtime */
  switch (err) {
    case EAGAIN: /* pthread_create: out of threads or memory */
    case EMFILE: /* out of fds (eventfd), for the process ... */
    case ENFILE: /* ... or the system */
    case ENOMEM: return WEFT_ENOMEM;
    case EINVAL: return WEFT_EINVAL;
    case EPERM: return WEFT_EPERM;
    case EBUSY: return WEFT_EBUSY;
    case EDEADLK: return WEFT_EDEADLK;
    default: return WEFT_EINTERNAL;
  }
}

/* The state per runtime (struct weft_plat_rt_t, in plugin.h) is allocated here and
 * freed in runtime_close, which the runtime calls once none of the runtime's tasks
 * runs. */
static weft_status_t pt_runtime_open(const weft_plat_config_t *cfg, weft_plat_rt_t **out) {
  (void)cfg; /* workers and seed are for M:N and deterministic platforms */
  weft_plat_rt_t *rt = malloc(sizeof *rt);
  if (rt == NULL) return pt_fail("cannot allocate the runtime state", ENOMEM);
  int rc = io_registry_init(&rt->io);
  if (rc != 0) {
    free(rt);
    return pt_fail("pthread_mutex_init", rc);
  }
  *out = rt;
  return WEFT_OK;
}

static weft_status_t pt_runtime_close(weft_plat_rt_t *rt) {
  io_registry_destroy(&rt->io);
  free(rt);
  return WEFT_OK;
}

static int64_t pt_now(weft_plat_rt_t *rt) {
  (void)rt;
  return pt_clock();
}

/* The table is static and constant: the runtime keeps a pointer for the life of the
 * process (a plugin is never unloaded). Every member of its ABI version is set: a function the
 * platform could not offer would still be present and answer WEFT_ENOTSUP. */
static const weft_platform_t table = {
    .magic = WEFT_PLATFORM_MAGIC,
    /* Plugin ABI version 2. Of its optional members only the timed rwlock locks are set:
     * an M:N platform's notifications (region_enter ... stack_bounds) are not needed by
     * a thread per task, and without park / unpark the runtime parks over this table's
     * mutexes and conditions. (The loader tests prove that version-1 plugins, and
     * version-2 tables that end before the optional members, still load.) */
    .struct_size = sizeof(weft_platform_t),
    .abi_version = WEFT_PLATFORM_ABI_VERSION,
    .name = "pthread",
    .version = "1.0.0",
    /* Threads are OS threads and cancel() wakes blocked tasks: nothing more. */
    .caps = WEFT_CAP_OS_THREADS | WEFT_CAP_CANCEL | WEFT_CAP_MONOTONIC_CLOCK | WEFT_CAP_SCHED_YIELD,
    .mutex_size = sizeof(pthread_mutex_t),
    .cond_size = sizeof(pt_cond_t),
    .rwlock_size = sizeof(pthread_rwlock_t),
    .sync_align = _Alignof(pthread_rwlock_t),
    .runtime_open = pt_runtime_open,
    .runtime_close = pt_runtime_close,
    .now = pt_now,
    .yield = pt_yield_now,
    .sleep_until = pt_sleep_until,
    .spawn = pt_spawn,
    .join = pt_join,
    .detach = pt_detach,
    .cancel = pt_cancel,
    .mutex_init = pt_mutex_init,
    .mutex_destroy = pt_mutex_destroy,
    .mutex_lock = pt_mutex_lock,
    .mutex_try_lock = pt_mutex_trylock,
    .mutex_lock_until = pt_mutex_lock_until,
    .mutex_unlock = pt_mutex_unlock,
    .cond_init = pt_cond_init,
    .cond_destroy = pt_cond_destroy,
    .cond_wait_until = pt_cond_wait_until,
    .cond_signal = pt_cond_signal,
    .cond_broadcast = pt_cond_broadcast,
    .rwlock_init = pt_rwlock_init,
    .rwlock_destroy = pt_rwlock_destroy,
    .rwlock_read_lock = pt_rwlock_read_lock,
    .rwlock_try_read_lock = pt_rwlock_try_read_lock,
    .rwlock_write_lock = pt_rwlock_write_lock,
    .rwlock_try_write_lock = pt_rwlock_try_write_lock,
    .rwlock_read_unlock = pt_rwlock_unlock,
    .rwlock_write_unlock = pt_rwlock_unlock,
    .chan_new = pt_chan_new,
    .chan_send = pt_chan_send,
    .chan_recv = pt_chan_recv,
    .chan_close = pt_chan_close,
    .chan_len = pt_chan_len,
    .chan_free = pt_chan_free,
    .chan_select = pt_chan_select,
    /* ABI 2 and later. */
    .fd_wait = pt_fd_wait,
    .fd_forget = pt_fd_forget,
    /* ABI 2, optional. */
    .rwlock_read_lock_until = pt_rwlock_read_lock_until,
    .rwlock_write_lock_until = pt_rwlock_write_lock_until,
};

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_error;
static void setup(void) { setup_error = wait_setup(); }

/* The one exported symbol (declared with WEFT_PLATFORM_EXPORT in weft_platform.h; the
 * build hides everything else). */
const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  /* A host whose services table lacks a member this plugin calls is refused: NULL
   * makes the loader report it. A newer, larger table is fine. */
  if (h == NULL || !WEFT_HOST_HAS(h, cancel_pending)) return NULL;
  pthread_once(&setup_once, setup);
  if (setup_error != 0) return NULL;
  host = h;
  return &table;
}
