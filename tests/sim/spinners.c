/* Four tasks wait for a start flag that the main task sets after spawning them, then
 * main joins them. `spinners yield`: each waits in a loop of weft_yield. `spinners
 * lock`: each polls the flag under a mutex, with no yield (a program that polls through
 * weft calls, as zstd's streaming loop does). Under PCT neither may keep main from
 * running for ever: a yield drops the yielder below every other task, and past 10 x the
 * steps PCT plans for, it picks at random. Without that the spinners ran until the step
 * limit (exit 87). Exits 0 when all four started. */
#include <string.h>

#include "common.h"

enum { SPINNERS = 4 };

static weft_runtime_t *rt;
static weft_mutex_t lock;
static int go;
static int started;
static int by_lock;

static int flag_is_set(void) {
  if (!by_lock) return go;
  check(weft_mutex_lock(&lock), "weft_mutex_lock");
  int set = go;
  check(weft_mutex_unlock(&lock), "weft_mutex_unlock");
  return set;
}

static int32_t spinner(void *arg, void **result) {
  (void)arg;
  (void)result;
  while (!flag_is_set()) {
    if (!by_lock) check(weft_yield(rt), "weft_yield");
  }
  started++;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 || (strcmp(argv[1], "yield") != 0 && strcmp(argv[1], "lock") != 0)) {
    printf("usage: %s yield|lock\n", argv[0]);
    return 2;
  }
  by_lock = strcmp(argv[1], "lock") == 0;
  rt = open_runtime();
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  weft_task_t *tasks[SPINNERS];
  for (int i = 0; i < SPINNERS; i++) tasks[i] = spawn(rt, spinner, NULL);
  check(weft_mutex_lock(&lock), "weft_mutex_lock");
  go = 1;
  check(weft_mutex_unlock(&lock), "weft_mutex_unlock");
  for (int i = 0; i < SPINNERS; i++) join(tasks[i]);
  check(weft_mutex_destroy(&lock), "weft_mutex_destroy");
  check(weft_runtime_close(rt), "weft_runtime_close");
  if (started != SPINNERS) {
    printf("%d of %d spinners started\n", started, SPINNERS);
    return 1;
  }
  return 0;
}
