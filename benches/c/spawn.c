/* Spawn + join of an empty task: weft_spawn(NULL options) + weft_join vs
 * pthread_create(default attributes) + pthread_join, one after the other, n times.
 * (The native plugin's task is an OS thread made by pthread_create with default
 * attributes, as the peer's: glibc's default stack, the RLIMIT_STACK size, mapped
 * lazily and cached between threads by glibc.) */
#include <pthread.h>

#include "bench.h"

static int32_t empty_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static void *empty_thread(void *arg) { return arg; }

static sample_t spawn_weft(const params_t *p) {
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    weft_task_t *t;
    CHECK(weft_spawn(bench_rt, empty_task, NULL, NULL, &t));
    CHECK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  }
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t spawn_pthread(const params_t *p) {
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, empty_thread, NULL));
    CHECK(pthread_join(t, NULL));
  }
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

void register_spawn_kinds(void) {
  bench_register(&(kind_t){
      .kind = "spawn_join",
      .unit = "ns per spawn+join of an empty task",
      .better = "lower",
      .default_n = 5000,
      .variants = {{"weft", spawn_weft}, {"pthread", spawn_pthread}},
  });
}
