/*
 * A working plugin of ABI version 1, for the loader test that an older plugin still
 * loads and runs and that the runtime answers the ABI 2 calls (IO waits) with
 * WEFT_ENOTSUP naming it. It is the native plugin's table cut back to what ABI 1 had:
 * the first members up to chan_select, abi_version 1 and the struct_size of that time.
 * The native plugin is found at WEFT_FIXTURE_INNER (set by the build).
 */
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

#include "weft_platform.h"

#define EXPORT __attribute__((visibility("default")))

static weft_platform_t old; /* only the ABI 1 part is written; the rest stays zero */

EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  void *inner = dlopen(WEFT_FIXTURE_INNER, RTLD_NOW | RTLD_LOCAL); /* kept: never unloaded */
  if (inner == NULL) return NULL;
  const weft_platform_t *(*entry)(const weft_host_t *);
  *(void **)&entry = dlsym(inner, "weft_platform_entry");
  if (entry == NULL) return NULL;
  const weft_platform_t *current = entry(h);
  if (current == NULL) return NULL;
  memcpy(&old, current, offsetof(weft_platform_t, fd_wait));
  old.struct_size = offsetof(weft_platform_t, fd_wait);
  old.abi_version = 1;
  old.name = "native-abi1";
  return &old;
}
