/* Planted bug: publication after the spawn. The main task starts a worker and only then
 * stores the configuration the worker reads, with no weft call in between, assuming a
 * new task cannot run that soon. On threads it almost never does (a thread takes
 * microseconds to start); on sim the spawn is a switch point once the worker exists,
 * so the worker can run first and find no configuration. */
#include "common.h"

static const int *config;
static int seen;

static int32_t worker(void *arg, void **result) {
  (void)arg;
  (void)result;
  seen = config != NULL ? *config : -1;
  return 0;
}

int main(void) {
  static const int value = 42;
  weft_runtime_t *rt = open_runtime();
  weft_task_t *t = spawn(rt, worker, NULL);
  config = &value; /* the bug: published after the worker may have run */
  join(t);
  check(weft_runtime_close(rt), "weft_runtime_close");
  if (seen != 42) {
    printf("the worker ran before the configuration was published (saw %d)\n", seen);
    return 1;
  }
  printf("done\n");
  return 0;
}
