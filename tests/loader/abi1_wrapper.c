/*
 * A working plugin of ABI version 1, for the loader test that an older plugin still
 * loads and runs and that the runtime answers the ABI 2 calls (IO waits) with
 * WEFT_ENOTSUP naming it. It is the native plugin's table cut back to what ABI 1 had:
 * the first members up to chan_select, abi_version 1 and the struct_size of that time
 * (with traps past it, for a loader that would read them).
 * The native plugin is found at WEFT_FIXTURE_INNER (set by the build).
 */
#include <stddef.h>
#include <string.h>

#include "inner_plugin.h"

#define EXPORT __attribute__((visibility("default")))

static weft_platform_t old;
static const weft_host_t *host;

/* Past the declared struct_size, where a loader must not read: members that would
 * answer something else than the runtime's WEFT_ENOTSUP if it did. */
static weft_status_t beyond_fd_wait(weft_plat_rt_t *rt, int32_t fd, uint32_t events, int64_t deadline,
                                    uint32_t *revents) {
  (void)rt;
  (void)fd;
  (void)events;
  (void)deadline;
  (void)revents;
  host->set_error_detail("the loader read fd_wait past the table's struct_size");
  return WEFT_EINTERNAL;
}
static weft_status_t beyond_fd_forget(weft_plat_rt_t *rt, int32_t fd) {
  (void)rt;
  (void)fd;
  host->set_error_detail("the loader read fd_forget past the table's struct_size");
  return WEFT_EINTERNAL;
}

EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  const weft_platform_t *current = inner_plugin(h);
  if (current == NULL) return NULL;
  memcpy(&old, current, offsetof(weft_platform_t, fd_wait));
  old.struct_size = offsetof(weft_platform_t, fd_wait);
  old.abi_version = 1;
  old.name = "native-abi1";
  old.fd_wait = beyond_fd_wait;
  old.fd_forget = beyond_fd_forget;
  host = h;
  return &old;
}
