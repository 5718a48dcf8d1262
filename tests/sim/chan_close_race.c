/* Planted bug: a channel closed while a sender may still send. The main task closes
 * the channel once it has received what it expected from the first producer, but the
 * second producer has not necessarily sent yet: its send then fails (WEFT_ECLOSED). */
#include "common.h"

static weft_chan_t *ch;

static int32_t producer(void *arg, void **result) {
  (void)result;
  long v = (long)arg;
  weft_status_t s = weft_chan_send(ch, &v, WEFT_FOREVER);
  if (s != WEFT_OK) {
    printf("producer %ld: send failed: %s\n", v, weft_strerror(s));
    exit(1);
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_chan_new(rt, sizeof(long), 4, NULL, &ch), "weft_chan_new");
  weft_task_t *p1 = spawn(rt, producer, (void *)1L);
  weft_task_t *p2 = spawn(rt, producer, (void *)2L);
  long v = 0;
  check(weft_chan_recv(ch, &v, WEFT_FOREVER), "weft_chan_recv");
  check(weft_chan_close(ch), "weft_chan_close"); /* the bug: p2 may not have sent */
  join(p1);
  join(p2);
  weft_chan_release(ch);
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("received %ld\n", v);
  return 0;
}
