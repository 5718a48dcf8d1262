/* A real deadlock inside weft_once: its function waits on a channel nobody sends on,
 * and a second task waits for the once. The run ends with the deadlock report (exit
 * 86). The waiter re-parked every virtual millisecond, a deadline always pending, so
 * the clock moved on for ever and the run went to the step limit. */
#include "common.h"

static weft_runtime_t *rt;
static weft_chan_t *never;
static weft_once_t once = WEFT_ONCE_INIT;

static void wait_for_nothing(void *arg) {
  (void)arg;
  int v;
  (void)weft_chan_recv(never, &v, WEFT_FOREVER);
}

static int32_t call_once(void *arg, void **result) {
  (void)arg;
  (void)result;
  return weft_once(&once, wait_for_nothing, NULL);
}

int main(void) {
  rt = open_runtime();
  check(weft_chan_new(rt, sizeof(int), 0, NULL, &never), "weft_chan_new");
  weft_task_t *a = spawn(rt, call_once, NULL);
  weft_task_t *b = spawn(rt, call_once, NULL);
  join(a);
  join(b);
  printf("not reached\n");
  return 1;
}
