/* Channels through weft.h, in the shapes of crossbeam-channel's benchmarks: size_t
 * messages (the value i), copied in and out.
 *   chan_seq:  one task sends n, then receives n (capacity N or unbounded only).
 *   chan_spsc: one producer task sends n; the main thread receives n.
 *   chan_mpsc: T producer tasks send n/T each; the main thread receives them all.
 *   chan_mpmc: T producer tasks send n/T each; T consumer tasks receive n/T each.
 *   chan_select: K channels, one producer task per channel sending n/K; the main thread
 *              receives them all with weft_select over K receive cases.
 * On the green platform the whole shape runs inside a task (main.c), so "the main
 * thread" is a task there, as it is a goroutine in Go.
 * The time runs from before the first spawn to after the last join, as in crossbeam's
 * benchmarks; the figure is ns per message (total / messages). Every run checks the
 * sum of what was received.
 *
 * The channel API is built on another branch: this file compiles to nothing until
 * weft.h declares it, and the driver then marks these cases "not built". */
#include "bench.h"

#ifdef WEFT_CHAN_UNBOUNDED
#include <stdlib.h>

#define MAX_TASKS 64

static size_t capacity_of(const params_t *p) { return p->cap < 0 ? WEFT_CHAN_UNBOUNDED : (size_t)p->cap; }

static weft_chan_t *new_chan(const params_t *p) {
  weft_chan_t *ch;
  CHECK(weft_chan_new(bench_rt, sizeof(size_t), capacity_of(p), NULL, &ch));
  return ch;
}

typedef struct {
  weft_chan_t *ch;
  long count;
  uint64_t sum;
} chan_job_t;

static int32_t producer(void *arg, void **result) {
  (void)result;
  chan_job_t *j = arg;
  for (long i = 0; i < j->count; i++) {
    size_t v = (size_t)i;
    CHECK(weft_chan_send(j->ch, &v, WEFT_FOREVER));
  }
  return 0;
}

static int32_t consumer(void *arg, void **result) {
  (void)result;
  chan_job_t *j = arg;
  uint64_t sum = 0;
  for (long i = 0; i < j->count; i++) {
    size_t v;
    CHECK(weft_chan_recv(j->ch, &v, WEFT_FOREVER));
    sum += v;
  }
  j->sum = sum;
  return 0;
}

/* The sum of 0..m-1, sent by each of `senders`. */
static uint64_t expected(long m, int senders) { return (uint64_t)senders * ((uint64_t)m * (uint64_t)(m - 1) / 2); }

static void check_sum(uint64_t got, uint64_t want) {
  if (got != want) die("channel: the received values do not add up", 1);
}

static sample_t finish(int64_t t0, long messages) {
  return (sample_t){(double)(now_ns() - t0) / (double)messages, 0};
}

static sample_t seq_weft(const params_t *p) {
  int64_t t0 = now_ns();
  weft_chan_t *ch = new_chan(p);
  for (long i = 0; i < p->n; i++) {
    size_t v = (size_t)i;
    CHECK(weft_chan_send(ch, &v, WEFT_FOREVER));
  }
  uint64_t sum = 0;
  for (long i = 0; i < p->n; i++) {
    size_t v;
    CHECK(weft_chan_recv(ch, &v, WEFT_FOREVER));
    sum += v;
  }
  weft_chan_release(ch);
  sample_t s = finish(t0, p->n);
  check_sum(sum, expected(p->n, 1));
  return s;
}

/* Producers (and, for mpmc, consumers) as tasks; the main thread receives when
 * `main_receives`. */
static sample_t fan(const params_t *p, int producers, int consumers, int main_receives) {
  if (producers + consumers > MAX_TASKS) die("channel: too many tasks", 1);
  long per = p->n / producers;
  long total = per * producers;
  int64_t t0 = now_ns();
  weft_chan_t *ch = new_chan(p);
  chan_job_t jobs[MAX_TASKS];
  weft_task_t *tasks[MAX_TASKS];
  int ntasks = 0;
  for (int i = 0; i < producers; i++) {
    jobs[ntasks] = (chan_job_t){ch, per, 0};
    CHECK(weft_spawn(bench_rt, producer, &jobs[ntasks], NULL, &tasks[ntasks]));
    ntasks++;
  }
  for (int i = 0; i < consumers; i++) {
    jobs[ntasks] = (chan_job_t){ch, total / consumers, 0};
    CHECK(weft_spawn(bench_rt, consumer, &jobs[ntasks], NULL, &tasks[ntasks]));
    ntasks++;
  }
  uint64_t sum = 0;
  if (main_receives) {
    chan_job_t mine = {ch, total, 0};
    consumer(&mine, NULL);
    sum += mine.sum;
  }
  for (int i = 0; i < ntasks; i++) CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
  weft_chan_release(ch);
  sample_t s = finish(t0, total);
  for (int i = producers; i < ntasks; i++) sum += jobs[i].sum;
  check_sum(sum, expected(per, producers));
  return s;
}

static sample_t spsc_weft(const params_t *p) { return fan(p, 1, 0, 1); }
static sample_t mpsc_weft(const params_t *p) { return fan(p, p->threads, 0, 1); }
static sample_t mpmc_weft(const params_t *p) { return fan(p, p->threads, p->threads, 0); }

static sample_t select_weft(const params_t *p) {
  int k = p->chans;
  if (k > MAX_TASKS) die("chan_select: too many channels", 1);
  long per = p->n / k;
  long total = per * k;
  int64_t t0 = now_ns();
  chan_job_t jobs[MAX_TASKS];
  weft_task_t *tasks[MAX_TASKS];
  weft_select_case_t cases[MAX_TASKS];
  size_t bufs[MAX_TASKS];
  for (int i = 0; i < k; i++) {
    jobs[i] = (chan_job_t){new_chan(p), per, 0};
    cases[i] = (weft_select_case_t){.chan = jobs[i].ch, .op = WEFT_SELECT_RECV, .buf = &bufs[i]};
  }
  for (int i = 0; i < k; i++) CHECK(weft_spawn(bench_rt, producer, &jobs[i], NULL, &tasks[i]));
  uint64_t sum = 0;
  for (long i = 0; i < total; i++) {
    size_t chosen;
    CHECK(weft_select(cases, (size_t)k, WEFT_FOREVER, 0, &chosen));
    if (chosen >= (size_t)k) die("weft_select: chosen out of range", 1);
    sum += bufs[chosen];
  }
  for (int i = 0; i < k; i++) CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
  for (int i = 0; i < k; i++) weft_chan_release(jobs[i].ch);
  sample_t s = finish(t0, total);
  check_sum(sum, expected(per, k));
  return s;
}

#define CHAN_UNIT "ns per message (first spawn to last join, / messages)"

void register_chan_kinds(void) {
  static const struct {
    const char *kind;
    variant_fn run;
  } all[] = {{"chan_seq", seq_weft},   {"chan_spsc", spsc_weft},    {"chan_mpsc", mpsc_weft},
             {"chan_mpmc", mpmc_weft}, {"chan_select", select_weft}};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    bench_register(&(kind_t){.kind = all[i].kind, .unit = CHAN_UNIT, .better = "lower", .variants = {{"weft", all[i].run}}});
}

#else

void register_chan_kinds(void) {}

#endif
