/* Spawn + join of an empty task: weft_spawn(NULL options) + weft_join vs
 * pthread_create(default attributes) + pthread_join, one after the other, n times.
 * (The native plugin's task is an OS thread made by pthread_create with default
 * attributes, as the peer's: glibc's default stack, the RLIMIT_STACK size, mapped
 * lazily and cached between threads by glibc.)
 * The two are timed in one loop of alternating blocks of 16 (`paired_sample`): a
 * spawn+join is mostly the kernel's clone and exit and the scheduler's choice of CPU,
 * and one whole loop of either drifted by 2x from the next (40-90 us) where the blocks'
 * medians agree within a few percent. */
#include <pthread.h>

#include "bench.h"

static int32_t empty_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static void *empty_thread(void *arg) { return arg; }

static uint64_t spawn_weft_block(long calls) {
  for (long i = 0; i < calls; i++) {
    weft_task_t *t;
    CHECK(weft_spawn(bench_rt, empty_task, NULL, NULL, &t));
    CHECK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  }
  return 0;
}

static uint64_t spawn_pthread_block(long calls) {
  for (long i = 0; i < calls; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, empty_thread, NULL));
    CHECK(pthread_join(t, NULL));
  }
  return 0;
}

static const block_fn spawn_sides[2] = {spawn_weft_block, spawn_pthread_block};
static paired_t spawn_pair;

static sample_t spawn_weft(const params_t *p) { return paired_sample(&spawn_pair, spawn_sides, 0, p, 16); }
static sample_t spawn_pthread(const params_t *p) { return paired_sample(&spawn_pair, spawn_sides, 1, p, 16); }

void register_spawn_kinds(void) {
  bench_register(&(kind_t){
      .kind = "spawn_join",
      .unit = "ns per spawn+join of an empty task",
      .better = "lower",
      .default_n = 5000,
      .variants = {{"weft", spawn_weft}, {"pthread", spawn_pthread}},
  });
}
