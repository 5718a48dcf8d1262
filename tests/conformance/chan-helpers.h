/* Helpers shared by the channel, select and blob tests. */
#ifndef WEFT_CONFORMANCE_CHAN_HELPERS_H
#define WEFT_CONFORMANCE_CHAN_HELPERS_H

#include <stdatomic.h>

#include "test.h"

/* A channel with default options; fails the test if it cannot be made. */
static inline weft_chan_t *test_chan(weft_runtime_t *rt, size_t elem_size, size_t capacity) {
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, elem_size, capacity, NULL, &ch));
  ASSERT(ch != NULL);
  return ch;
}

/* Counts elem_drop calls on heap elements (each a malloc'ed uint64_t id, freed here),
 * and checks that no id is dropped twice. */
typedef struct {
  atomic_long drops;
  atomic_uchar *seen; /* one flag per id, or NULL */
  long ids;
  atomic_long twice;
} drop_counter_t;

static inline void drop_counter_init(drop_counter_t *d, long ids) {
  atomic_init(&d->drops, 0);
  atomic_init(&d->twice, 0);
  d->ids = ids;
  d->seen = ids > 0 ? calloc((size_t)ids, sizeof *d->seen) : NULL;
}

static inline void drop_counter_free(drop_counter_t *d) { free(d->seen); }

/* elem_drop for channels of `uint64_t *`. */
static inline void drop_heap_id(void *elem, void *ud) {
  drop_counter_t *d = ud;
  uint64_t *p = *(uint64_t **)elem;
  if (d->seen != NULL && (long)*p < d->ids && atomic_exchange(&d->seen[*p], 1) != 0) atomic_fetch_add(&d->twice, 1);
  atomic_fetch_add(&d->drops, 1);
  free(p);
}

static inline uint64_t *heap_id(uint64_t id) {
  uint64_t *p = malloc(sizeof *p);
  ASSERT(p != NULL);
  *p = id;
  return p;
}

#endif
