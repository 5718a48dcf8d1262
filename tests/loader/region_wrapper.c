/*
 * The native plugin with a blocking-region hand-off that counts its calls, for the
 * loader test that the runtime calls `region_enter` and `region_leave` once per
 * outermost host region, however deep the host nests them (an M:N platform gives its
 * processor away at the enter and takes one back at the leave: a leave at an inner end
 * took it back while the host's blocking call still ran). The counts are read through
 * `weft_fixture_region_counts`. The native plugin is found at WEFT_FIXTURE_INNER (set
 * by the build).
 */
#include <stdatomic.h>
#include <string.h>

#include "inner_plugin.h"

#define EXPORT __attribute__((visibility("default")))

static weft_platform_t counting;
static atomic_int enters, leaves;

static weft_status_t count_enter(weft_plat_rt_t *rt) {
  (void)rt;
  atomic_fetch_add(&enters, 1);
  return WEFT_OK;
}

static weft_status_t count_leave(weft_plat_rt_t *rt) {
  (void)rt;
  atomic_fetch_add(&leaves, 1);
  return WEFT_OK;
}

EXPORT void weft_fixture_region_counts(int *enter, int *leave);

void weft_fixture_region_counts(int *enter, int *leave) {
  *enter = atomic_load(&enters);
  *leave = atomic_load(&leaves);
}

EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  const weft_platform_t *native = inner_plugin(h);
  if (native == NULL) return NULL;
  memcpy(&counting, native, sizeof counting);
  counting.name = "native-regions";
  counting.region_enter = count_enter;
  counting.region_leave = count_leave;
  return &counting;
}
