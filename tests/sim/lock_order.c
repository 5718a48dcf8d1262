/* Planted bug: a lock-order deadlock. One task takes a then b, the other b then a;
 * the window is small (nothing between the two locks), so a test run on OS threads
 * rarely hits it. Expected on sim: a deadlock report and exit status 86. */
#include <stdio.h>

#include "weft.h"

static weft_mutex_t a, b;
static long total;

static int32_t ab(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_mutex_lock(&a);
  weft_mutex_lock(&b);
  total++;
  weft_mutex_unlock(&b);
  weft_mutex_unlock(&a);
  return 0;
}

static int32_t ba(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_mutex_lock(&b);
  weft_mutex_lock(&a);
  total++;
  weft_mutex_unlock(&a);
  weft_mutex_unlock(&b);
  return 0;
}

int main(void) {
  weft_runtime_t *rt;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) return 1;
  weft_mutex_init(rt, &a, 0);
  weft_mutex_init(rt, &b, 0);
  weft_task_t *t1, *t2;
  weft_spawn(rt, ab, NULL, NULL, &t1);
  weft_spawn(rt, ba, NULL, NULL, &t2);
  weft_join(t1, WEFT_FOREVER, NULL, NULL);
  weft_join(t2, WEFT_FOREVER, NULL, NULL);
  printf("total=%ld\n", total);
  weft_mutex_destroy(&a);
  weft_mutex_destroy(&b);
  return weft_runtime_close(rt) == WEFT_OK ? 0 : 1;
}
