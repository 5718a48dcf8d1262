/*
 * The native plugin with an entry function that counts its calls and takes its time,
 * for the loader test that a plugin's entry runs once per process: when two threads
 * open their first runtimes on it at once, and when it is opened again through another
 * path (a hard link). The count is read through `weft_fixture_entry_calls`. The native
 * plugin is found at WEFT_FIXTURE_INNER (set by the build).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <stdatomic.h>
#include <time.h>

#include "inner_plugin.h"

#define EXPORT __attribute__((visibility("default")))

static atomic_int calls;

EXPORT int weft_fixture_entry_calls(void);

int weft_fixture_entry_calls(void) { return atomic_load(&calls); }

EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  atomic_fetch_add(&calls, 1);
  /* Slow, as a plugin that sets itself up is: a second thread's load comes meanwhile. */
  struct timespec pause = {0, 100 * 1000 * 1000};
  nanosleep(&pause, NULL);
  return inner_plugin(h);
}
