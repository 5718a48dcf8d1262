/* Planted bug: `if` instead of `while` around a condition wait. Two consumers, one
 * item, and a broadcast: the consumer woken second finds nothing left and takes an item
 * that is not there. */
#include "common.h"

static weft_mutex_t lock;
static weft_cond_t nonempty;
static int items;

static int32_t consumer(void *arg, void **result) {
  (void)arg;
  (void)result;
  check(weft_mutex_lock(&lock), "lock");
  if (items == 0) check(weft_cond_wait(&nonempty, &lock), "weft_cond_wait"); /* the bug */
  items--;
  int bad = items < 0;
  check(weft_mutex_unlock(&lock), "unlock");
  if (bad) {
    printf("took an item that was not there (items = %d)\n", items);
    exit(1);
  }
  return 0;
}

int main(void) {
  weft_runtime_t *rt = open_runtime();
  check(weft_mutex_init(rt, &lock, 0), "weft_mutex_init");
  check(weft_cond_init(rt, &nonempty), "weft_cond_init");
  weft_task_t *c1 = spawn(rt, consumer, NULL);
  weft_task_t *c2 = spawn(rt, consumer, NULL);
  for (int i = 0; i < 2; i++) {
    check(weft_mutex_lock(&lock), "lock");
    items++;
    check(weft_cond_broadcast(&nonempty), "weft_cond_broadcast");
    check(weft_mutex_unlock(&lock), "unlock");
  }
  join(c1);
  join(c2);
  weft_cond_destroy(&nonempty);
  weft_mutex_destroy(&lock);
  check(weft_runtime_close(rt), "weft_runtime_close");
  printf("items %d\n", items);
  return 0;
}
