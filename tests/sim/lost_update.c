/* Planted bug: a lost update. Each task reads the counter in one critical section and
 * writes it back in another (check-then-act across two sections): another task's
 * increment in between is lost. */
#include "common.h"

#define TASKS 2
#define ROUNDS 3

static weft_mutex_t lock;
static long counter;

static int32_t bump(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (int i = 0; i < ROUNDS; i++) {
    check(weft_mutex_lock(&lock), "lock");
    long seen = counter;
    check(weft_mutex_unlock(&lock), "unlock");
    check(weft_mutex_lock(&lock), "lock");
    counter = seen + 1;
    check(weft_mutex_unlock(&lock), "unlock");
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  weft_task_t *t[TASKS];
  for (int i = 0; i < TASKS; i++) t[i] = spawn(rt, bump, NULL);
  for (int i = 0; i < TASKS; i++) join(t[i]);
  weft_mutex_destroy(&lock);
  check(weft_runtime_close(rt), "weft_runtime_close");
  if (counter != TASKS * ROUNDS) {
    printf("lost update: counter is %ld, expected %d\n", counter, TASKS * ROUNDS);
    return 1;
  }
  printf("counter %ld\n", counter);
  return 0;
}
