/* Every runtime one thread opens shares its sim scheduler, and with it the seed. A
 * second runtime that asks for another seed is refused (WEFT_EINVAL, naming both),
 * not silently run on the first one's; 0 or the same seed is taken. A seed the
 * scheduler would not use is not drawn, so no replay line is printed for it (ctest
 * fails the run on one: this runs without $WEFT_SEED). Once the last runtime closed,
 * a new one takes any seed. */
#include <string.h>

#include "common.h"

static weft_runtime_t *open_with_seed(uint64_t seed, weft_status_t *status) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.seed = seed;
  weft_runtime_t *rt = NULL;
  *status = weft_runtime_open(&cfg, &rt);
  return rt;
}

static weft_runtime_t *must_open(uint64_t seed) {
  weft_status_t s;
  weft_runtime_t *rt = open_with_seed(seed, &s);
  check(s, "weft_runtime_open");
  return rt;
}

int main(void) {
  weft_runtime_t *first = must_open(5);
  weft_status_t s;
  weft_runtime_t *other = open_with_seed(6, &s);
  if (s != WEFT_EINVAL || other != NULL) {
    printf("a second runtime with another seed: %s, not WEFT_EINVAL\n", weft_strerror(s));
    return 1;
  }
  if (!strstr(weft_last_error(), "seed is 6") || !strstr(weft_last_error(), "with seed 5")) {
    printf("the refusal does not name both seeds: %s\n", weft_last_error());
    return 1;
  }
  weft_runtime_t *same = must_open(5);
  weft_runtime_t *any = must_open(0);
  check(weft_runtime_close(any), "weft_runtime_close");
  check(weft_runtime_close(same), "weft_runtime_close");
  check(weft_runtime_close(first), "weft_runtime_close");
  weft_runtime_t *fresh = must_open(6);
  check(weft_runtime_close(fresh), "weft_runtime_close");
  printf("done\n");
  return 0;
}
