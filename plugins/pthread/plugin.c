/*
 * The pthread platform: every task is an OS thread, every wait a pthread wait. It is
 * weft's reference plugin in plain C and the template for writing one (see
 * docs/plugins.md). This file holds what every plugin has: the table, the entry
 * function, the runtime state and the clock.
 */
#include "plugin.h" /* first: it selects the POSIX and GNU interfaces */

#include <errno.h>
#include <stdio.h>
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
    case ENOMEM: return WEFT_ENOMEM;
    case EINVAL: return WEFT_EINVAL;
    case EPERM: return WEFT_EPERM;
    case EBUSY: return WEFT_EBUSY;
    case EDEADLK: return WEFT_EDEADLK;
    default: return WEFT_EINTERNAL;
  }
}

/* This platform keeps no state per runtime: threads and the clock are the process's.
 * A plugin that has some allocates it in runtime_open and frees it in runtime_close
 * (which the runtime calls once none of the runtime's tasks runs). */
struct weft_plat_rt_t {
  char unused;
};
static weft_plat_rt_t process_wide;

static weft_status_t pt_runtime_open(const weft_plat_config_t *cfg, weft_plat_rt_t **out) {
  (void)cfg; /* workers and seed are for M:N and deterministic platforms */
  *out = &process_wide;
  return WEFT_OK;
}

static weft_status_t pt_runtime_close(weft_plat_rt_t *rt) {
  (void)rt;
  return WEFT_OK;
}

static int64_t pt_now(weft_plat_rt_t *rt) {
  (void)rt;
  return pt_clock();
}

/* The table is static and constant: the runtime keeps a pointer for the life of the
 * process (a plugin is never unloaded). Every member of ABI 1 is set: a function the
 * platform could not offer would still be present and answer WEFT_ENOTSUP. */
static const weft_platform_t table = {
    .magic = WEFT_PLATFORM_MAGIC,
    /* This plugin implements plugin ABI version 1 (the members up to chan_select), and
     * says so: it is the suite's proof that version-1 plugins keep loading. A plugin
     * of the current version sets sizeof(weft_platform_t) and WEFT_PLATFORM_ABI_VERSION. */
    .struct_size = offsetof(weft_platform_t, fd_wait),
    .abi_version = 1,
    .name = "pthread",
    .version = "1.0.0",
    /* Threads are OS threads and cancel() wakes blocked tasks: nothing more. */
    .caps = WEFT_CAP_OS_THREADS | WEFT_CAP_CANCEL,
    .mutex_size = sizeof(pthread_mutex_t),
    .cond_size = sizeof(pt_cond_t),
    .rwlock_size = sizeof(pthread_rwlock_t),
    .sync_align = _Alignof(pthread_rwlock_t),
    .runtime_open = pt_runtime_open,
    .runtime_close = pt_runtime_close,
    .now = pt_now,
    .yield_now = pt_yield_now,
    .sleep_until = pt_sleep_until,
    .spawn = pt_spawn,
    .join = pt_join,
    .detach = pt_detach,
    .cancel = pt_cancel,
    .mutex_init = pt_mutex_init,
    .mutex_destroy = pt_mutex_destroy,
    .mutex_lock = pt_mutex_lock,
    .mutex_trylock = pt_mutex_trylock,
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
};

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_error;
static void setup(void) { setup_error = wait_setup(); }

/* The one exported symbol (the build hides everything else). */
__attribute__((visibility("default"))) const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  /* A host whose services table lacks a member this plugin calls is refused: NULL
   * makes the loader report it. A newer, larger table is fine. */
  if (h == NULL || h->struct_size < offsetof(weft_host_t, cancel_pending) + sizeof h->cancel_pending) return NULL;
  pthread_once(&setup_once, setup);
  if (setup_error != 0) return NULL;
  host = h;
  return &table;
}
