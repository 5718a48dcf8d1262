/* Planted bug: check-then-act on a channel (ABA-style). Two workers each see one
 * element queued and then receive without waiting: between one worker's look and its
 * receive, the other takes the element. */
#include "common.h"

static weft_chan_t *ch;

static int32_t worker(void *arg, void **result) {
  (void)arg;
  (void)result;
  if (weft_chan_len(ch) > 0) {
    long v;
    weft_status_t s = weft_chan_recv(ch, &v, 0); /* "cannot fail: we saw an element" */
    if (s != WEFT_OK) {
      printf("the element we saw was gone: %s\n", weft_strerror(s));
      exit(1);
    }
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_chan_new(rt, sizeof(long), 4, NULL, &ch), "weft_chan_new");
  long v = 7;
  check(weft_chan_send(ch, &v, WEFT_FOREVER), "weft_chan_send");
  weft_task_t *a = spawn(rt, worker, NULL);
  weft_task_t *b = spawn(rt, worker, NULL);
  join(a);
  join(b);
  weft_chan_release(ch);
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("ok\n");
  return 0;
}
