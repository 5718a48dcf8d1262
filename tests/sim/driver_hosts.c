/* Hosts for the driver's tests. "hang": one task, then a sleep sim cannot see (no other
 * task waits, so no stall report): only the driver's --timeout ends it, also while PCT
 * measures a run's length. "latin": a line that is no UTF-8, then a deadlock: the
 * driver shows the run's output with the report in it. */
#include <string.h>
#include <unistd.h>

#include "common.h"

int main(int argc, char **argv) {
  weft_runtime_t *rt = open_runtime();
  if (argc > 1 && strcmp(argv[1], "hang") == 0) {
    weft_yield(rt);
    sleep(1000);
    return 0;
  }
  printf("caf\xe9\n");
  fflush(stdout);
  deadlock_on_two_locks(rt);
  return 0;
}
