/*
 * tiny_lock: a one-byte lock in an object header, the WTF::Lock / PyMutex pattern, built
 * on weft_park / weft_unpark. The uncontended paths are one atomic instruction each;
 * only a contended lock parks (the task, not the thread, where the platform can).
 *
 *   tiny_lock [TASKS] [ROUNDS]     (default 4 tasks, 200000 rounds each)
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

enum { FREE = 0, HELD = 1, CONTENDED = 2 };

typedef struct {
  _Atomic unsigned char lock; /* the whole lock: one byte of the object */
  long value;
} object_t;

static weft_runtime_t *rt;

static bool still_contended(void *ud) { return atomic_load((_Atomic unsigned char *)ud) == CONTENDED; }

static void object_lock(object_t *o) {
  unsigned char expected = FREE;
  if (atomic_compare_exchange_strong(&o->lock, &expected, HELD)) return; /* fast path */
  /* Mark it contended; park while it stays so (checked atomically with unpark). */
  while (atomic_exchange(&o->lock, CONTENDED) != FREE)
    weft_park(rt, (const void *)&o->lock, still_contended, (void *)&o->lock, WEFT_FOREVER);
}

static void object_unlock(object_t *o) {
  if (atomic_exchange(&o->lock, FREE) == CONTENDED) weft_unpark(rt, (const void *)&o->lock, 1);
}

static long rounds;

static int32_t worker(void *arg, void **result) {
  (void)result;
  object_t *o = arg;
  for (long i = 0; i < rounds; i++) {
    object_lock(o);
    o->value++;
    object_unlock(o);
  }
  return 0;
}

int main(int argc, char **argv) {
  int tasks = argc > 1 ? atoi(argv[1]) : 4;
  rounds = argc > 2 ? atol(argv[2]) : 200000;
  if (tasks < 1 || tasks > 1024 || rounds < 1) return 2;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) {
    fprintf(stderr, "%s\n", weft_last_error());
    return 1;
  }
  object_t o = {.lock = FREE, .value = 0};
  weft_task_t *t[1024];
  int64_t start = weft_now(rt);
  for (int i = 0; i < tasks; i++) weft_spawn(rt, worker, &o, NULL, &t[i]);
  for (int i = 0; i < tasks; i++) weft_join(t[i], WEFT_FOREVER, NULL, NULL);
  double ms = (double)(weft_now(rt) - start) / 1e6;
  long want = (long)tasks * rounds;
  printf("one-byte lock on %s: %ld increments by %d tasks in %.1f ms: %s\n", weft_runtime_platform(rt)->name,
         o.value, tasks, ms, o.value == want ? "OK" : "WRONG");
  weft_runtime_close(rt);
  return o.value == want ? 0 : 1;
}
