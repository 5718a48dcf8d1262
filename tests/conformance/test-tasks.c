/* Tasks: spawn, join, detach, cancel, identity, task-local slots. */
#include "test.h"

static int32_t add_one(void *arg, void **result) {
  intptr_t v = (intptr_t)arg;
  *result = (void *)(v + 1);
  return (int32_t)v;
}

TEST_IMPL(spawn_join_code_and_result) {
  weft_runtime_t *rt = test_open_runtime();
  for (intptr_t i = 0; i < 64; i++) {
    weft_task_t *t = test_spawn(rt, add_one, (void *)i);
    int32_t code = -1;
    void *result = NULL;
    ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, &result));
    ASSERT_EQ(code, i);
    ASSERT_EQ((intptr_t)result, i + 1);
  }
  test_close_runtime(rt);
  return TEST_OK;
}
