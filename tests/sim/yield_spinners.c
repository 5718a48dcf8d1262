/* Four tasks wait for a start flag in a loop of weft_yield; the main task sets it after
 * spawning them, then joins them. Under PCT a spinner of higher priority than main must
 * still let main run: a yield drops the yielder below every other task. Without that
 * the spinners ran until the step limit (exit 87). Exits 0 when all four started. */
#include "common.h"

enum { SPINNERS = 4 };

static int go;
static int started;

static int32_t spinner(void *arg, void **result) {
  (void)result;
  while (!go) check(weft_yield(arg), "weft_yield");
  started++;
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  weft_task_t *tasks[SPINNERS];
  for (int i = 0; i < SPINNERS; i++) tasks[i] = spawn(rt, spinner, rt);
  go = 1;
  for (int i = 0; i < SPINNERS; i++) join(tasks[i]);
  check(weft_runtime_close(rt), "weft_runtime_close");
  if (started != SPINNERS) {
    printf("%d of %d spinners started\n", started, SPINNERS);
    return 1;
  }
  return 0;
}
