/* weft_parallel_for on sim: prints which task ran each element. The log is the same
 * for one seed on every machine: the pool's workers are tasks whose switches the seed
 * orders, and their number once followed the machine's CPUs (a seed found on CI ran
 * another schedule on a laptop, or under taskset). */
#include <stdint.h>

#include "common.h"

enum { N = 32 };
static uint64_t ran_by[N];
static weft_runtime_t *rt;

/* A switch point per element: the workers get to take chunks. */
static int32_t record(size_t begin, size_t end, void *ud) {
  (void)ud;
  for (size_t i = begin; i < end; i++) {
    ran_by[i] = weft_self_id();
    check(weft_yield(rt), "weft_yield");
  }
  return 0;
}

int main(void) {
  rt = open_runtime();
  int32_t code = -1;
  check(weft_parallel_for(rt, 0, N, 1, record, NULL, &code), "weft_parallel_for");
  if (code != 0) return 1;
  for (int i = 0; i < N; i++) printf("%llu ", (unsigned long long)ran_by[i]);
  printf("\n");
  check(weft_runtime_close(rt), "weft_runtime_close");
  return 0;
}
