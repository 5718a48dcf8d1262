/* Planted bug: a detached task racing shutdown. The main task starts a detached worker
 * and closes the runtime after one yield, assuming the worker is done by then; when
 * it is not, the close fails (WEFT_EBUSY) and the worker's result is missing. */
#include "common.h"

static int done;

static int32_t worker(void *arg, void **result) {
  weft_runtime_t *rt = arg;
  (void)result;
  for (int i = 0; i < 3; i++) check(weft_yield(rt), "weft_yield");
  done = 1;
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.flags = WEFT_SPAWN_DETACHED;
  check(weft_spawn(rt, worker, rt, &opts, NULL), "weft_spawn");
  check(weft_yield(rt), "weft_yield"); /* the bug: "long enough" */
  if (!done) {
    printf("shutdown raced the detached worker: it has not finished\n");
    return 1;
  }
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("done\n");
  return 0;
}
