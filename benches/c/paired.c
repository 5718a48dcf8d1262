/* Two variants timed in one loop of alternating blocks (see bench.h). */
#include <stdlib.h>

#include "bench.h"

/* Times n calls of each side in blocks of `block` calls, alternating, and keeps the
 * median ns per call of each side. */
static void paired_loop(paired_t *pr, const block_fn side[2], long n, long block) {
  long blocks = n / block > 0 ? n / block : 1;
  double *ns[2] = {malloc(sizeof(double) * (size_t)blocks), malloc(sizeof(double) * (size_t)blocks)};
  if (!ns[0] || !ns[1]) die("malloc", 1);
  uint64_t acc = 0;
  for (long k = 0; k < blocks; k++) {
    for (int turn = 0; turn < 2; turn++) {
      int s = turn ^ (int)(k & 1);
      int64_t t0 = now_ns();
      acc += side[s](block);
      ns[s][k] = (double)(now_ns() - t0) / (double)block;
    }
  }
  keep(acc);
  for (int s = 0; s < 2; s++) {
    pr->median[s] = median_of(ns[s], blocks);
    free(ns[s]);
  }
  pr->pending = 2;
}

sample_t paired_sample(paired_t *pr, const block_fn side[2], int s, const params_t *p, long block) {
  if (pr->pending == 0) paired_loop(pr, side, p->n, block);
  pr->pending--;
  return (sample_t){pr->median[s], 0};
}
