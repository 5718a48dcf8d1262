/* A wait whose deadline has already passed makes one try and gives up at once, while
 * other tasks can run and virtual time does not move (WEFT_SIM_STEP_NS=0): a timed
 * lock of a held mutex, of a held rwlock, and a wait on a word. Before, such a wait
 * blocked until no other task could run, and the main task below, which yields until
 * the worker is done, never let that happen: the run ended at the step limit. */
#include "common.h"

static weft_runtime_t *rt;
static weft_mutex_t mutex;
static weft_rwlock_t rwlock;
static uint32_t word;
static int which, done;

static int32_t try_once(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_status_t s = which == 0   ? weft_mutex_lock_until(&mutex, weft_now(rt))
                    : which == 1 ? weft_rwlock_write_lock_until(&rwlock, weft_now(rt))
                                 : weft_wait_on(rt, &word, 0, weft_now(rt));
  done = 1;
  return s;
}

int main(void) {
  rt = open_runtime();
  check(weft_mutex_init(rt, &mutex, 0), "weft_mutex_init");
  check(weft_rwlock_init(rt, &rwlock), "weft_rwlock_init");
  check(weft_mutex_lock(&mutex), "weft_mutex_lock");
  check(weft_rwlock_read_lock(&rwlock), "weft_rwlock_read_lock");
  static const char *const what[] = {"weft_mutex_lock_until", "weft_rwlock_write_lock_until", "weft_wait_on"};
  for (which = 0; which < 3; which++) {
    done = 0;
    weft_task_t *t = spawn(rt, try_once, NULL);
    while (!done) check(weft_yield(rt), "weft_yield");
    int32_t code = -1;
    check(weft_join(t, WEFT_FOREVER, &code, NULL), "weft_join");
    if (code != WEFT_ETIMEDOUT) {
      printf("%s with a deadline already past: %s, not WEFT_ETIMEDOUT\n", what[which], weft_strerror(code));
      return 1;
    }
  }
  check(weft_rwlock_unlock(&rwlock), "weft_rwlock_unlock");
  check(weft_mutex_unlock(&mutex), "weft_mutex_unlock");
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("done\n");
  return 0;
}
