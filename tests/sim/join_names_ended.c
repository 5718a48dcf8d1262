/* main joins task A, which ends; its slot in the scheduler goes to C, a detached task
 * spawned by B. At the step limit the report names what main joins by task id: A,
 * ended. It named C, which took the slot (seed 184, step limit 12: a schedule where
 * that happens). */
#include "common.h"

static weft_runtime_t *rt;

static int32_t quick(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static int32_t spawn_c_and_spin(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_yield(rt);
  weft_yield(rt);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = "C";
  opts.flags = WEFT_SPAWN_DETACHED;
  check(weft_spawn(rt, yield_for_ever, rt, &opts, NULL), "weft_spawn C");
  for (;;) weft_yield(rt);
  return 0;
}

int main(void) {
  rt = open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = "A";
  weft_task_t *a, *b;
  check(weft_spawn(rt, quick, NULL, &opts, &a), "weft_spawn A");
  opts.name = "B";
  check(weft_spawn(rt, spawn_c_and_spin, NULL, &opts, &b), "weft_spawn B");
  join(a);
  join(b);
  return 0;
}
