/* Mutexes. */
#include "test.h"

#define THREADS 8
#define INCREMENTS 100000

typedef struct {
  weft_mutex_t m;
  long counter;
} shared_counter_t;

static int32_t increment(void *arg, void **result) {
  (void)result;
  shared_counter_t *s = arg;
  for (int i = 0; i < INCREMENTS; i++) {
    if (weft_mutex_lock(&s->m) != WEFT_OK) return 1;
    s->counter++;
    if (weft_mutex_unlock(&s->m) != WEFT_OK) return 2;
  }
  return 0;
}

TEST_IMPL(mutex_counter_8_threads) {
  weft_runtime_t *rt = test_open_runtime();
  shared_counter_t s = {.counter = 0};
  ASSERT_OK(weft_mutex_init(rt, &s.m, 0));
  weft_task_t *t[THREADS];
  for (int i = 0; i < THREADS; i++) t[i] = test_spawn(rt, increment, &s);
  for (int i = 0; i < THREADS; i++) ASSERT_EQ(test_join(t[i]), 0);
  ASSERT_EQ(s.counter, (long)THREADS * INCREMENTS);
  ASSERT_OK(weft_mutex_destroy(&s.m));
  test_close_runtime(rt);
  return TEST_OK;
}
