/* Not a planted bug: a check that `weft-sim explore` finds no failing seed. A task is
 * cancelled while its spawn is still under way: the canceller finds it through
 * weft_tasks_foreach, which lists a task from its spawn on, before the spawner's
 * weft_spawn has returned (on sim the spawn is a switch point once the task exists).
 * The victim sleeps for ever, so only the cancel's wake-up ends it. The wake-up was
 * lost when the platform's handle of the task was not stored yet (seed 22 on
 * 2026-12-03: the run ended in the deadlock report). */
#include <stdbool.h>
#include <string.h>

#include "common.h"

static weft_runtime_t *rt;

static int32_t victim(void *arg, void **result) {
  (void)arg;
  (void)result;
  weft_status_t s = weft_sleep_until(rt, WEFT_FOREVER);
  if (s != WEFT_ECANCELED) {
    printf("the victim's sleep ended with %s, not cancelled\n", weft_strerror(s));
    exit(1);
  }
  return 0;
}

static bool find_victim(const weft_task_info_t *info, void *ud) {
  if (info->name == NULL || strcmp(info->name, "victim") != 0 || info->task == NULL) return false;
  *(weft_task_t **)ud = info->task;
  return true;
}

static int32_t canceller(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
    weft_task_t *found = NULL;
    check(weft_tasks_foreach(rt, find_victim, &found), "weft_tasks_foreach");
    if (found != NULL) {
      check(weft_cancel(found), "weft_cancel");
      return 0;
    }
    check(weft_yield(rt), "weft_yield");
  }
}

int main(void) {
  rt = open_runtime();
  weft_spawn_opts_t opts = {.struct_size = sizeof opts, .name = "canceller"};
  weft_task_t *c = NULL, *v = NULL;
  check(weft_spawn(rt, canceller, NULL, &opts, &c), "weft_spawn");
  opts.name = "victim";
  check(weft_spawn(rt, victim, NULL, &opts, &v), "weft_spawn");
  join(c);
  join(v);
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("done\n");
  return 0;
}
