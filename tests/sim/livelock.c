/* A livelock: a task spins through weft_yield waiting for a flag nobody sets, and the
 * main task joins it. Every step makes a runnable task run, so no deadlock is ever seen;
 * $WEFT_SIM_MAX_STEPS ends the run with the report and exit status 87. */
#include "common.h"

static int stop;

static int32_t spinner(void *arg, void **result) {
  (void)result;
  while (!stop) check(weft_yield(arg), "weft_yield");
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  join(spawn(rt, spinner, rt));
  check(weft_runtime_close(rt), "weft_runtime_close");
  return 0;
}
