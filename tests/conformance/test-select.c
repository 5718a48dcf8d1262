/* Select: fairness, order, many channels, wake-ups, close, deadlines, cancellation. */
#include "chan-helpers.h"

#define ROUNDS 100000 /* see test_volume */

/* Four always-ready cases (two sends on unbounded channels, two receives on channels
 * refilled after each round): over 100000 rounds each must be chosen at least 20% of
 * its fair share (a bound a fair choice misses with negligible probability; under
 * valgrind, over 1000 rounds, still more than 14 standard deviations below the mean). */
TEST_IMPL(select_fairness) {
  const int rounds = (int)test_volume(ROUNDS);
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch[4];
  int bufs[4] = {0};
  weft_select_case_t cases[4];
  for (int i = 0; i < 4; i++) {
    ch[i] = test_chan(rt, sizeof(int), i < 2 ? WEFT_CHAN_UNBOUNDED : 1);
    if (i >= 2) ASSERT_OK(weft_chan_send(ch[i], &i, 0));
    cases[i] = (weft_select_case_t){ch[i], i < 2 ? WEFT_SELECT_SEND : WEFT_SELECT_RECV, &bufs[i]};
  }
  long count[4] = {0};
  for (int r = 0; r < rounds; r++) {
    size_t chosen = 99;
    ASSERT_OK(weft_select(cases, 4, 0, 0, &chosen));
    ASSERT(chosen < 4);
    count[chosen]++;
    int v = 0;
    if (chosen < 2)
      ASSERT_OK(weft_chan_recv(ch[chosen], &v, 0)); /* keep the unbounded ones small */
    else
      ASSERT_OK(weft_chan_send(ch[chosen], &v, 0)); /* ready again */
  }
  for (int i = 0; i < 4; i++) {
    if (count[i] < rounds / 4 / 5) TEST_FAIL_("case %d chosen %ld times of %d", i, count[i], rounds);
  }
  /* ready cases among ones that are not: still fair among the ready */
  weft_chan_t *idle = test_chan(rt, sizeof(int), 1);
  weft_select_case_t mixed[4] = {
      {idle, WEFT_SELECT_RECV, &bufs[0]}, {ch[0], WEFT_SELECT_SEND, &bufs[1]},
      {idle, WEFT_SELECT_RECV, &bufs[2]}, {ch[1], WEFT_SELECT_SEND, &bufs[3]}};
  long picks[4] = {0};
  for (int r = 0; r < rounds / 2; r++) {
    size_t chosen = 99;
    ASSERT_OK(weft_select(mixed, 4, 0, 0, &chosen));
    ASSERT(chosen == 1 || chosen == 3);
    picks[chosen]++;
    int v;
    ASSERT_OK(weft_chan_recv(ch[chosen == 1 ? 0 : 1], &v, 0));
  }
  ASSERT(picks[1] >= rounds / 2 / 2 / 5 && picks[3] >= rounds / 2 / 2 / 5);
  weft_chan_release(idle);
  for (int i = 0; i < 4; i++) weft_chan_release(ch[i]);
  test_close_runtime(rt);
  return TEST_OK;
}

/* WEFT_SELECT_ORDERED takes the first ready case in array order. */
TEST_IMPL(select_ordered_first_ready) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *empty = test_chan(rt, sizeof(int), 1);
  weft_chan_t *ready = test_chan(rt, sizeof(int), 1);
  weft_chan_t *room = test_chan(rt, sizeof(int), WEFT_CHAN_UNBOUNDED);
  int v = 5, a = 0, b = 0, c = 6;
  weft_select_case_t cases[3] = {
      {empty, WEFT_SELECT_RECV, &a}, {ready, WEFT_SELECT_RECV, &b}, {room, WEFT_SELECT_SEND, &c}};
  for (int r = 0; r < 1000; r++) {
    ASSERT_OK(weft_chan_send(ready, &v, 0));
    size_t chosen = 99;
    ASSERT_OK(weft_select(cases, 3, 0, WEFT_SELECT_ORDERED, &chosen));
    ASSERT_EQ(chosen, 1);
    ASSERT_EQ(b, 5);
  }
  ASSERT_EQ(weft_chan_len(room), 0);
  ASSERT_OK(weft_chan_send(empty, &v, 0));
  ASSERT_OK(weft_chan_send(ready, &v, 0));
  size_t chosen = 99;
  ASSERT_OK(weft_select(cases, 3, WEFT_FOREVER, WEFT_SELECT_ORDERED, &chosen));
  ASSERT_EQ(chosen, 0);
  ASSERT_OK(weft_select(cases, 3, WEFT_FOREVER, WEFT_SELECT_ORDERED, &chosen));
  ASSERT_EQ(chosen, 1);
  ASSERT_OK(weft_select(cases, 3, WEFT_FOREVER, WEFT_SELECT_ORDERED, &chosen));
  ASSERT_EQ(chosen, 2);
  ASSERT_OK(weft_select(cases, 3, WEFT_FOREVER, 0, &chosen)); /* 0: as weft_select */
  ASSERT_EQ(chosen, 2);
  ASSERT_EQ(weft_chan_len(room), 2);
  weft_chan_release(empty);
  weft_chan_release(ready);
  weft_chan_release(room);
  test_close_runtime(rt);
  return TEST_OK;
}

#define MANY 256

typedef struct {
  weft_runtime_t *rt;
  weft_chan_t **ch;
  weft_chan_t *ack; /* one round at a time: the select takes each before the next */
  int rounds;
} feeder_t;

static int32_t feed_later(void *arg, void **result) {
  (void)result;
  feeder_t *f = arg;
  for (int r = 0; r < f->rounds; r++) {
    if (r % 16 == 0) weft_sleep_until(f->rt, weft_deadline_after(f->rt, 1000000)); /* let the select block */
    int i = (r * 37 + 11) % MANY;
    if (weft_chan_send(f->ch[i], &r, WEFT_FOREVER) != WEFT_OK) return 1;
    if (weft_chan_recv(f->ack, NULL, WEFT_FOREVER) != WEFT_OK) return 2;
  }
  return 0;
}

/* A select over 256 channels finds the one that is ready, at once and after waiting. */
TEST_IMPL(select_256_channels) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch[MANY];
  int bufs[MANY];
  weft_select_case_t cases[MANY];
  for (int i = 0; i < MANY; i++) {
    ch[i] = test_chan(rt, sizeof(int), i % 2 ? 1 : 0);
    cases[i] = (weft_select_case_t){ch[i], WEFT_SELECT_RECV, &bufs[i]};
  }
  /* ready at once (the odd channels buffer one element) */
  for (int r = 0; r < 2000; r++) {
    int i = (r * 97) % MANY | 1;
    ASSERT_OK(weft_chan_send(ch[i], &r, 0));
    size_t chosen = 9999;
    ASSERT_OK(weft_select(cases, MANY, 0, 0, &chosen));
    ASSERT_EQ(chosen, i);
    ASSERT_EQ(bufs[i], r);
  }
  /* woken while waiting, on rendezvous and buffered channels alike */
  feeder_t f = {rt, ch, test_chan(rt, 0, 0), 300};
  weft_task_t *t = test_spawn(rt, feed_later, &f);
  for (int r = 0; r < f.rounds; r++) {
    size_t chosen = 9999;
    ASSERT_OK(weft_select(cases, MANY, WEFT_FOREVER, 0, &chosen));
    ASSERT_EQ(chosen, (r * 37 + 11) % MANY);
    ASSERT_EQ(bufs[chosen], r);
    ASSERT_OK(weft_chan_send(f.ack, NULL, WEFT_FOREVER));
  }
  ASSERT_EQ(test_join(t), 0);
  weft_chan_release(f.ack);
  /* all send cases on full channels but one */
  for (int i = 0; i < MANY; i++) {
    if (i % 2) ASSERT_OK(weft_chan_send(ch[i], &i, 0));
    cases[i].op = WEFT_SELECT_SEND;
    bufs[i] = 1000 + i;
  }
  int got;
  ASSERT_OK(weft_chan_recv(ch[201], &got, 0));
  size_t chosen = 9999;
  ASSERT_OK(weft_select(cases, MANY, 0, 0, &chosen));
  ASSERT_EQ(chosen, 201);
  ASSERT_OK(weft_chan_recv(ch[201], &got, 0));
  ASSERT_EQ(got, 1201);
  ASSERT_OK(weft_chan_send(ch[201], &got, 0)); /* full again: nothing is ready */
  int64_t deadline = test_after_ms(rt, 20);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(cases, MANY, deadline, 0, &chosen));
  for (int i = 0; i < MANY; i++) weft_chan_release(ch[i]);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_chan_t *ch;
  int value;
  int delay_ms;
  weft_status_t status;
} later_t;

static int32_t send_later(void *arg, void **result) {
  (void)result;
  later_t *l = arg;
  weft_sleep_until(l->rt, weft_deadline_after(l->rt, (int64_t)l->delay_ms * 1000000));
  l->status = weft_chan_send(l->ch, &l->value, WEFT_FOREVER);
  return 0;
}

static int32_t recv_later(void *arg, void **result) {
  (void)result;
  later_t *l = arg;
  weft_sleep_until(l->rt, weft_deadline_after(l->rt, (int64_t)l->delay_ms * 1000000));
  l->status = weft_chan_recv(l->ch, &l->value, WEFT_FOREVER);
  return 0;
}

static int32_t close_later(void *arg, void **result) {
  (void)result;
  later_t *l = arg;
  weft_sleep_until(l->rt, weft_deadline_after(l->rt, (int64_t)l->delay_ms * 1000000));
  l->status = weft_chan_close(l->ch);
  return 0;
}

/* A waiting select completes exactly the case another task makes ready: a send, a
 * receive (the select's element is handed over), or a close. */
TEST_IMPL(select_wakes_on_send_recv_close) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *a = test_chan(rt, sizeof(int), 0), *b = test_chan(rt, sizeof(int), 4);
  int ba = -1, bb = -1;
  weft_select_case_t recv_cases[2] = {{a, WEFT_SELECT_RECV, &ba}, {b, WEFT_SELECT_RECV, &bb}};
  later_t l = {rt, b, 42, 20, -1};
  weft_task_t *t = test_spawn(rt, send_later, &l);
  size_t chosen = 99;
  ASSERT_OK(weft_select(recv_cases, 2, WEFT_FOREVER, 0, &chosen));
  ASSERT_EQ(chosen, 1);
  ASSERT_EQ(bb, 42);
  ASSERT_EQ(ba, -1);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(l.status);
  /* a rendezvous send case taken by a receiver */
  int out = 7;
  weft_select_case_t send_case = {a, WEFT_SELECT_SEND, &out};
  l = (later_t){rt, a, 0, 20, -1};
  t = test_spawn(rt, recv_later, &l);
  ASSERT_OK(weft_select(&send_case, 1, WEFT_FOREVER, 0, &chosen));
  ASSERT_EQ(chosen, 0);
  ASSERT_EQ(test_join(t), 0);
  ASSERT_OK(l.status);
  ASSERT_EQ(l.value, 7);
  /* a close makes the case ready with WEFT_ECLOSED */
  l = (later_t){rt, a, 0, 20, -1};
  t = test_spawn(rt, close_later, &l);
  chosen = 99;
  ASSERT_STATUS(WEFT_ECLOSED, weft_select(recv_cases, 2, WEFT_FOREVER, 0, &chosen));
  ASSERT_EQ(chosen, 0);
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_EQ(test_join(t), 0);
  weft_chan_release(a);
  weft_chan_release(b);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Closed channels make their cases ready: a receive case drains first. */
TEST_IMPL(select_closed_cases) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *c = test_chan(rt, sizeof(int), 4);
  int v = 3, got = -1;
  ASSERT_OK(weft_chan_send(c, &v, 0));
  ASSERT_OK(weft_chan_close(c));
  weft_select_case_t rc = {c, WEFT_SELECT_RECV, &got};
  size_t chosen = 99;
  ASSERT_OK(weft_select(&rc, 1, WEFT_FOREVER, 0, &chosen));
  ASSERT_EQ(got, 3);
  chosen = 99;
  ASSERT_STATUS(WEFT_ECLOSED, weft_select(&rc, 1, WEFT_FOREVER, 0, &chosen));
  ASSERT_EQ(chosen, 0);
  weft_select_case_t sc[2] = {{c, WEFT_SELECT_SEND, &v}, {c, WEFT_SELECT_SEND, &v}};
  chosen = 99;
  ASSERT_STATUS(WEFT_ECLOSED, weft_select(sc, 2, 0, 0, &chosen));
  ASSERT(chosen < 2);
  ASSERT_EQ(weft_chan_len(c), 0);
  weft_chan_release(c);
  test_close_runtime(rt);
  return TEST_OK;
}

/* Nothing ready: WEFT_ETIMEDOUT at the deadline, nothing sent or received, *chosen
 * untouched; with a deadline already past, at once. */
TEST_IMPL(select_deadline_expires) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *empty = test_chan(rt, sizeof(int), 2), *full = test_chan(rt, sizeof(int), 1),
              *rv = test_chan(rt, sizeof(int), 0);
  int one = 1, two = 2, in = -1;
  ASSERT_OK(weft_chan_send(full, &one, 0));
  weft_select_case_t cases[3] = {
      {empty, WEFT_SELECT_RECV, &in}, {full, WEFT_SELECT_SEND, &two}, {rv, WEFT_SELECT_SEND, &two}};
  size_t chosen = 99;
  int64_t deadline = test_after_ms(rt, 30);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(cases, 3, deadline, 0, &chosen));
  ASSERT(weft_now(rt) >= deadline);
  ASSERT_EQ(chosen, 99);
  ASSERT_EQ(in, -1);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(cases, 3, 0, 0, &chosen));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(cases, 3, -5, WEFT_SELECT_ORDERED, &chosen));
  ASSERT_EQ(chosen, 99);
  /* the timed-out send cases left nothing behind */
  int got = 0;
  ASSERT_OK(weft_chan_recv(full, &got, 0));
  ASSERT_EQ(got, 1);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(full, &got, 0));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(rv, &got, test_after_ms(rt, 10)));
  /* a select's send and receive on one rendezvous channel never meet each other */
  weft_select_case_t self[2] = {{rv, WEFT_SELECT_SEND, &two}, {rv, WEFT_SELECT_RECV, &in}};
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(self, 2, test_after_ms(rt, 20), 0, &chosen));
  ASSERT_EQ(in, -1);
  weft_chan_release(empty);
  weft_chan_release(full);
  weft_chan_release(rv);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_runtime_t *rt;
  weft_status_t status;
} sleeper_t;

static int32_t select_nothing_forever(void *arg, void **result) {
  (void)result;
  sleeper_t *s = arg;
  size_t chosen = 99;
  s->status = weft_select(NULL, 0, WEFT_FOREVER, 0, &chosen);
  return chosen == 99 ? 0 : 1;
}

/* A select with no cases sleeps until its deadline (WEFT_ETIMEDOUT), or, with
 * WEFT_FOREVER, until the task is cancelled. */
TEST_IMPL(select_no_cases_sleeps) {
  weft_runtime_t *rt = test_open_runtime();
  size_t chosen = 99;
  int64_t deadline = test_after_ms(rt, 30);
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(NULL, 0, deadline, 0, &chosen));
  ASSERT(weft_now(rt) >= deadline);
  weft_select_case_t unused;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(&unused, 0, 0, 0, &chosen));
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_select(NULL, 0, test_after_ms(rt, 5), WEFT_SELECT_ORDERED, &chosen));
  ASSERT_EQ(chosen, 99);
  sleeper_t s = {rt, -1};
  weft_task_t *t = test_spawn(rt, select_nothing_forever, &s);
  test_sleep_ms(rt, 20);
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_STATUS(WEFT_ECANCELED, s.status);
  test_close_runtime(rt);
  return TEST_OK;
}

typedef struct {
  weft_select_case_t cases[2];
  weft_status_t status;
} selecting_t;

static int32_t select_forever(void *arg, void **result) {
  (void)result;
  selecting_t *s = arg;
  size_t chosen = 99;
  s->status = weft_select(s->cases, 2, WEFT_FOREVER, 0, &chosen);
  return chosen == 99 ? 0 : 1;
}

/* A task blocked in a select is woken by weft_cancel; no case completes. */
TEST_IMPL(select_cancel_blocked) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *rv = test_chan(rt, sizeof(int), 0), *empty = test_chan(rt, sizeof(int), 1);
  int out = 9, in = -1;
  selecting_t s = {{{rv, WEFT_SELECT_SEND, &out}, {empty, WEFT_SELECT_RECV, &in}}, -1};
  weft_task_t *t = test_spawn(rt, select_forever, &s);
  test_sleep_ms(rt, 20);
  ASSERT_OK(weft_cancel(t));
  ASSERT_EQ(test_join(t), 0);
  ASSERT_STATUS(WEFT_ECANCELED, s.status);
  int got;
  ASSERT_STATUS(WEFT_ETIMEDOUT, weft_chan_recv(rv, &got, test_after_ms(rt, 10)));
  ASSERT_OK(weft_chan_send(empty, &out, 0)); /* the select's receive case took nothing */
  ASSERT_EQ(weft_chan_len(empty), 1);
  weft_chan_release(rv);
  weft_chan_release(empty);
  test_close_runtime(rt);
  return TEST_OK;
}

/* ---- accounting through selects on both sides --------------------------------------- */

#define SEL_PRODUCERS 4
#define SEL_CONSUMERS 4
#define SEL_PER_PRODUCER 100000u /* see test_volume */

typedef struct {
  weft_chan_t *a, *b;
  uint64_t producer, count;
  uint64_t sum, received;
} sel_flow_t;

/* Sends each value once, on whichever of two channels takes it first (every other
 * value by a plain send, to mix both paths). */
static int32_t select_produce(void *arg, void **result) {
  (void)result;
  sel_flow_t *f = arg;
  for (uint64_t i = 0; i < f->count; i++) {
    uint64_t v = (f->producer << 32) | i;
    if (i % 2) {
      if (weft_chan_send(i % 4 == 1 ? f->a : f->b, &v, WEFT_FOREVER) != WEFT_OK) return 1;
      continue;
    }
    weft_select_case_t cases[2] = {{f->a, WEFT_SELECT_SEND, &v}, {f->b, WEFT_SELECT_SEND, &v}};
    size_t chosen;
    if (weft_select(cases, 2, WEFT_FOREVER, 0, &chosen) != WEFT_OK) return 2;
  }
  return 0;
}

/* Receives from both channels until both are closed, dropping a case from the set when
 * its channel reports WEFT_ECLOSED. */
static int32_t select_consume(void *arg, void **result) {
  (void)result;
  sel_flow_t *f = arg;
  uint64_t v;
  weft_select_case_t cases[2] = {{f->a, WEFT_SELECT_RECV, &v}, {f->b, WEFT_SELECT_RECV, &v}};
  size_t n = 2;
  while (n > 0) {
    size_t chosen;
    weft_status_t s = weft_select(cases, n, WEFT_FOREVER, 0, &chosen);
    if (s == WEFT_ECLOSED) {
      cases[chosen] = cases[n - 1];
      n--;
      continue;
    }
    if (s != WEFT_OK) return 1;
    f->sum += v;
    f->received++;
  }
  return 0;
}

static void select_sums(size_t capacity) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *a = test_chan(rt, sizeof(uint64_t), capacity), *b = test_chan(rt, sizeof(uint64_t), capacity);
  sel_flow_t p[SEL_PRODUCERS], c[SEL_CONSUMERS];
  weft_task_t *pt[SEL_PRODUCERS], *ct[SEL_CONSUMERS];
  const uint64_t per_producer = test_volume(SEL_PER_PRODUCER);
  uint64_t expected = 0;
  for (int i = 0; i < SEL_CONSUMERS; i++) {
    c[i] = (sel_flow_t){.a = a, .b = b};
    ct[i] = test_spawn(rt, select_consume, &c[i]);
  }
  for (int i = 0; i < SEL_PRODUCERS; i++) {
    p[i] = (sel_flow_t){.a = a, .b = b, .producer = (uint64_t)i, .count = per_producer};
    expected += ((uint64_t)i << 32) * per_producer + per_producer * (per_producer - 1) / 2;
    pt[i] = test_spawn(rt, select_produce, &p[i]);
  }
  for (int i = 0; i < SEL_PRODUCERS; i++) ASSERT_EQ(test_join(pt[i]), 0);
  ASSERT_OK(weft_chan_close(a));
  ASSERT_OK(weft_chan_close(b));
  uint64_t sum = 0, received = 0;
  for (int i = 0; i < SEL_CONSUMERS; i++) {
    ASSERT_EQ(test_join(ct[i]), 0);
    sum += c[i].sum;
    received += c[i].received;
  }
  ASSERT_EQ(received, (uint64_t)SEL_PRODUCERS * per_producer);
  ASSERT(sum == expected);
  weft_chan_release(a);
  weft_chan_release(b);
  test_close_runtime(rt);
}

/* Selects on both sides of rendezvous and bounded channels: every value is delivered
 * exactly once (a waiting select never completes two cases). */
TEST_IMPL(select_exact_sums) {
  select_sums(0);
  select_sums(1);
  select_sums(16);
  return TEST_OK;
}

/* ---- errors ------------------------------------------------------------------------- */

TEST_IMPL(select_errors) {
  weft_runtime_t *rt = test_open_runtime();
  weft_chan_t *ch = test_chan(rt, sizeof(int), 1);
  int v = 0;
  size_t chosen = 99;
  weft_select_case_t ok = {ch, WEFT_SELECT_RECV, &v};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(&ok, 1, 0, 0, NULL));
  ASSERT_ERROR_MENTIONS("chosen is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_select(NULL, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("cases is NULL");
  ASSERT_STATUS(WEFT_EINVAL, weft_select(&ok, 1, 0, 0x2, &chosen));
  ASSERT_ERROR_MENTIONS("flags");
  ASSERT_STATUS(WEFT_EINVAL, weft_select(&ok, SIZE_MAX / 2, 0, 0, &chosen)); /* no such array */
  ASSERT_ERROR_MENTIONS("cases exists");
  weft_select_case_t bad[2] = {ok, {ch, 0, &v}};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("case 1");
  bad[1].op = 3;
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  bad[1] = (weft_select_case_t){NULL, WEFT_SELECT_RECV, &v};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("channel is NULL");
  bad[1] = (weft_select_case_t){ch, WEFT_SELECT_SEND, NULL};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("buf is NULL");
  weft_chan_t *gone = test_chan(rt, sizeof(int), 1);
  weft_chan_release(gone);
  bad[1] = (weft_select_case_t){gone, WEFT_SELECT_RECV, &v};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("released");
  uint64_t not_a_channel[8] = {0};
  bad[1] = (weft_select_case_t){(weft_chan_t *)not_a_channel, WEFT_SELECT_RECV, &v};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  /* channels of two runtimes */
  weft_runtime_t *rt2 = test_open_runtime();
  weft_chan_t *other = test_chan(rt2, sizeof(int), 1);
  bad[1] = (weft_select_case_t){other, WEFT_SELECT_RECV, &v};
  ASSERT_STATUS(WEFT_EINVAL, weft_select(bad, 2, 0, 0, &chosen));
  ASSERT_ERROR_MENTIONS("runtime");
  weft_chan_release(other);
  test_close_runtime(rt2);
  ASSERT_EQ(chosen, 99); /* untouched by every failure */
  /* a zero-size channel takes NULL buffers */
  weft_chan_t *sig = test_chan(rt, 0, 1);
  weft_select_case_t s = {sig, WEFT_SELECT_SEND, NULL};
  ASSERT_OK(weft_select(&s, 1, 0, 0, &chosen));
  ASSERT_EQ(chosen, 0);
  weft_chan_release(sig);
  weft_chan_release(ch);
  test_close_runtime(rt);
  return TEST_OK;
}
