/* The deadlock report numbers objects as the trace does: a task parks on an address
 * (weft_wait_on) before main makes a mutex. Traced, the address was numbered when the
 * task parked, before the mutex; untraced, only when the report named it, after the
 * mutex. report_numbers.sh compares the two reports. */
#include "common.h"

static weft_runtime_t *rt;
static weft_mutex_t lock;
static uint32_t word;
static volatile int parking;

static int32_t park_for_ever(void *arg, void **result) {
  (void)arg;
  (void)result;
  parking = 1; /* main sees it only after the next switch point: the wait below */
  (void)weft_wait_on(rt, &word, 0, WEFT_FOREVER);
  return 0;
}

static int32_t hold_for_ever(void *arg, void **result) {
  (void)arg;
  (void)result;
  check(weft_mutex_lock(&lock), "weft_mutex_lock");
  (void)weft_wait_on(rt, &word, 0, WEFT_FOREVER);
  return 0;
}

int main(void) {
  rt = open_runtime();
  weft_task_t *parker = spawn(rt, park_for_ever, NULL);
  while (!parking) weft_yield(rt);
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  weft_task_t *holder = spawn(rt, hold_for_ever, NULL);
  while (weft_mutex_try_lock(&lock) == WEFT_OK) {
    weft_mutex_unlock(&lock);
    weft_yield(rt);
  }
  check(weft_mutex_lock(&lock), "weft_mutex_lock (main)");
  printf("not reached\n");
  join(parker);
  join(holder);
  return 1;
}
