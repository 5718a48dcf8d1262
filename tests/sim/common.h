/* Shared by the planted-bug hosts: open a runtime or die, spawn or die. Each host
 * exits 0 when the run was correct and 1 (with a line saying what went wrong) when the
 * planted bug struck; a deadlock ends in the sim's report (exit 86). */
#ifndef WEFT_SIM_TESTS_COMMON_H
#define WEFT_SIM_TESTS_COMMON_H
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

static inline void check(weft_status_t s, const char *what) {
  if (s != WEFT_OK) {
    printf("%s failed: %s (%s)\n", what, weft_strerror(s), weft_last_error());
    exit(1);
  }
}

static inline weft_runtime_t *open_runtime(void) {
  weft_runtime_t *rt = NULL;
  check(weft_runtime_open(NULL, &rt), "weft_runtime_open");
  return rt;
}

static inline weft_task_t *spawn(weft_runtime_t *rt, weft_task_fn fn, void *arg) {
  weft_task_t *t = NULL;
  check(weft_spawn(rt, fn, arg, NULL, &t), "weft_spawn");
  return t;
}

static inline void join(weft_task_t *t) { check(weft_join(t, WEFT_FOREVER, NULL, NULL), "weft_join"); }

/* A task that yields for ever (`arg`: its runtime). */
static inline int32_t yield_for_ever(void *arg, void **result) {
  (void)result;
  for (;;) weft_yield(arg);
  return 0;
}

/* Two locks taken in opposite orders by main and a task, each yielding in between: the
 * run ends in the deadlock report (exit 86). */
typedef struct {
  weft_runtime_t *rt;
  weft_mutex_t a, b;
} two_locks_t;

static inline int32_t take_b_then_a(void *arg, void **result) {
  two_locks_t *l = arg;
  (void)result;
  check(weft_mutex_lock(&l->b), "lock b");
  weft_yield(l->rt);
  check(weft_mutex_lock(&l->a), "lock a");
  return 0;
}

static inline void deadlock_on_two_locks(weft_runtime_t *rt) {
  static two_locks_t l;
  l.rt = rt;
  check(weft_mutex_init(rt, &l.a, 0), "weft_mutex_init");
  check(weft_mutex_init(rt, &l.b, 0), "weft_mutex_init");
  weft_task_t *t = spawn(rt, take_b_then_a, &l);
  check(weft_mutex_lock(&l.a), "lock a");
  weft_yield(rt);
  check(weft_mutex_lock(&l.b), "lock b");
  join(t);
}
#endif
