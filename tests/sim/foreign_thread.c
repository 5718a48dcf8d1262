/* A thread the host made itself is refused on sim: weft_thread_attach and any call
 * that reaches the platform answer WEFT_ENOTSUP, and weft_last_error() says why; a
 * semaphore's post, a barrier's arrival and a wake are refused before they change
 * anything (they reported success and the wake-up was lost). The opening thread may
 * attach, post and arrive. Exit 0 when all of that holds. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "weft.h"

static weft_runtime_t *rt;
static weft_sem_t sem;
static weft_barrier_t barrier;
static weft_chan_t *chan;
static weft_task_t *sleeper;
static int failures;

static void expect_refused(weft_status_t s, const char *what) {
  if (s != WEFT_ENOTSUP || strstr(weft_last_error(), "sim platform") == NULL) {
    printf("%s from a host thread: %s (%s), expected WEFT_ENOTSUP naming the sim platform\n", what,
           weft_strerror(s), weft_last_error());
    failures++;
  } else {
    printf("%s refused: %s\n", what, weft_last_error());
  }
}

/* The task whose cancel from the host thread is refused: its sleep must end normally. */
static int32_t sleep_a_little(void *arg, void **result) {
  (void)arg;
  (void)result;
  return weft_sleep_until(rt, weft_deadline_after(rt, 1000000));
}

static void *host_thread(void *arg) {
  (void)arg;
  expect_refused(weft_thread_attach(rt), "weft_thread_attach");
  expect_refused(weft_yield(rt), "weft_yield");
  expect_refused(weft_sleep_until(rt, 0), "weft_sleep_until");
  /* Refused before they change anything: the platform would drop their wake-ups. */
  expect_refused(weft_sem_post(&sem), "weft_sem_post");
  if (weft_sem_value(&sem) != 0) {
    printf("a refused weft_sem_post added a unit\n");
    failures++;
  }
  expect_refused(weft_barrier_wait(&barrier, NULL), "weft_barrier_wait");
  static uint32_t word;
  size_t woken = weft_wake(rt, &word, 1);
  expect_refused(woken == 0 ? WEFT_ENOTSUP : WEFT_OK, "weft_wake");
  woken = weft_unpark(rt, &word, 1);
  expect_refused(woken == 0 ? WEFT_ENOTSUP : WEFT_OK, "weft_unpark");
  /* These changed state before the platform refused: the channel stayed closed, the
   * task cancelled, the world stopped with nobody able to resume it, and a close freed
   * the scheduler the opening thread still ran on. */
  expect_refused(weft_chan_close(chan), "weft_chan_close");
  expect_refused(weft_cancel(sleeper), "weft_cancel");
  expect_refused(weft_stw_begin(rt, WEFT_FOREVER), "weft_stw_begin");
  expect_refused(weft_runtime_close(rt), "weft_runtime_close");
  /* A drain spun for ever on the refused waits, whatever its deadline. */
  expect_refused(weft_runtime_drain(rt, 0), "weft_runtime_drain");
  return NULL;
}

int main(void) {
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) return 1;
  if (weft_thread_attach(rt) != WEFT_OK || weft_thread_detach(rt) != WEFT_OK) {
    printf("the opening thread could not attach: %s\n", weft_last_error());
    return 1;
  }
  if (weft_sem_init(rt, &sem, 0) != WEFT_OK || weft_barrier_init(rt, &barrier, 1) != WEFT_OK) return 1;
  if (weft_chan_new(rt, sizeof(int), 1, NULL, &chan) != WEFT_OK) return 1;
  if (weft_spawn(rt, sleep_a_little, NULL, NULL, &sleeper) != WEFT_OK) return 1;
  pthread_t t;
  if (pthread_create(&t, NULL, host_thread, NULL) != 0 || pthread_join(t, NULL) != 0) return 1;
  /* The opening thread may post and pass the barrier. */
  bool serial = false;
  if (weft_sem_post(&sem) != WEFT_OK || weft_barrier_wait(&barrier, &serial) != WEFT_OK || !serial) {
    printf("the opening thread was refused: %s\n", weft_last_error());
    return 1;
  }
  if (weft_sem_destroy(&sem) != WEFT_OK || weft_barrier_destroy(&barrier) != WEFT_OK) return 1;
  int one = 1;
  if (weft_chan_send(chan, &one, WEFT_FOREVER) != WEFT_OK) {
    printf("the channel a refused close left open took no message: %s\n", weft_last_error());
    return 1;
  }
  weft_chan_release(chan);
  int32_t code = -1;
  if (weft_join(sleeper, WEFT_FOREVER, &code, NULL) != WEFT_OK || code != WEFT_OK) {
    printf("the task a refused cancel left alone ended with %s\n", weft_strerror(code));
    return 1;
  }
  if (weft_runtime_close(rt) != WEFT_OK) return 1;
  return failures == 0 ? 0 : 1;
}
