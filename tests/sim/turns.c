/* Four tasks log their turns through a mutex: the log is the schedule. On sim the
 * same seed prints the same log, and different seeds print different logs. It also
 * sleeps an hour of platform time, which must take no real time. */
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

static weft_mutex_t lock;
static char log_buf[256];
static int log_len;

static int32_t turns(void *arg, void **result) {
  (void)result;
  char who = (char)(long)arg;
  for (int i = 0; i < 8; i++) {
    weft_mutex_lock(&lock);
    log_buf[log_len++] = who;
    weft_mutex_unlock(&lock);
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) {
    fprintf(stderr, "open: %s\n", weft_last_error());
    return 1;
  }
  weft_mutex_init(rt, &lock, 0);
  weft_task_t *tasks[4];
  for (long i = 0; i < 4; i++) {
    if (weft_spawn(rt, turns, (void *)('A' + i), NULL, &tasks[i]) != WEFT_OK) {
      fprintf(stderr, "spawn: %s\n", weft_last_error());
      return 1;
    }
  }
  for (int i = 0; i < 4; i++) weft_join(tasks[i], WEFT_FOREVER, NULL, NULL);
  int64_t start = weft_now(rt);
  weft_sleep_until(rt, start + 3600LL * 1000000000LL);
  int64_t slept = weft_now(rt) - start;
  printf("%.*s slept=%lld\n", log_len, log_buf, (long long)slept);
  weft_mutex_destroy(&lock);
  return weft_runtime_close(rt) == WEFT_OK ? 0 : 1;
}
