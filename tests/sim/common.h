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
#endif
