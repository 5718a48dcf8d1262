/*
 * A platform plugin with exactly one defect, chosen when it is compiled
 * (-DFIXTURE_<DEFECT>), for the loader tests (loader.c). It is built against
 * weft_platform.h like any plugin, so the fixtures follow the table as it grows.
 * FIXTURE_OK has no defect: the loader accepts it (it is not a working platform: its
 * runtime_open answers WEFT_ENOTSUP).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, for FIXTURE_ENTRY_NULL's thread */
#include <stddef.h>
#include <string.h>

#include "weft_platform.h"

#define EXPORT __attribute__((visibility("default")))

/* What a correct plugin would declare; each defect overrides one. */
#define MAGIC WEFT_PLATFORM_MAGIC
#define STRUCT_SIZE sizeof(weft_platform_t)
#define ABI_VERSION WEFT_PLATFORM_ABI_VERSION
#define NAME "fixture"
#define MUTEX_SIZE 8
#define SYNC_ALIGN 8
#define COND_SIGNAL obj_call
#define FD_FORGET fd_forget
#define ENTRY weft_platform_entry
#define CAPS 0

#if defined(FIXTURE_BAD_MAGIC)
#undef MAGIC
#define MAGIC UINT64_C(0x0123456789abcdef)
#elif defined(FIXTURE_ABI_TOO_NEW)
#undef ABI_VERSION
#define ABI_VERSION (WEFT_PLATFORM_ABI_VERSION + 1)
#elif defined(FIXTURE_ABI_TOO_OLD)
#undef ABI_VERSION
#define ABI_VERSION (WEFT_PLATFORM_ABI_MIN - 1)
#elif defined(FIXTURE_SHORT_TABLE)
/* A table that ends just before the last member ABI 1 requires. */
#undef STRUCT_SIZE
#define STRUCT_SIZE offsetof(weft_platform_t, chan_select)
#elif defined(FIXTURE_NULL_MEMBER)
#undef COND_SIGNAL
#define COND_SIGNAL NULL
#elif defined(FIXTURE_NULL_IO_MEMBER)
/* ABI 2 requires the IO members. */
#undef FD_FORGET
#define FD_FORGET NULL
#elif defined(FIXTURE_ABI1)
/* A plugin built before ABI 2: its table ends after chan_select. Accepted. */
#undef ABI_VERSION
#define ABI_VERSION 1
#undef STRUCT_SIZE
#define STRUCT_SIZE offsetof(weft_platform_t, fd_wait)
#elif defined(FIXTURE_MUTEX_TOO_BIG)
#undef MUTEX_SIZE
#define MUTEX_SIZE (WEFT_PLATFORM_MUTEX_BYTES + 8)
#elif defined(FIXTURE_ALIGN_TOO_BIG)
#undef SYNC_ALIGN
#define SYNC_ALIGN (WEFT_PLATFORM_SYNC_ALIGN * 2)
#elif defined(FIXTURE_ABI2_NO_OPTIONAL)
/* Accepted: a version-2 table without the optional members (ends at fd_forget). */
#undef STRUCT_SIZE
#define STRUCT_SIZE offsetof(weft_platform_t, region_enter)
#elif defined(FIXTURE_BYTE_LOCK_DETERMINISTIC)
/* libweft would take its mutexes without the switch point a deterministic platform needs. */
#undef CAPS
#define CAPS (WEFT_CAP_MUTEX_BYTE | WEFT_CAP_DETERMINISTIC)
#undef MUTEX_SIZE
#define MUTEX_SIZE 1
#elif defined(FIXTURE_BYTE_LOCK_TOO_BIG)
/* A byte lock is the whole mutex: libweft keeps it beside its tag, in one byte. */
#undef CAPS
#define CAPS WEFT_CAP_MUTEX_BYTE
#elif defined(FIXTURE_MONOTONIC_VIRTUAL)
#undef CAPS
#define CAPS (WEFT_CAP_MONOTONIC_CLOCK | WEFT_CAP_VIRTUAL_TIME)
#elif defined(FIXTURE_SCHED_YIELD_GREEN)
/* A worker thread's sched_yield does not run the other tasks on it. */
#undef CAPS
#define CAPS (WEFT_CAP_SCHED_YIELD | WEFT_CAP_GREEN_TASKS)
#elif defined(FIXTURE_SCHED_YIELD_DETERMINISTIC)
#undef CAPS
#define CAPS (WEFT_CAP_SCHED_YIELD | WEFT_CAP_OS_THREADS | WEFT_CAP_DETERMINISTIC)
#elif defined(FIXTURE_PARK_WITHOUT_UNPARK)
#define PARK_ONLY 1
#elif defined(FIXTURE_TIMED_READ_ONLY)
#define TIMED_READ_ONLY 1
#elif defined(FIXTURE_TORN_MEMBER)
/* A size that ends 4 bytes into preempt_attach: its copy would be half a pointer. */
#undef STRUCT_SIZE
#define STRUCT_SIZE (offsetof(weft_platform_t, preempt_attach) + 4)
#elif defined(FIXTURE_NULL_NAME)
#undef NAME
#define NAME NULL
#elif defined(FIXTURE_NO_ENTRY)
/* Exports a function, but not the one the loader looks for. */
#undef ENTRY
#define ENTRY weft_platform_entry_v0
#elif defined(FIXTURE_MISALIGNED_TABLE)
/* The right table, returned at an address one byte past an aligned one. */
#elif !defined(FIXTURE_OK) && !defined(FIXTURE_ENTRY_NULL)
#error "define one FIXTURE_<DEFECT>"
#endif

static const weft_host_t *host;

static weft_status_t unsupported(void) {
  host->set_error_detail("a loader fixture, not a working platform");
  return WEFT_ENOTSUP;
}

/* One stub per member type: none of them is ever called but runtime_open. */
static weft_status_t runtime_open(const weft_plat_config_t *cfg, weft_plat_rt_t **out) {
  (void)cfg;
  (void)out;
  return unsupported();
}
static weft_status_t rt_call(weft_plat_rt_t *rt) {
  (void)rt;
  return unsupported();
}
static int64_t now(weft_plat_rt_t *rt) {
  (void)rt;
  return 0;
}
static weft_status_t sleep_until(weft_plat_rt_t *rt, int64_t deadline) {
  (void)rt;
  (void)deadline;
  return unsupported();
}
static weft_status_t spawn(weft_plat_rt_t *rt, void *ctx, const weft_plat_spawn_t *opts, weft_plat_task_t **out) {
  (void)rt;
  (void)ctx;
  (void)opts;
  (void)out;
  return unsupported();
}
static weft_status_t join(weft_plat_task_t *task, int64_t deadline) {
  (void)task;
  (void)deadline;
  return unsupported();
}
static weft_status_t task_call(weft_plat_task_t *task) {
  (void)task;
  return unsupported();
}
static weft_status_t obj_init(weft_plat_rt_t *rt, void *obj) {
  (void)rt;
  (void)obj;
  return unsupported();
}
static weft_status_t obj_call(void *obj) {
  (void)obj;
  return unsupported();
}
static weft_status_t obj_until(void *obj, int64_t deadline) {
  (void)obj;
  (void)deadline;
  return unsupported();
}
static weft_status_t cond_wait_until(void *cond, void *mutex, int64_t deadline) {
  (void)cond;
  (void)mutex;
  (void)deadline;
  return unsupported();
}

static weft_status_t chan_new(weft_plat_rt_t *rt, size_t elem_size, size_t capacity, weft_plat_chan_t **out) {
  (void)rt;
  (void)elem_size;
  (void)capacity;
  (void)out;
  return unsupported();
}
static weft_status_t chan_send(weft_plat_chan_t *ch, const void *elem, int64_t deadline) {
  (void)ch;
  (void)elem;
  (void)deadline;
  return unsupported();
}
static weft_status_t chan_recv(weft_plat_chan_t *ch, void *out, int64_t deadline) {
  (void)ch;
  (void)out;
  (void)deadline;
  return unsupported();
}
static weft_status_t chan_call(weft_plat_chan_t *ch) {
  (void)ch;
  return unsupported();
}
static size_t chan_len(weft_plat_chan_t *ch) {
  (void)ch;
  return 0;
}
static void chan_free(weft_plat_chan_t *ch, weft_plat_elem_drop_fn drop, void *ud) {
  (void)ch;
  (void)drop;
  (void)ud;
}
static weft_status_t chan_select(const weft_plat_select_case_t *cases, size_t n, int64_t deadline, uint32_t flags,
                                 size_t *chosen) {
  (void)cases;
  (void)n;
  (void)deadline;
  (void)flags;
  (void)chosen;
  return unsupported();
}

static weft_status_t fd_wait(weft_plat_rt_t *rt, int32_t fd, uint32_t events, int64_t deadline, uint32_t *revents) {
  (void)rt;
  (void)fd;
  (void)events;
  (void)deadline;
  (void)revents;
  return unsupported();
}
__attribute__((unused)) static weft_status_t fd_forget(weft_plat_rt_t *rt, int32_t fd) {
  (void)rt;
  (void)fd;
  return unsupported();
}
static weft_status_t preempt_attach(weft_plat_rt_t *rt, uint32_t *word) {
  (void)rt;
  (void)word;
  return unsupported();
}

#ifdef PARK_ONLY
static weft_status_t park(weft_plat_rt_t *rt, size_t key, bool (*validate)(void *), void *ud, int64_t deadline) {
  (void)rt;
  (void)key;
  (void)validate;
  (void)ud;
  (void)deadline;
  return unsupported();
}
#endif

static const weft_platform_t table = {
    .magic = MAGIC,
    .struct_size = STRUCT_SIZE,
    .abi_version = ABI_VERSION,
    .name = NAME,
    .version = "0",
    .caps = CAPS,
    .mutex_size = MUTEX_SIZE,
    .cond_size = 8,
    .rwlock_size = 8,
    .sync_align = SYNC_ALIGN,
    .runtime_open = runtime_open,
    .runtime_close = rt_call,
    .now = now,
    .yield = rt_call,
    .sleep_until = sleep_until,
    .spawn = spawn,
    .join = join,
    .detach = task_call,
    .cancel = task_call,
    .mutex_init = obj_init,
    .mutex_destroy = obj_call,
    .mutex_lock = obj_call,
    .mutex_try_lock = obj_call,
    .mutex_lock_until = obj_until,
    .mutex_unlock = obj_call,
    .cond_init = obj_init,
    .cond_destroy = obj_call,
    .cond_wait_until = cond_wait_until,
    .cond_signal = COND_SIGNAL,
    .cond_broadcast = obj_call,
    .rwlock_init = obj_init,
    .rwlock_destroy = obj_call,
    .rwlock_read_lock = obj_call,
    .rwlock_try_read_lock = obj_call,
    .rwlock_write_lock = obj_call,
    .rwlock_try_write_lock = obj_call,
    .rwlock_read_unlock = obj_call,
    .rwlock_write_unlock = obj_call,
    .chan_new = chan_new,
    .chan_send = chan_send,
    .chan_recv = chan_recv,
    .chan_close = chan_call,
    .chan_len = chan_len,
    .chan_free = chan_free,
    .chan_select = chan_select,
    .fd_wait = fd_wait,
    .fd_forget = FD_FORGET,
    .region_enter = rt_call,
    .region_leave = rt_call,
    .preempt_attach = preempt_attach,
    .preempt_point = rt_call,
#ifdef PARK_ONLY
    .park = park,
#endif
#ifdef TIMED_READ_ONLY
    .rwlock_read_lock_until = obj_until,
#endif
};

#ifdef FIXTURE_ENTRY_NULL
/* The refusing entry starts a thread first, as a plugin that set itself up before it
 * found the host too old may have: its code must stay mapped (a refused library that
 * was closed again crashed the host here). The entry's calls are counted. */
#include <pthread.h>
#include <time.h>

static int entry_calls;

EXPORT int weft_fixture_entry_calls(void);

int weft_fixture_entry_calls(void) { return entry_calls; }

static void *tick_for_ever(void *arg) {
  (void)arg;
  struct timespec tick = {0, 1000 * 1000};
  for (;;) nanosleep(&tick, NULL);
  return NULL;
}
#endif

EXPORT const weft_platform_t *ENTRY(const weft_host_t *h);

const weft_platform_t *ENTRY(const weft_host_t *h) {
  host = h;
#ifdef FIXTURE_ENTRY_NULL
  (void)table;
  entry_calls++;
  pthread_t ticker;
  if (pthread_create(&ticker, NULL, tick_for_ever, NULL) == 0) pthread_detach(ticker);
  h->set_error_detail("needs a newer host");
  return NULL; /* "this plugin cannot work with this host" */
#elif defined(FIXTURE_MISALIGNED_TABLE)
  static unsigned char copy[sizeof table + 16] __attribute__((aligned(16)));
  memcpy(copy + 1, &table, sizeof table);
  return (const weft_platform_t *)(void *)(copy + 1);
#else
  return &table;
#endif
}
