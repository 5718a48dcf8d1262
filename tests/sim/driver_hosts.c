/* Hosts for the driver's tests. "hang": one task, then a sleep sim cannot see (no other
 * task waits, so no stall report): only the driver's --timeout ends it, also while PCT
 * measures a run's length. "latin": a line that is no UTF-8, then a deadlock: the
 * driver shows the run's output with the report in it. */
#include <string.h>
#include <unistd.h>

#include "common.h"

static weft_runtime_t *rt;
static weft_mutex_t a, b;

static int32_t b_then_a(void *arg, void **result) {
  (void)arg;
  (void)result;
  check(weft_mutex_lock(&b), "lock b");
  weft_yield(rt);
  check(weft_mutex_lock(&a), "lock a");
  return 0;
}

int main(int argc, char **argv) {
  rt = open_runtime();
  if (argc > 1 && strcmp(argv[1], "hang") == 0) {
    weft_yield(rt);
    sleep(1000);
    return 0;
  }
  printf("caf\xe9\n");
  fflush(stdout);
  check(weft_mutex_init(rt, &a, 0), "weft_mutex_init");
  check(weft_mutex_init(rt, &b, 0), "weft_mutex_init");
  weft_task_t *t = spawn(rt, b_then_a, NULL);
  check(weft_mutex_lock(&a), "lock a");
  weft_yield(rt);
  check(weft_mutex_lock(&b), "lock b");
  join(t);
  return 0;
}
