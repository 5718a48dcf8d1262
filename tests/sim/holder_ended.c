/* A task ends holding a mutex, and a later task takes its slot in the scheduler's
 * table. Main then blocks on the mutex: the deadlock report names the ended task as
 * the holder (it named the task that took the slot). */
#include <string.h>

#include "common.h"

static weft_mutex_t lock;
static weft_chan_t *never;

static int32_t take_and_end(void *arg, void **result) {
  (void)arg;
  (void)result;
  check(weft_mutex_lock(&lock), "weft_mutex_lock");
  return 0; /* ends without unlocking: the host's bug */
}

static int32_t wait_for_nothing(void *arg, void **result) {
  (void)arg;
  (void)result;
  int v;
  (void)weft_chan_recv(never, &v, WEFT_FOREVER);
  return 0;
}

static weft_task_t *spawn_named(weft_runtime_t *rt, weft_task_fn fn, const char *name) {
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.name = name;
  weft_task_t *t = NULL;
  check(weft_spawn(rt, fn, NULL, &opts, &t), "weft_spawn");
  return t;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  check(weft_chan_new(rt, sizeof(int), 0, NULL, &never), "weft_chan_new");
  join(spawn_named(rt, take_and_end, "taker"));
  weft_task_t *waiter = spawn_named(rt, wait_for_nothing, "bystander");
  check(weft_mutex_lock(&lock), "weft_mutex_lock (main)");
  printf("not reached\n");
  join(waiter);
  return 1;
}
