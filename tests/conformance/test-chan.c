/* Channels: ordering, message accounting, close and drain, drops, deadlines, cancellation. */
#include "chan-helpers.h"

/* ---- message accounting: 4 producers x 4 consumers -------------------------------- */

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 250000ull /* messages each producer sends (a million in all; see test_volume) */

/* A message: producer index in the high 32 bits, sequence number in the low 32. */
typedef struct {
  weft_chan_t *ch;
  uint64_t producer;
  uint64_t count;
  /* consumer results */
  uint64_t sum;
  uint64_t received;
  uint64_t out_of_order;
} flow_t;

static int32_t produce(void *arg, void **result) {
  (void)result;
  flow_t *f = arg;
  for (uint64_t i = 0; i < f->count; i++) {
    uint64_t v = (f->producer << 32) | i;
    weft_status_t s = weft_chan_send(f->ch, &v, WEFT_FOREVER);
    if (s != WEFT_OK) return s;
  }
  return 0;
}

/* Receives until the channel is closed and drained. Each producer's messages must come
 * in order (per consumer: a FIFO channel never reorders one producer's sends). */
static int32_t consume(void *arg, void **result) {
  (void)result;
  flow_t *f = arg;
  int64_t last[PRODUCERS];
  for (int p = 0; p < PRODUCERS; p++) last[p] = -1;
  for (;;) {
    uint64_t v;
    weft_status_t s = weft_chan_recv(f->ch, &v, WEFT_FOREVER);
    if (s == WEFT_ECLOSED) return 0;
    if (s != WEFT_OK) return s;
    uint64_t p = v >> 32;
    int64_t seq = (int64_t)(v & 0xffffffffu);
    if (p >= PRODUCERS) return 100;
    if (seq <= last[p]) f->out_of_order++;
    last[p] = seq;
    f->sum += v;
    f->received++;
  }
}

static void exact_sums(size_t capacity) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch = test_chan(rt, sizeof(uint64_t), capacity);
  flow_t prod[PRODUCERS], cons[CONSUMERS];
  weft_task_t *pt[PRODUCERS], *ct[CONSUMERS];
  memset(prod, 0, sizeof prod);
  memset(cons, 0, sizeof cons);
  for (int i = 0; i < CONSUMERS; i++) {
    cons[i].ch = ch;
    ct[i] = test_spawn(rt, consume, &cons[i]);
  }
  const uint64_t per_producer = test_volume(PER_PRODUCER);
  uint64_t expected = 0;
  for (int i = 0; i < PRODUCERS; i++) {
    prod[i].ch = ch;
    prod[i].producer = (uint64_t)i;
    prod[i].count = per_producer;
    expected += ((uint64_t)i << 32) * per_producer + per_producer * (per_producer - 1) / 2;
    pt[i] = test_spawn(rt, produce, &prod[i]);
  }
  for (int i = 0; i < PRODUCERS; i++) ASSERT_EQ(test_join(pt[i]), 0);
  ASSERT_OK(weft_chan_close(ch));
  uint64_t sum = 0, received = 0;
  for (int i = 0; i < CONSUMERS; i++) {
    ASSERT_EQ(test_join(ct[i]), 0);
    ASSERT_EQ(cons[i].out_of_order, 0);
    sum += cons[i].sum;
    received += cons[i].received;
  }
  ASSERT_EQ(received, PRODUCERS * per_producer);
  ASSERT(sum == expected);
  ASSERT_EQ(weft_chan_len(ch), 0);
  weft_chan_release(ch);
  test_close_runtime(rt);
}

TEST_IMPL(chan_sum_bounded_1) {
  exact_sums(1);
  return TEST_OK;
}

TEST_IMPL(chan_sum_bounded_64) {
  exact_sums(64);
  return TEST_OK;
}

TEST_IMPL(chan_sum_unbounded) {
  exact_sums(WEFT_CHAN_UNBOUNDED);
  return TEST_OK;
}

TEST_IMPL(chan_sum_rendezvous) {
  exact_sums(0);
  return TEST_OK;
}

/* One consumer sees every message: each producer's sequence arrives exactly in order,
 * without gaps, on every kind of channel. */
TEST_IMPL(chan_fifo_per_producer) {
  const size_t kinds[] = {0, 1, 8, WEFT_CHAN_UNBOUNDED};
  const uint64_t count = test_volume(50000);
  weft_runtime_t *rt = test_open_runtime();
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    weft_chan_t *ch = test_chan(rt, sizeof(uint64_t), kinds[k]);
    flow_t prod[PRODUCERS];
    weft_task_t *pt[PRODUCERS];
    memset(prod, 0, sizeof prod);
    for (int i = 0; i < PRODUCERS; i++) {
      prod[i].ch = ch;
      prod[i].producer = (uint64_t)i;
      prod[i].count = count;
      pt[i] = test_spawn(rt, produce, &prod[i]);
    }
    uint64_t next[PRODUCERS] = {0};
    for (uint64_t n = 0; n < PRODUCERS * count; n++) {
      uint64_t v;
      ASSERT_OK(weft_chan_recv(ch, &v, WEFT_FOREVER));
      uint64_t p = v >> 32;
      ASSERT(p < PRODUCERS);
      ASSERT_EQ(v & 0xffffffffu, next[p]);
      next[p]++;
    }
    for (int i = 0; i < PRODUCERS; i++) ASSERT_EQ(test_join(pt[i]), 0);
    uint64_t v;
    ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(ch, &v, 0));
    weft_chan_release(ch);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- close and drain ---------------------------------------------------------------- */

TEST_IMPL(chan_close_drains_then_closed) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {8, WEFT_CHAN_UNBOUNDED};
  for (size_t k = 0; k < 2; k++) {
    weft_chan_t *ch = test_chan(rt, sizeof(int), kinds[k]);
    for (int i = 0; i < 5; i++) ASSERT_OK(weft_chan_send(ch, &i, 0));
    ASSERT_OK(weft_chan_close(ch));
    ASSERT_OK(weft_chan_close(ch)); /* closing twice is allowed and does nothing */
    int v = 42;
    ASSERT_STATUS(WEFT_ECLOSED, weft_chan_send(ch, &v, WEFT_FOREVER)); /* at once, even with room */
    ASSERT_ERROR_MENTIONS("closed");
    ASSERT_EQ(weft_chan_len(ch), 5);
    for (int i = 0; i < 5; i++) {
      int got = -1;
      ASSERT_OK(weft_chan_recv(ch, &got, WEFT_FOREVER));
      ASSERT_EQ(got, i);
    }
    int untouched = 77;
    ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(ch, &untouched, WEFT_FOREVER));
    ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(ch, &untouched, 0));
    ASSERT_EQ(untouched, 77);
    ASSERT_EQ(weft_chan_len(ch), 0);
    weft_chan_release(ch);
  }
  /* a rendezvous channel closes with nothing to drain */
  weft_chan_t *ch = test_chan(rt, sizeof(int), 0);
  ASSERT_OK(weft_chan_close(ch));
  int v = 0;
  ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(ch, &v, 0));
  ASSERT_STATUS(WEFT_ECLOSED, weft_chan_send(ch, &v, 0));
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_chan_t *ch;
  uint64_t *elem;       /* a sender's moved pointer */
  weft_status_t status; /* what the blocked call returned */
  int kept;             /* the sender freed its own element after a failed send */
} blocked_t;

static int32_t send_moved(void *arg, void **result) {
  (void)result;
  blocked_t *b = arg;
  b->status = weft_chan_send(b->ch, &b->elem, WEFT_FOREVER);
  if (b->status != WEFT_OK) {
    free(b->elem); /* not taken: still ours */
    b->kept = 1;
  }
  return 0;
}

static int32_t recv_one(void *arg, void **result) {
  (void)result;
  blocked_t *b = arg;
  uint64_t *got = NULL;
  b->status = weft_chan_recv(b->ch, &got, WEFT_FOREVER);
  if (b->status == WEFT_OK) free(got);
  return 0;
}

/* Senders blocked on a full channel (bounded and rendezvous) get WEFT_ECLOSED at the
 * close; their elements are not delivered and are not dropped by the channel; the
 * buffered element is still received. */
TEST_IMPL(chan_close_wakes_blocked_senders) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {1, 0};
  for (size_t k = 0; k < 2; k++) {
    drop_counter_t drops;
    drop_counter_init(&drops, 16);
    weft_chan_opts_t opts;
    weft_chan_opts_init(&opts);
    opts.elem_drop = drop_heap_id;
    opts.drop_ud = &drops;
    weft_chan_t *ch = NULL;
    ASSERT_OK(weft_chan_new(rt, sizeof(uint64_t *), kinds[k], &opts, &ch));
    if (kinds[k] == 1) {
      uint64_t *first = heap_id(0);
      ASSERT_OK(weft_chan_send(ch, &first, 0));
    }
    blocked_t b[3];
    weft_task_t *t[3];
    for (int i = 0; i < 3; i++) {
      b[i] = (blocked_t){.ch = ch, .elem = heap_id((uint64_t)i + 1), .status = -1};
      t[i] = test_spawn(rt, send_moved, &b[i]);
    }
    test_sleep_ms(rt, 30);
    ASSERT_EQ(weft_chan_len(ch), kinds[k] == 1 ? 1 : 0);
    ASSERT_OK(weft_chan_close(ch));
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ(test_join(t[i]), 0);
      ASSERT_STATUS(WEFT_ECLOSED, b[i].status);
      ASSERT_EQ(b[i].kept, 1);
    }
    uint64_t *got = NULL;
    if (kinds[k] == 1) {
      ASSERT_OK(weft_chan_recv(ch, &got, 0));
      ASSERT_EQ(*got, 0);
      free(got);
    }
    ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(ch, &got, 0));
    weft_chan_release(ch);
    ASSERT_EQ(atomic_load(&drops.drops), 0); /* nothing undelivered was left */
    drop_counter_free(&drops);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* Receivers blocked on an empty channel of every kind get WEFT_ECLOSED at the close. */
TEST_IMPL(chan_close_wakes_blocked_receivers) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {0, 1, 16, WEFT_CHAN_UNBOUNDED};
  for (size_t k = 0; k < 4; k++) {
    weft_chan_t *ch = test_chan(rt, sizeof(uint64_t *), kinds[k]);
    blocked_t b[3];
    weft_task_t *t[3];
    for (int i = 0; i < 3; i++) {
      b[i] = (blocked_t){.ch = ch, .status = -1};
      t[i] = test_spawn(rt, recv_one, &b[i]);
    }
    test_sleep_ms(rt, 20);
    ASSERT_OK(weft_chan_close(ch));
    for (int i = 0; i < 3; i++) {
      ASSERT_EQ(test_join(t[i]), 0);
      ASSERT_STATUS(WEFT_ECLOSED, b[i].status);
    }
    weft_chan_release(ch);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- drops -------------------------------------------------------------------------- */

/* The last release drops every undelivered element exactly once and nothing else;
 * releases before the last drop nothing. */
TEST_IMPL(chan_drop_undelivered_once) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {16, WEFT_CHAN_UNBOUNDED, 0};
  const long sent[] = {10, 1000, 0};
  for (size_t k = 0; k < 3; k++) {
    drop_counter_t drops;
    drop_counter_init(&drops, sent[k] + 1);
    weft_chan_opts_t opts;
    weft_chan_opts_init(&opts);
    opts.elem_drop = drop_heap_id;
    opts.drop_ud = &drops;
    weft_chan_t *ch = NULL;
    ASSERT_OK(weft_chan_new(rt, sizeof(uint64_t *), kinds[k], &opts, &ch));
    for (long i = 0; i < sent[k]; i++) {
      uint64_t *p = heap_id((uint64_t)i);
      ASSERT_OK(weft_chan_send(ch, &p, 0));
    }
    long received = sent[k] / 2 - 1 > 0 ? sent[k] / 2 - 1 : 0;
    for (long i = 0; i < received; i++) {
      uint64_t *p = NULL;
      ASSERT_OK(weft_chan_recv(ch, &p, 0));
      ASSERT_EQ(*p, i);
      free(p); /* delivered: the receiver owns it */
    }
    /* a failed send leaves the element with the sender, never with the channel */
    ASSERT_OK(weft_chan_close(ch));
    uint64_t *late = heap_id((uint64_t)sent[k]);
    ASSERT_STATUS(WEFT_ECLOSED, weft_chan_send(ch, &late, 0));
    free(late);
    ASSERT(weft_chan_retain(ch) == ch);
    ASSERT(weft_chan_retain(ch) == ch);
    weft_chan_release(ch);
    weft_chan_release(ch);
    ASSERT_EQ(atomic_load(&drops.drops), 0);
    weft_chan_release(ch); /* the last reference */
    ASSERT_EQ(atomic_load(&drops.drops), sent[k] - received);
    ASSERT_EQ(atomic_load(&drops.twice), 0);
    for (long i = 0; i < sent[k]; i++) ASSERT_EQ(atomic_load(&drops.seen[i]), i >= received);
    drop_counter_free(&drops);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_chan_t *ch;
  uint64_t first, count;
  long sent, kept;
} mover_t;

static int32_t move_until_closed(void *arg, void **result) {
  (void)result;
  mover_t *m = arg;
  for (uint64_t i = 0; i < m->count; i++) {
    uint64_t *p = heap_id(m->first + i);
    weft_status_t s = weft_chan_send(m->ch, &p, WEFT_FOREVER);
    if (s == WEFT_ECLOSED) {
      free(p);
      m->kept++;
      return 0;
    }
    if (s != WEFT_OK) return s;
    m->sent++;
  }
  return 0;
}

/* Producers move heap pointers while a consumer takes some and the channel is closed
 * under them: every pointer is freed exactly once, by the receiver, by its sender after
 * WEFT_ECLOSED, or by elem_drop at the last release. Run under valgrind: no leak. */
TEST_IMPL(chan_drop_moved_pointers_under_close) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {0, 4, WEFT_CHAN_UNBOUNDED};
  for (size_t k = 0; k < 3; k++) {
    const uint64_t per = 2000;
    drop_counter_t drops;
    drop_counter_init(&drops, (long)(4 * per));
    weft_chan_opts_t opts;
    weft_chan_opts_init(&opts);
    opts.elem_drop = drop_heap_id;
    opts.drop_ud = &drops;
    weft_chan_t *ch = NULL;
    ASSERT_OK(weft_chan_new(rt, sizeof(uint64_t *), kinds[k], &opts, &ch));
    mover_t m[4];
    weft_task_t *t[4];
    for (int i = 0; i < 4; i++) {
      m[i] = (mover_t){.ch = ch, .first = (uint64_t)i * per, .count = per};
      t[i] = test_spawn(rt, move_until_closed, &m[i]);
    }
    long received = 0;
    for (int i = 0; i < 500; i++) {
      uint64_t *p = NULL;
      ASSERT_OK(weft_chan_recv(ch, &p, WEFT_FOREVER));
      free(p);
      received++;
    }
    ASSERT_OK(weft_chan_close(ch));
    long sent = 0;
    for (int i = 0; i < 4; i++) {
      ASSERT_EQ(test_join(t[i]), 0);
      sent += m[i].sent;
      ASSERT(m[i].sent == (long)per || m[i].kept == 1);
    }
    weft_chan_release(ch);
    ASSERT_EQ(atomic_load(&drops.twice), 0);
    ASSERT_EQ(received + atomic_load(&drops.drops), sent);
    drop_counter_free(&drops);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- deadlines and cancellation ----------------------------------------------------- */

TEST_IMPL(chan_deadlines_expire) {
  weft_runtime_t *rt = test_open_runtime();
  int v = 1;
  /* send on a full bounded channel */
  weft_chan_t *full = test_chan(rt, sizeof(int), 1);
  ASSERT_OK(weft_chan_send(full, &v, 0));
  int64_t deadline = test_after_ms(rt, 30);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(full, &v, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_ERROR_MENTIONS("full");
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(full, &v, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(full, &v, -1));
  ASSERT_EQ(weft_chan_len(full), 1);
  weft_chan_release(full);
  /* recv on an empty channel */
  weft_chan_t *empty = test_chan(rt, sizeof(int), 4);
  deadline = test_after_ms(rt, 30);
  int out = 5;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(empty, &out, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_EQ(out, 5);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(empty, &out, 0));
  weft_chan_release(empty);
  /* rendezvous: no receiver, so the send times out and delivers nothing */
  weft_chan_t *rv = test_chan(rt, sizeof(int), 0);
  deadline = test_after_ms(rt, 20);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(rv, &v, deadline));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(rv, &out, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(rv, &out, test_after_ms(rt, 10)));
  ASSERT_EQ(out, 5);
  weft_chan_release(rv);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_chan_t *ch;
  int send;
  weft_status_t status;
} canceled_t;

static int32_t block_forever(void *arg, void **result) {
  (void)result;
  canceled_t *c = arg;
  int v = 7;
  c->status = c->send ? weft_chan_send(c->ch, &v, WEFT_FOREVER) : weft_chan_recv(c->ch, &v, WEFT_FOREVER);
  return 0;
}

/* A task blocked in send (full bounded, rendezvous) or recv is woken by weft_cancel
 * with WEFT_ECANCELED, and its element is not delivered. */
TEST_IMPL(chan_cancel_blocked) {
  weft_runtime_t *rt = test_open_runtime();
  struct {
    size_t capacity;
    int send;
  } cases[] = {{1, 1}, {0, 1}, {0, 0}, {4, 0}, {WEFT_CHAN_UNBOUNDED, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    weft_chan_t *ch = test_chan(rt, sizeof(int), cases[i].capacity);
    int filler = 1;
    if (cases[i].capacity == 1) ASSERT_OK(weft_chan_send(ch, &filler, 0));
    canceled_t c = {.ch = ch, .send = cases[i].send, .status = -1};
    weft_task_t *t = test_spawn(rt, block_forever, &c);
    test_sleep_ms(rt, 20);
    ASSERT_OK(weft_cancel(t));
    ASSERT_EQ(test_join(t), 0);
    ASSERT_STATUS(WEFT_ECANCELED, c.status);
    int got = 0;
    if (cases[i].capacity == 1) {
      ASSERT_OK(weft_chan_recv(ch, &got, 0));
      ASSERT_EQ(got, 1);
    }
    ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(ch, &got, 0)); /* the cancelled send delivered nothing */
    weft_chan_release(ch);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_chan_t *ready;  /* has room and one element */
  weft_chan_t *empty;
  weft_status_t blocked_recv, try_recv, ready_send, ready_recv;
} pending_t;

static int32_t cancel_self_then_use(void *arg, void **result) {
  (void)result;
  pending_t *p = arg;
  if (weft_cancel(weft_task_self()) != WEFT_OK) return 1;
  int v = 3;
  p->blocked_recv = weft_chan_recv(p->empty, &v, WEFT_FOREVER);
  p->try_recv = weft_chan_recv(p->empty, &v, 0);
  p->ready_send = weft_chan_send(p->ready, &v, WEFT_FOREVER);
  p->ready_recv = weft_chan_recv(p->ready, &v, WEFT_FOREVER);
  return 0;
}

/* A cancelled task: a call that would wait returns WEFT_ECANCELED at once (before the
 * deadline is looked at); a call that can complete at once still completes, so the
 * task can still hand over or drain what it has. */
TEST_IMPL(chan_cancel_pending) {
  weft_runtime_t *rt = test_open_runtime();
  pending_t p = {.blocked_recv = -1, .try_recv = -1, .ready_send = -1, .ready_recv = -1};
  p.ready = test_chan(rt, sizeof(int), 4);
  p.empty = test_chan(rt, sizeof(int), 4);
  int one = 1;
  ASSERT_OK(weft_chan_send(p.ready, &one, 0));
  weft_task_t *t = test_spawn(rt, cancel_self_then_use, &p);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_STATUS(WEFT_ECANCELED, p.blocked_recv);
  ASSERT_STATUS(WEFT_ECANCELED, p.try_recv);
  ASSERT_STATUS(WEFT_OK, p.ready_send);
  ASSERT_STATUS(WEFT_OK, p.ready_recv);
  ASSERT_EQ(weft_chan_len(p.ready), 1);
  weft_chan_release(p.ready);
  weft_chan_release(p.empty);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- kinds, sizes, errors ----------------------------------------------------------- */

static int32_t signal_n(void *arg, void **result) {
  (void)result;
  weft_chan_t *ch = arg;
  for (int i = 0; i < 1000; i++)
    if (weft_chan_send(ch, NULL, WEFT_FOREVER) != WEFT_OK) return 1;
  return 0;
}

/* elem_size 0: bare signals, counted; element pointers may be NULL. */
TEST_IMPL(chan_zero_size_elements) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch = test_chan(rt, 0, 3);
  for (int i = 0; i < 3; i++) ASSERT_OK(weft_chan_send(ch, NULL, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(ch, NULL, 0));
  ASSERT_EQ(weft_chan_len(ch), 3);
  char dummy;
  ASSERT_OK(weft_chan_recv(ch, &dummy, 0)); /* a pointer is allowed too, nothing written */
  ASSERT_OK(weft_chan_recv(ch, NULL, 0));
  ASSERT_OK(weft_chan_recv(ch, NULL, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(ch, NULL, 0));
  weft_chan_release(ch);
  const size_t kinds[] = {0, WEFT_CHAN_UNBOUNDED};
  for (int k = 0; k < 2; k++) {
    ch = test_chan(rt, 0, kinds[k]);
    weft_task_t *t = test_spawn(rt, signal_n, ch);
    for (int i = 0; i < 1000; i++) ASSERT_OK(weft_chan_recv(ch, NULL, WEFT_FOREVER));
    ASSERT_EQ(test_join(t), 0);
    weft_chan_release(ch);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(chan_unbounded_grows) {
  weft_runtime_t *rt = test_open_runtime();
  /* an odd element size, so slots straddle words */
  typedef struct {
    uint32_t seq;
    char tag[9];
  } odd_t;
  weft_chan_t *ch = test_chan(rt, sizeof(odd_t), WEFT_CHAN_UNBOUNDED);
  ASSERT(weft_chan_capacity(ch) == WEFT_CHAN_UNBOUNDED);
  uint32_t head = 0;
  for (uint32_t i = 0; i < 100000; i++) {
    odd_t v = {.seq = i};
    snprintf(v.tag, sizeof v.tag, "t%u", i % 1000000u);
    ASSERT_OK(weft_chan_send(ch, &v, 0));
    if (i % 3 == 0) { /* interleave receives so the ring wraps while it grows */
      odd_t got;
      ASSERT_OK(weft_chan_recv(ch, &got, 0));
      ASSERT_EQ(got.seq, head);
      head++;
    }
  }
  ASSERT_EQ(weft_chan_len(ch), 100000 - head);
  while (head < 100000) {
    odd_t got;
    ASSERT_OK(weft_chan_recv(ch, &got, 0));
    ASSERT_EQ(got.seq, head);
    char tag[9];
    snprintf(tag, sizeof tag, "t%u", head % 1000000u);
    ASSERT(strcmp(got.tag, tag) == 0);
    head++;
  }
  ASSERT_EQ(weft_chan_len(ch), 0);
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}

TEST_IMPL(chan_len_capacity) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *rv = test_chan(rt, 8, 0), *b = test_chan(rt, 8, 3);
  ASSERT_EQ(weft_chan_capacity(rv), 0);
  ASSERT_EQ(weft_chan_capacity(b), 3);
  uint64_t v = 9;
  for (int i = 0; i < 3; i++) {
    ASSERT_EQ(weft_chan_len(b), i);
    ASSERT_OK(weft_chan_send(b, &v, 0));
  }
  ASSERT_EQ(weft_chan_len(b), 3);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_send(b, &v, 0));
  ASSERT_EQ(weft_chan_len(rv), 0);
  weft_chan_release(rv);
  weft_chan_release(b);
  test_close_runtime(rt);
  return TEST_OK;
}

static void never_called(void *elem, void *ud) {
  (void)elem;
  (void)ud;
  abort();
}

TEST_IMPL(chan_errors) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch = (weft_chan_t *)0x1;
  int v = 0;
  /* weft_chan_new */
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_new(NULL, 4, 1, NULL, &ch));
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_new(rt, 4, 1, NULL, NULL));
  weft_chan_opts_t opts;
  weft_chan_opts_init(&opts);
  opts.struct_size = 0;
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_new(rt, 4, 1, &opts, &ch));
  ASSERT_ERROR_MENTIONS("struct_size");
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, 8, SIZE_MAX / 2, NULL, &ch));
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, SIZE_MAX / 4, 8, NULL, &ch));
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, 1, (size_t)1 << 62, NULL, &ch));
  ASSERT(ch == (weft_chan_t *)0x1); /* outputs are written only on success */
  weft_chan_opts_init(NULL);        /* ignored */

  /* NULL channel */
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_send(NULL, &v, 0));
  ASSERT_ERROR_MENTIONS("channel is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_recv(NULL, &v, 0));
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_close(NULL));
  ASSERT_EQ(weft_chan_len(NULL), 0);
  ASSERT_EQ(weft_chan_capacity(NULL), 0);
  ASSERT(weft_chan_retain(NULL) == NULL);
  weft_chan_release(NULL); /* a no-op */

  /* NULL element buffers */
  ch = test_chan(rt, sizeof(int), 2);
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_send(ch, NULL, 0));
  ASSERT_ERROR_MENTIONS("elem is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_recv(ch, NULL, 0));
  ASSERT_ERROR_MENTIONS("out is NULL");
  ASSERT_EQ(weft_chan_len(ch), 0);

  /* things that are not channels */
  uint64_t not_a_channel[16] = {0};
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_send((weft_chan_t *)not_a_channel, &v, 0));
  ASSERT_ERROR_MENTIONS("not a weft channel");
  weft_mutex_t m;
  ASSERT_OK(weft_mutex_init(rt, &m, 0));
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_close((weft_chan_t *)&m));
  ASSERT_EQ(weft_chan_len((weft_chan_t *)&m), 0);
  ASSERT(weft_chan_retain((weft_chan_t *)&m) == NULL);
  weft_chan_release((weft_chan_t *)&m); /* refused, nothing freed */
  ASSERT_ERROR_MENTIONS("not a weft channel");
  ASSERT_OK(weft_mutex_destroy(&m));
  weft_blob_t *blob = NULL;
  ASSERT_OK(weft_blob_new("x", 1, &blob));
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_recv((weft_chan_t *)blob, &v, 0));
  weft_blob_release(blob);

  /* a released channel (its shell stays readable: weft keeps released shells) */
  weft_chan_opts_init(&opts);
  opts.elem_drop = never_called;
  weft_chan_t *gone = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(int), 2, &opts, &gone));
  weft_chan_release(gone);
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_send(gone, &v, 0));
  ASSERT_ERROR_MENTIONS("released");
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_close(gone));
  ASSERT(weft_chan_retain(gone) == NULL);
  weft_chan_release(gone); /* a second release is refused, not a double free */
  ASSERT_ERROR_MENTIONS("released");
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}

/* After the runtime closes its channels refuse work, but can still be released (and
 * their undelivered elements dropped). */
TEST_IMPL(chan_after_runtime_close) {
  weft_runtime_t *rt = test_open_runtime();
  drop_counter_t drops;
  drop_counter_init(&drops, 4);
  weft_chan_opts_t opts;
  weft_chan_opts_init(&opts);
  opts.elem_drop = drop_heap_id;
  opts.drop_ud = &drops;
  weft_chan_t *ch = NULL;
  ASSERT_OK(weft_chan_new(rt, sizeof(uint64_t *), 4, &opts, &ch));
  for (uint64_t i = 0; i < 3; i++) {
    uint64_t *p = heap_id(i);
    ASSERT_OK(weft_chan_send(ch, &p, 0));
  }
  test_close_runtime(rt);
  uint64_t *p = NULL;
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_recv(ch, &p, 0));
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_send(ch, &p, 0));
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_close(ch));
  ASSERT_EQ(weft_chan_capacity(ch), 4);
  ASSERT_STATUS(WEFT_EINVAL, weft_chan_new(rt, 8, 1, NULL, &ch));
  weft_chan_release(ch);
  ASSERT_EQ(atomic_load(&drops.drops), 3);
  drop_counter_free(&drops);
  return TEST_OK;
}

/* What elem_drop saw: how many elements, their sequence numbers' sum, and how many
 * were less aligned than any C type of their size may need. */
typedef struct {
  size_t elem_size;
  uint64_t drops;
  uint64_t sum;
  uint64_t misaligned;
} aligned_drops_t;

static void drop_checking_alignment(void *elem, void *ud) {
  aligned_drops_t *d = ud;
  /* A C type's size is a multiple of its alignment, and none here needs more than 16. */
  uintptr_t need = d->elem_size % 16 == 0 ? 16 : 8;
  if ((uintptr_t)elem % need != 0) d->misaligned++;
  uint64_t seq;
  memcpy(&seq, elem, sizeof seq);
  d->sum += seq;
  d->drops++;
}

/* elem_drop gets each element aligned as a C type of its size needs (16 bytes for a
 * size that is a multiple of 16: a long double, an __int128), in every kind of buffer,
 * across an unbounded channel's blocks. */
TEST_IMPL(chan_drop_sees_aligned_elements) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t sizes[] = {8, 16, 24, 32, 40, 48, 64};
  const size_t caps[] = {1, 7, 200, WEFT_CHAN_UNBOUNDED};
  enum { SENT = 150, RECEIVED = 20 };
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    for (size_t ci = 0; ci < sizeof caps / sizeof caps[0]; ci++) {
      size_t size = sizes[si], cap = caps[ci];
      aligned_drops_t d = {.elem_size = size};
      weft_chan_opts_t opts;
      weft_chan_opts_init(&opts);
      opts.elem_drop = drop_checking_alignment;
      opts.drop_ud = &d;
      weft_chan_t *ch = NULL;
      ASSERT_OK(weft_chan_new(rt, size, cap, &opts, &ch));
      unsigned char elem[64] = {0};
      uint64_t sent = 0, expected_sum = 0;
      for (uint64_t i = 0; i < SENT; i++) {
        memcpy(elem, &i, sizeof i);
        if (weft_chan_send(ch, elem, 0) != WEFT_OK) break; /* full */
        sent++;
        expected_sum += i;
      }
      ASSERT_EQ(sent, cap == WEFT_CHAN_UNBOUNDED ? SENT : (cap < SENT ? cap : SENT));
      uint64_t received = 0;
      for (; received < RECEIVED && received < sent; received++) {
        ASSERT_OK(weft_chan_recv(ch, elem, 0));
        uint64_t seq;
        memcpy(&seq, elem, sizeof seq);
        ASSERT_EQ(seq, received);
        expected_sum -= seq;
      }
      weft_chan_release(ch);
      ASSERT_EQ(d.drops, sent - received);
      ASSERT_EQ(d.sum, expected_sum);
      if (d.misaligned != 0) {
        fprintf(stderr, "%zu-byte elements, capacity %zu: %llu of %llu dropped misaligned\n", size, cap,
                (unsigned long long)d.misaligned, (unsigned long long)d.drops);
      }
      ASSERT_EQ(d.misaligned, 0);
    }
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- races: close and deadlines against hand-offs ----------------------------------- */

typedef struct {
  weft_runtime_t *rt;
  weft_chan_t *ch;
  uint64_t producer;
  _Atomic int64_t *timeout_ns; /* shared by the racers; 0: wait forever */
  uint64_t ok_sum, ok_count, timeouts;
  atomic_int *received; /* shared by the receivers: how many they got so far */
} racer_t;

static int64_t racer_deadline(racer_t *r) {
  int64_t timeout_ns = atomic_load(r->timeout_ns);
  return timeout_ns == 0 ? WEFT_FOREVER : weft_deadline_after(r->rt, timeout_ns);
}

/* Sends increasing values until the channel is closed; counts what was accepted. */
static int32_t race_send(void *arg, void **result) {
  (void)result;
  racer_t *r = arg;
  for (uint64_t i = 1;; i++) {
    uint64_t v = (r->producer << 40) | i;
    weft_status_t s = weft_chan_send(r->ch, &v, racer_deadline(r));
    if (s == WEFT_ECLOSED) return 0;
    if (s == WEFT_ETIMEDOUT) {
      r->timeouts++;
      continue;
    }
    if (s != WEFT_OK) return s;
    r->ok_sum += v;
    r->ok_count++;
  }
}

static int32_t race_recv(void *arg, void **result) {
  (void)result;
  racer_t *r = arg;
  for (;;) {
    uint64_t v;
    weft_status_t s = weft_chan_recv(r->ch, &v, racer_deadline(r));
    if (s == WEFT_ECLOSED) return 0;
    if (s == WEFT_ETIMEDOUT) {
      r->timeouts++;
      continue;
    }
    if (s != WEFT_OK) return s;
    r->ok_sum += v;
    r->ok_count++;
    atomic_fetch_add(r->received, 1);
  }
}

/* 4 senders and 4 receivers run flat out, with very short deadlines (timeouts race
 * with hand-offs) or none, and the channel is closed under them: every send that
 * returned WEFT_OK was received exactly once, and nothing else was. */
TEST_IMPL(chan_races_lose_nothing) {
  weft_runtime_t *rt = test_open_runtime();
  const size_t kinds[] = {0, 1, 4, WEFT_CHAN_UNBOUNDED};
  const int64_t timeouts[] = {0, 2000};
  for (size_t k = 0; k < 4; k++) {
    for (size_t d = 0; d < 2; d++) {
      weft_chan_t *ch = test_chan(rt, sizeof(uint64_t), kinds[k]);
      racer_t s[4], r[4];
      weft_task_t *st[4], *rt_[4];
      atomic_int received = 0;
      _Atomic int64_t timeout_ns = timeouts[d];
      for (int i = 0; i < 4; i++) {
        s[i] = (racer_t){.rt = rt, .ch = ch, .producer = (uint64_t)i, .timeout_ns = &timeout_ns};
        r[i] = (racer_t){.rt = rt, .ch = ch, .timeout_ns = &timeout_ns, .received = &received};
        rt_[i] = test_spawn(rt, race_recv, &r[i]);
        st[i] = test_spawn(rt, race_send, &s[i]);
      }
      /* Close once the race is on (some hand-offs done), however slow the machine. A
       * machine slow enough sees every short deadline expire before the other side comes
       * (under valgrind, which runs one thread at a time, a rendezvous is hardly ever
       * met): until the race is on, the deadline doubles at each look, so it soon is,
       * with timeouts still racing the hand-offs. A fast machine is on at once. */
      int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
      while (atomic_load(&received) < 100) {
        if (weft_now(rt) >= give_up)
          TEST_FAIL_("capacity %zu, deadlines %lld ns: %d hand-offs in %d ms", kinds[k],
                     (long long)atomic_load(&timeout_ns), atomic_load(&received), TEST_PATIENCE_MS);
        test_sleep_ms(rt, 1);
        int64_t timeout = atomic_load(&timeout_ns);
        if (timeout != 0 && timeout < 1000000000) atomic_store(&timeout_ns, timeout * 2);
      }
      ASSERT_OK(weft_chan_close(ch));
      uint64_t sent_sum = 0, sent = 0, got_sum = 0, got = 0;
      for (int i = 0; i < 4; i++) {
        ASSERT_EQ(test_join(st[i]), 0);
        ASSERT_EQ(test_join(rt_[i]), 0);
        sent_sum += s[i].ok_sum;
        sent += s[i].ok_count;
        got_sum += r[i].ok_sum;
        got += r[i].ok_count;
      }
      ASSERT(sent > 0);
      ASSERT_EQ(got, sent);
      ASSERT(got_sum == sent_sum);
      weft_chan_release(ch);
    }
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* Every weft_chan_close that returns leaves the channel closed, also the one that lost
 * the race to a concurrent close: a send after it returned always fails. */
typedef struct {
  weft_runtime_t *rt;
  weft_chan_t *ch;
  atomic_int *go;
  int sent_after_close;
} closer_t;

static int32_t close_then_send(void *arg, void **result) {
  (void)result;
  closer_t *c = arg;
  while (!atomic_load(c->go)) weft_yield(c->rt);
  if (weft_chan_close(c->ch) != WEFT_OK) return 1;
  uint64_t v = 1;
  weft_status_t s = weft_chan_send(c->ch, &v, 0);
  if (s == WEFT_OK) c->sent_after_close++;
  else if (s != WEFT_ECLOSED) return 2;
  return 0;
}

TEST_IMPL(chan_close_race_leaves_it_closed) {
  weft_runtime_t *rt = test_open_runtime();
  enum { ROUNDS = 300, CLOSERS = 3 };
  int sent_after_close = 0;
  for (int round = 0; round < ROUNDS; round++) {
    weft_chan_t *ch = test_chan(rt, sizeof(uint64_t), WEFT_CHAN_UNBOUNDED);
    atomic_int go = 0;
    closer_t c[CLOSERS];
    weft_task_t *t[CLOSERS];
    for (int i = 0; i < CLOSERS; i++) {
      c[i] = (closer_t){.rt = rt, .ch = ch, .go = &go};
      t[i] = test_spawn(rt, close_then_send, &c[i]);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < CLOSERS; i++) {
      ASSERT_EQ(test_join(t[i]), 0);
      sent_after_close += c[i].sent_after_close;
    }
    ASSERT_EQ(weft_chan_len(ch), 0);
    weft_chan_release(ch);
  }
  ASSERT_EQ(sent_after_close, 0);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Sizes that cannot fit in memory are refused at creation, the same on every plugin. */
TEST_IMPL(chan_impossible_sizes) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch = NULL;
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, SIZE_MAX / 2, WEFT_CHAN_UNBOUNDED, NULL, &ch));
  ASSERT_ERROR_MENTIONS("does not fit in memory");
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, SIZE_MAX / 2, 4, NULL, &ch));
  ASSERT(ch == NULL);
  /* Sizes libweft lets through (a first block fits in the address space) that no
   * allocation can serve: refused at creation too, not at the first send (pthread
   * allocated an unbounded ring only then). */
  ASSERT_STATUS(WEFT_ENOMEM, weft_chan_new(rt, (size_t)1 << 56, WEFT_CHAN_UNBOUNDED, NULL, &ch));
  ASSERT_ERROR_MENTIONS("unbounded");
  ASSERT(ch == NULL);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- hand-offs: each side waits for the other at every message ---- */

/* How a hand-off consumer waits for its next token. */
enum { TAKE_UNTIMED, TAKE_TIMED, TAKE_SELECT, TAKERS };

typedef struct {
  weft_runtime_t *rt;
  weft_chan_t *tokens, *acks, *idle;
  int how;
  long taken;
  long bad; /* a token not above the last one this consumer took, or a bad outcome */
} taker_t;

/* One receive of a token the way `t->how` says; a timed wait that expires is retried. */
static weft_status_t take_token(taker_t *t, long *token) {
  for (;;) {
    weft_status_t s;
    if (t->how == TAKE_UNTIMED) {
      s = weft_chan_recv(t->tokens, token, test_after_ms(t->rt, TEST_PATIENCE_MS));
    } else if (t->how == TAKE_TIMED) {
      s = weft_chan_recv(t->tokens, token, test_after_ms(t->rt, 1));
    } else {
      long never;
      weft_select_case_t cases[2] = {{t->idle, WEFT_SELECT_RECV, &never}, {t->tokens, WEFT_SELECT_RECV, token}};
      size_t chosen = 99;
      s = weft_select(cases, 2, test_after_ms(t->rt, 1), 0, &chosen);
      if ((s == WEFT_OK || s == WEFT_ECLOSED) && chosen != 1) t->bad++;
    }
    if (s != WEFT_ETIMEDOUT) return s;
  }
}

static int32_t take_and_ack(void *arg, void **result) {
  (void)result;
  taker_t *t = arg;
  long token, last = -1;
  weft_status_t s;
  while ((s = take_token(t, &token)) == WEFT_OK) {
    if (token <= last) t->bad++;
    last = token;
    t->taken++;
    if (weft_chan_send(t->acks, &token, test_after_ms(t->rt, TEST_PATIENCE_MS)) != WEFT_OK) return 2;
  }
  return s == WEFT_ECLOSED ? 0 : 1;
}

/* Tokens handed one at a time to one consumer, each acknowledged on a rendezvous
 * channel before the next is sent: every hand-over finds the other side waiting, or
 * about to, which is where a waiter on an OS thread watches before it parks (two
 * threads: a spare CPU here). Three rounds, the consumer waiting each way of
 * `take_token`. Every token must be taken exactly once, in order, and acknowledged
 * with its own value; the close must end the consumer's wait as closed. */
static void handoff_stream(size_t capacity) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *acks = test_chan(rt, sizeof(long), 0), *idle = test_chan(rt, sizeof(long), 0);
  const long n = (long)test_volume(10000);
  for (int how = 0; how < TAKERS; how++) {
    weft_chan_t *tokens = test_chan(rt, sizeof(long), capacity);
    taker_t t = {.rt = rt, .tokens = tokens, .acks = acks, .idle = idle, .how = how};
    weft_task_t *task = test_spawn(rt, take_and_ack, &t);
    for (long i = 0; i < n; i++) {
      ASSERT_OK(weft_chan_send(tokens, &i, test_after_ms(rt, TEST_PATIENCE_MS)));
      long ack = -1;
      ASSERT_OK(weft_chan_recv(acks, &ack, test_after_ms(rt, TEST_PATIENCE_MS)));
      ASSERT_EQ(ack, i);
    }
    ASSERT_OK(weft_chan_close(tokens));
    ASSERT_EQ(test_join(task), 0);
    ASSERT_EQ(t.bad, 0);
    ASSERT_EQ(t.taken, n);
    weft_chan_release(tokens);
  }
  ASSERT_EQ(weft_chan_len(acks), 0);
  weft_chan_release(acks);
  weft_chan_release(idle);
  test_close_runtime(rt);
}

TEST_IMPL(chan_handoff_stream_rendezvous) {
  handoff_stream(0);
  return TEST_OK;
}

TEST_IMPL(chan_handoff_stream_bounded_1) {
  handoff_stream(1);
  return TEST_OK;
}
