/* Planted bug: a torn read. A writer sets two fields that must be equal, one at a time,
 * with a weft call between them (its mutex guards a log, not the pair); a watcher polls
 * the pair with weft_yield until the writer is done. The watcher has yielded before the
 * writer starts, so under PCT it runs again only when the writer drops below it: at a
 * change point (which, when it left the writer above every task that had yielded, never
 * found this bug). */
#include "common.h"

#define ROUNDS 20

static weft_runtime_t *rt;
static weft_mutex_t log_lock;
static volatile long a, b;
static volatile int done, watching;
static long logged;

static int32_t write_pairs(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (long i = 1; i <= ROUNDS; i++) {
    a = i;
    check(weft_mutex_lock(&log_lock), "lock"); /* a switch point inside the update */
    logged++;
    check(weft_mutex_unlock(&log_lock), "unlock");
    b = i;
  }
  done = 1;
  return 0;
}

static int32_t watch_pairs(void *arg, void **result) {
  (void)arg;
  (void)result;
  watching = 1;
  while (!done) {
    if (a != b) return 1;
    weft_yield(rt);
  }
  return 0;
}

int main(void) {
  rt = open_runtime();
  check(weft_mutex_init(rt, &log_lock, 0), "weft_mutex_init");
  weft_task_t *watcher = spawn(rt, watch_pairs, NULL);
  while (!watching) weft_yield(rt);
  weft_task_t *writer = spawn(rt, write_pairs, NULL);
  int32_t torn = 0;
  check(weft_join(watcher, WEFT_FOREVER, &torn, NULL), "weft_join");
  join(writer);
  weft_mutex_destroy(&log_lock);
  check(weft_runtime_close(rt), "weft_runtime_close");
  if (torn) {
    printf("torn read: the watcher saw the pair half written\n");
    return 1;
  }
  printf("%ld pairs written whole\n", logged);
  return 0;
}
