/* Four tasks take turns through the runtime's parking: a semaphore of one unit, a
 * barrier per round, a word each task waits on with weft_wait_on until the previous
 * task wakes it, and a weft_once. The printed log is the schedule. On sim the same seed
 * must give the same log and the same trace in every run, whatever the addresses of
 * the objects (libweft's own parking table once hashed them to buckets). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

enum { TASKS = 4, ROUNDS = 4 };

static weft_runtime_t *rt;
static weft_sem_t sem;
static weft_barrier_t barrier;
static weft_once_t once = WEFT_ONCE_INIT;
static uint32_t turn[TASKS]; /* 1: task i may go on this round */
static char log_buf[512];
static atomic_int log_len;
static int once_runs;

static void note(char c) { log_buf[atomic_fetch_add(&log_len, 1)] = c; }

static void must(weft_status_t s, const char *what) {
  if (s != WEFT_OK) {
    printf("%s: %s (%s)\n", what, weft_strerror(s), weft_last_error());
    exit(1);
  }
}

static void count_once(void *ud) {
  (void)ud;
  once_runs++;
}

static int32_t worker(void *arg, void **result) {
  (void)result;
  int me = (int)(long)arg;
  must(weft_once(&once, count_once, NULL), "weft_once");
  for (int r = 0; r < ROUNDS; r++) {
    must(weft_sem_wait(&sem), "weft_sem_wait");
    note((char)('a' + me));
    must(weft_sem_post(&sem), "weft_sem_post");
    /* A ring: task 0 goes first, each wakes the next. */
    while (__atomic_load_n(&turn[me], __ATOMIC_ACQUIRE) == 0) {
      weft_status_t s = weft_wait_on(rt, &turn[me], 0, WEFT_FOREVER);
      if (s != WEFT_OK) must(s, "weft_wait_on");
    }
    __atomic_store_n(&turn[me], 0, __ATOMIC_RELEASE);
    note((char)('A' + me));
    int next = (me + 1) % TASKS;
    if (next != 0) {
      __atomic_store_n(&turn[next], 1, __ATOMIC_RELEASE);
      weft_wake(rt, &turn[next], 1);
    }
    bool serial = false;
    must(weft_barrier_wait(&barrier, &serial), "weft_barrier_wait");
    if (serial) {
      note('|');
      __atomic_store_n(&turn[0], 1, __ATOMIC_RELEASE);
      weft_wake(rt, &turn[0], 1);
    }
  }
  return 0;
}

int main(void) {
  must(weft_runtime_open(NULL, &rt), "weft_runtime_open");
  must(weft_sem_init(rt, &sem, 1), "weft_sem_init");
  must(weft_barrier_init(rt, &barrier, TASKS), "weft_barrier_init");
  turn[0] = 1;
  weft_task_t *tasks[TASKS];
  for (long i = 0; i < TASKS; i++) must(weft_spawn(rt, worker, (void *)i, NULL, &tasks[i]), "weft_spawn");
  for (int i = 0; i < TASKS; i++) must(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL), "weft_join");
  must(weft_barrier_destroy(&barrier), "weft_barrier_destroy");
  must(weft_sem_destroy(&sem), "weft_sem_destroy");
  must(weft_runtime_close(rt), "weft_runtime_close");
  if (once_runs != 1) {
    printf("weft_once ran %d times\n", once_runs);
    return 1;
  }
  log_buf[atomic_load(&log_len)] = '\0';
  printf("%s\n", log_buf);
  return 0;
}
