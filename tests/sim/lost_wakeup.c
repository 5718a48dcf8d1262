/* Planted bug: a lost wake-up. The producer sets the flag and signals without holding
 * the mutex; a consumer that has seen the flag clear but not yet waited misses the
 * signal and waits for ever (the sim's deadlock report). */
#include "common.h"

static weft_mutex_t lock;
static weft_cond_t ready_cond;
static int ready;

static int32_t consumer(void *arg, void **result) {
  (void)arg;
  (void)result;
  check(weft_mutex_lock(&lock), "lock");
  while (!ready) check(weft_cond_wait(&ready_cond, &lock), "weft_cond_wait");
  check(weft_mutex_unlock(&lock), "unlock");
  return 0;
}

static int32_t producer(void *arg, void **result) {
  (void)arg;
  (void)result;
  ready = 1; /* the bug: not under the mutex */
  check(weft_cond_signal(&ready_cond), "weft_cond_signal");
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  check(weft_cond_init(rt, &ready_cond), "weft_cond_init");
  weft_task_t *c = spawn(rt, consumer, NULL);
  weft_task_t *p = spawn(rt, producer, NULL);
  join(c);
  join(p);
  weft_cond_destroy(&ready_cond);
  weft_mutex_destroy(&lock);
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("woken\n");
  return 0;
}
