/*
 * Broken platform plugins, one per way a plugin can be wrong, for the loader tests
 * (runtime_open_broken_plugins). Built once per FAKE_<KIND> definition as
 * libweft_fake_<kind>.so. Every operation answers WEFT_ENOTSUP: none is ever reached
 * except runtime_open in the "openfails" variant.
 */
#include "weft_platform.h"

static const weft_host_t *host;

static weft_status_t no_open(const weft_plat_config_t *cfg, weft_plat_rt_t **out) {
  (void)cfg;
  (void)out;
  if (host != NULL && host->set_error_detail != NULL) host->set_error_detail("fake plugin says no");
  return WEFT_ENOTSUP;
}
static weft_status_t no_rt(weft_plat_rt_t *rt) { (void)rt; return WEFT_ENOTSUP; }
static int64_t no_now(weft_plat_rt_t *rt) { (void)rt; return 0; }
static weft_status_t no_sleep(weft_plat_rt_t *rt, int64_t d) { (void)rt; (void)d; return WEFT_ENOTSUP; }
static weft_status_t no_spawn(weft_plat_rt_t *rt, void *ctx, const weft_plat_spawn_t *o, weft_plat_task_t **out) {
  (void)rt; (void)ctx; (void)o; (void)out;
  return WEFT_ENOTSUP;
}
static weft_status_t no_join(weft_plat_task_t *t, int64_t d) { (void)t; (void)d; return WEFT_ENOTSUP; }
static weft_status_t no_task(weft_plat_task_t *t) { (void)t; return WEFT_ENOTSUP; }
static weft_status_t no_init(weft_plat_rt_t *rt, void *o) { (void)rt; (void)o; return WEFT_ENOTSUP; }
static weft_status_t no_obj(void *o) { (void)o; return WEFT_ENOTSUP; }
static weft_status_t no_until(void *o, int64_t d) { (void)o; (void)d; return WEFT_ENOTSUP; }
static weft_status_t no_wait(void *c, void *m, int64_t d) { (void)c; (void)m; (void)d; return WEFT_ENOTSUP; }

static const weft_platform_t table = {
#ifdef FAKE_BADMAGIC
    .magic = 0x0123456789abcdefULL,
#else
    .magic = WEFT_PLATFORM_MAGIC,
#endif
#ifdef FAKE_SMALL
    .struct_size = (uint32_t)offsetof(weft_platform_t, runtime_open),
#else
    .struct_size = sizeof(weft_platform_t),
#endif
#if defined(FAKE_ABI_NEW)
    .abi_version = 99,
#elif defined(FAKE_ABI_OLD)
    .abi_version = 0,
#else
    .abi_version = WEFT_PLATFORM_ABI_VERSION,
#endif
#ifdef FAKE_NONAME
    .name = NULL,
#else
    .name = "fake",
#endif
    .version = "0.0.0",
    .caps = 0,
#ifdef FAKE_BIGMUTEX
    .mutex_size = WEFT_PLATFORM_MUTEX_BYTES + 8,
#else
    .mutex_size = 8,
#endif
#ifdef FAKE_BIGCOND
    .cond_size = WEFT_PLATFORM_COND_BYTES + 8,
#else
    .cond_size = 8,
#endif
#ifdef FAKE_BIGRWLOCK
    .rwlock_size = WEFT_PLATFORM_RWLOCK_BYTES + 8,
#else
    .rwlock_size = 8,
#endif
#ifdef FAKE_ALIGN
    .sync_align = 2 * WEFT_PLATFORM_SYNC_ALIGN,
#else
    .sync_align = 8,
#endif
    .runtime_open = no_open,
    .runtime_close = no_rt,
    .now = no_now,
    .yield_now = no_rt,
    .sleep_until = no_sleep,
    .spawn = no_spawn,
    .join = no_join,
    .detach = no_task,
    .cancel = no_task,
    .mutex_init = no_init,
    .mutex_destroy = no_obj,
    .mutex_lock = no_obj,
    .mutex_trylock = no_obj,
    .mutex_lock_until = no_until,
    .mutex_unlock = no_obj,
    .cond_init = no_init,
    .cond_destroy = no_obj,
    .cond_wait_until = no_wait,
#ifdef FAKE_NULLMEMBER
    .cond_signal = NULL,
#else
    .cond_signal = no_obj,
#endif
    .cond_broadcast = no_obj,
    .rwlock_init = no_init,
    .rwlock_destroy = no_obj,
    .rwlock_read_lock = no_obj,
    .rwlock_try_read_lock = no_obj,
    .rwlock_write_lock = no_obj,
    .rwlock_try_write_lock = no_obj,
    .rwlock_read_unlock = no_obj,
    .rwlock_write_unlock = no_obj,
};

#ifndef FAKE_NOENTRY
const weft_platform_t *weft_platform_entry(const weft_host_t *h);
const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  host = h;
#ifdef FAKE_REFUSES
  (void)table;
  return NULL;
#else
  return &table;
#endif
}
#else
/* Something to export, so that the library is a valid shared object. */
const weft_platform_t *weft_not_the_entry(void);
const weft_platform_t *weft_not_the_entry(void) { return &table; }
#endif
