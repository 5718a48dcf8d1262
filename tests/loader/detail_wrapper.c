/*
 * The native plugin whose `chan_recv` explains its timeouts with `set_error_detail`,
 * for the loader test that such a detail joins the error it explains, which the runtime
 * words itself ("still empty at the deadline"), and is not given as the reason of a
 * later, unrelated plugin failure on the thread. The native plugin is found at
 * WEFT_FIXTURE_INNER (set by the build).
 */
#include <string.h>

#include "inner_plugin.h"

#define EXPORT __attribute__((visibility("default")))

static weft_platform_t explaining;
static const weft_host_t *host;
static weft_plat_chan_recv_fn native_recv;

static weft_status_t recv_explained(struct weft_plat_chan_t *ch, void *out, int64_t deadline) {
  weft_status_t status = native_recv(ch, out, deadline);
  if (status == WEFT_ETIMEDOUT) host->set_error_detail("nothing came: the wrapper's own words");
  return status;
}

EXPORT const weft_platform_t *weft_platform_entry(const weft_host_t *h);

const weft_platform_t *weft_platform_entry(const weft_host_t *h) {
  const weft_platform_t *native = inner_plugin(h);
  if (native == NULL) return NULL;
  host = h;
  memcpy(&explaining, native, sizeof explaining);
  explaining.name = "native-explaining";
  native_recv = native->chan_recv;
  explaining.chan_recv = recv_explained;
  return &explaining;
}
