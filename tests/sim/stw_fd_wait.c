/* A task waiting in weft_fd_wait is held by a stop of the world when its fd becomes
 * ready: virtual time still moves (a 1 ms sleep of the collector ends), and the task
 * goes on once the world resumes. Before, the task stayed listed as waiting on its fd
 * while it was parked for the stop, every step made it runnable again, and the clock
 * stood still: with WEFT_SIM_STEP_NS=0 the run ended at the step limit. */
#include <fcntl.h>
#include <unistd.h>

#include "common.h"

static weft_runtime_t *rt;
static int fds[2];
static int waiting;

static int32_t reader(void *arg, void **result) {
  (void)arg;
  (void)result;
  waiting = 1;
  uint32_t ready = 0;
  return weft_fd_wait(rt, fds[0], WEFT_IO_READ, WEFT_FOREVER, &ready);
}

int main(void) {
  rt = open_runtime();
  if (pipe(fds) != 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) != 0) return 2;
  weft_task_t *t = spawn(rt, reader, NULL);
  while (!waiting) check(weft_yield(rt), "weft_yield");
  check(weft_yield(rt), "weft_yield"); /* the reader is in its wait now */
  check(weft_stw_begin(rt, WEFT_FOREVER), "weft_stw_begin");
  if (write(fds[1], "x", 1) != 1) return 2;
  check(weft_sleep_until(rt, weft_deadline_after(rt, 1000000)), "a 1 ms sleep with the world stopped");
  check(weft_stw_end(rt), "weft_stw_end");
  int32_t code = -1;
  check(weft_join(t, WEFT_FOREVER, &code, NULL), "weft_join");
  if (code != WEFT_OK) {
    printf("the reader's weft_fd_wait ended with %s\n", weft_strerror(code));
    return 1;
  }
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("done\n");
  return 0;
}
