/* A task that waits for another without a weft call: it sets `spinning`, then spins on
 * `go`, which only the main task sets. On OS threads that works; on sim one task runs
 * at a time and only a weft call switches, so the spinner runs for ever while main is
 * runnable. The stall watchdog ends the run with its report and exit status 88. */
#include <stdatomic.h>

#include "common.h"

static atomic_int spinning;
static atomic_int go;

static int32_t spinner(void *arg, void **result) {
  (void)arg;
  (void)result;
  atomic_store(&spinning, 1);
  while (!atomic_load(&go)) {
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  weft_task_t *t = spawn(rt, spinner, NULL);
  while (!atomic_load(&spinning)) check(weft_yield(rt), "weft_yield");
  atomic_store(&go, 1);
  join(t);
  check(weft_runtime_close(rt), "weft_runtime_close");
  return 0;
}
