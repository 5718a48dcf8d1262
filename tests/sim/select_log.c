/* Determinism with channels and select: three producers send on three channels, a
 * consumer selects among them and logs which case it took. The log is the schedule
 * together with select's random choices: one seed, one log. */
#include <stdio.h>

#include "weft.h"

#define PER 6

static weft_chan_t *chans[3];

static int32_t producer(void *arg, void **result) {
  (void)result;
  long i = (long)arg;
  for (long k = 0; k < PER; k++) {
    if (weft_chan_send(chans[i], &k, WEFT_FOREVER) != WEFT_OK) return 1;
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) return 1;
  for (int i = 0; i < 3; i++)
    if (weft_chan_new(rt, sizeof(long), (size_t)i, NULL, &chans[i]) != WEFT_OK) return 1;
  weft_task_t *t[3];
  for (long i = 0; i < 3; i++)
    if (weft_spawn(rt, producer, (void *)i, NULL, &t[i]) != WEFT_OK) return 1;
  long vals[3];
  char log[3 * PER + 1];
  for (int n = 0; n < 3 * PER; n++) {
    weft_select_case_t cases[3];
    for (int i = 0; i < 3; i++) cases[i] = (weft_select_case_t){chans[i], WEFT_SELECT_RECV, &vals[i]};
    size_t chosen = 0;
    if (weft_select(cases, 3, WEFT_FOREVER, 0, &chosen) != WEFT_OK) return 1;
    log[n] = (char)('a' + chosen);
  }
  log[3 * PER] = 0;
  for (int i = 0; i < 3; i++) weft_join(t[i], WEFT_FOREVER, NULL, NULL);
  for (int i = 0; i < 3; i++) weft_chan_release(chans[i]);
  printf("%s\n", log);
  return weft_runtime_close(rt) == WEFT_OK ? 0 : 1;
}
