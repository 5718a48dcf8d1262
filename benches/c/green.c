/* Kinds written for the green platform (they run on whatever $WEFT_PLATFORM the
 * driver gives, so native and green figures come from the same code):
 *   chan_pingpong  two tasks hand one message back and forth over two channels of
 *                  capacity --cap; ns per round trip
 *   parked_rss     --n tasks parked at once in a receive; bytes of RSS and page tables per parked task
 *   yield_switch   two tasks on a one-worker runtime yield to each other; ns per yield
 *   spawn_join_task  a task spawns and joins --n empty tasks, one after the other;
 *                  ns per spawn+join
 *   skynet         a tree of --n tasks (each spawns 10 until the leaves, which return
 *                  their number; parents join and add); ms per tree
 *   chan_pipeline  a producer computes 20 us per message and sends it on a channel of
 *                  capacity --cap, a consumer receives it and computes 20 us; ns per
 *                  message: 20,000 when the two run side by side, 40,000 when one
 *                  waits for the other */
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

typedef struct {
  weft_chan_t *ping, *pong;
  long n;
} pp_t;

static int32_t pp_echo(void *arg, void **result) {
  pp_t *p = arg;
  (void)result;
  for (long i = 0; i < p->n; i++) {
    uint64_t v;
    CHECK(weft_chan_recv(p->ping, &v, WEFT_FOREVER));
    CHECK(weft_chan_send(p->pong, &v, WEFT_FOREVER));
  }
  return 0;
}

static int32_t pp_drive(void *arg, void **result) {
  pp_t *p = arg;
  (void)result;
  for (long i = 0; i < p->n; i++) {
    uint64_t v = (uint64_t)i, back = 0;
    CHECK(weft_chan_send(p->ping, &v, WEFT_FOREVER));
    CHECK(weft_chan_recv(p->pong, &back, WEFT_FOREVER));
    if (back != v) die("ping-pong echo", 1);
  }
  return 0;
}

static sample_t pingpong_weft(const params_t *p) {
  pp_t pp = {NULL, NULL, p->n};
  size_t cap = p->cap < 0 ? WEFT_CHAN_UNBOUNDED : (size_t)p->cap;
  CHECK(weft_chan_new(bench_rt, sizeof(uint64_t), cap, NULL, &pp.ping));
  CHECK(weft_chan_new(bench_rt, sizeof(uint64_t), cap, NULL, &pp.pong));
  int64_t t0 = now_ns();
  weft_task_t *a, *b;
  CHECK(weft_spawn(bench_rt, pp_echo, &pp, NULL, &b));
  CHECK(weft_spawn(bench_rt, pp_drive, &pp, NULL, &a));
  CHECK(weft_join(a, WEFT_FOREVER, NULL, NULL));
  CHECK(weft_join(b, WEFT_FOREVER, NULL, NULL));
  int64_t t1 = now_ns();
  weft_chan_release(pp.ping);
  weft_chan_release(pp.pong);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

/* Spins on the clock for `ns`: work that neither calls weft nor polls. */
static void compute_ns(int64_t ns) {
  int64_t end = now_ns() + ns;
  while (now_ns() < end) {
  }
}

enum { PIPELINE_WORK_NS = 20000 };

typedef struct {
  weft_chan_t *ch;
  long n;
} pipeline_t;

static int32_t pipeline_produce(void *arg, void **result) {
  pipeline_t *p = arg;
  (void)result;
  for (long i = 0; i < p->n; i++) {
    uint64_t v = (uint64_t)i;
    compute_ns(PIPELINE_WORK_NS);
    CHECK(weft_chan_send(p->ch, &v, WEFT_FOREVER));
  }
  CHECK(weft_chan_close(p->ch));
  return 0;
}

static int32_t pipeline_consume(void *arg, void **result) {
  pipeline_t *p = arg;
  uint64_t v;
  long k = 0;
  while (weft_chan_recv(p->ch, &v, WEFT_FOREVER) == WEFT_OK) {
    compute_ns(PIPELINE_WORK_NS);
    k++;
  }
  *result = (void *)(intptr_t)k;
  return 0;
}

static sample_t pipeline_weft(const params_t *p) {
  pipeline_t pl = {NULL, p->n};
  size_t cap = p->cap < 0 ? WEFT_CHAN_UNBOUNDED : (size_t)p->cap;
  CHECK(weft_chan_new(bench_rt, sizeof(uint64_t), cap, NULL, &pl.ch));
  int64_t t0 = now_ns();
  weft_task_t *producer, *consumer;
  void *received = NULL;
  CHECK(weft_spawn(bench_rt, pipeline_consume, &pl, NULL, &consumer));
  CHECK(weft_spawn(bench_rt, pipeline_produce, &pl, NULL, &producer));
  CHECK(weft_join(producer, WEFT_FOREVER, NULL, NULL));
  CHECK(weft_join(consumer, WEFT_FOREVER, NULL, &received));
  int64_t t1 = now_ns();
  if ((intptr_t)received != p->n) die("pipeline: messages received", 1);
  weft_chan_release(pl.ch);
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

/* The process's resident memory and its page tables, in bytes (/proc/self/status): a
 * parked task costs both, and a stack more than 2 MiB from the next one (8 MiB by
 * default) needs a page-table page of its own for the page it touches. */
static long memory_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  long rss_kb = -1, pte_kb = -1, kb;
  char line[256];
  if (!f) die("open /proc/self/status", -1);
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) rss_kb = kb;
    if (sscanf(line, "VmPTE: %ld kB", &kb) == 1) pte_kb = kb;
  }
  fclose(f);
  if (rss_kb < 0 || pte_kb < 0) die("read VmRSS and VmPTE in /proc/self/status", -1);
  return (rss_kb + pte_kb) * 1024;
}

typedef struct {
  weft_chan_t *in, *parked;
} rss_arg_t;

static int32_t parked_task(void *arg, void **result) {
  rss_arg_t *a = arg;
  uint64_t v = 1;
  (void)result;
  CHECK(weft_chan_send(a->parked, &v, WEFT_FOREVER));
  CHECK(weft_chan_recv(a->in, &v, WEFT_FOREVER));
  return 0;
}

static sample_t parked_rss_weft(const params_t *p) {
  /* Measured from the first call on: stacks pooled by earlier rounds are then part of
   * the figure, as they should be (they are the memory the parked tasks use). */
  static long baseline = -1;
  if (baseline < 0) baseline = memory_bytes();
  rss_arg_t a;
  CHECK(weft_chan_new(bench_rt, sizeof(uint64_t), 0, NULL, &a.in));
  CHECK(weft_chan_new(bench_rt, sizeof(uint64_t), WEFT_CHAN_UNBOUNDED, NULL, &a.parked));
  weft_task_t **tasks = malloc((size_t)p->n * sizeof *tasks);
  if (!tasks) die("malloc", -1);
  for (long i = 0; i < p->n; i++) CHECK(weft_spawn(bench_rt, parked_task, &a, NULL, &tasks[i]));
  uint64_t v;
  for (long i = 0; i < p->n; i++) CHECK(weft_chan_recv(a.parked, &v, WEFT_FOREVER));
  long parked = memory_bytes();
  for (long i = 0; i < p->n; i++) CHECK(weft_chan_send(a.in, &v, WEFT_FOREVER));
  for (long i = 0; i < p->n; i++) CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
  free(tasks);
  weft_chan_release(a.in);
  weft_chan_release(a.parked);
  return (sample_t){(double)(parked - baseline) / (double)p->n, 0};
}

typedef struct {
  weft_runtime_t *rt;
  long n;
} yield_arg_t;

static int32_t yielder(void *arg, void **result) {
  yield_arg_t *y = arg;
  (void)result;
  for (long i = 0; i < y->n; i++) CHECK(weft_yield(y->rt));
  return 0;
}

static sample_t yield_switch_weft(const params_t *p) {
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.platform = weft_runtime_platform(bench_rt)->path;
  cfg.workers = 1;
  weft_runtime_t *rt;
  CHECK(weft_runtime_open(&cfg, &rt));
  yield_arg_t y = {rt, p->n};
  weft_task_t *a, *b;
  int64_t t0 = now_ns();
  CHECK(weft_spawn(rt, yielder, &y, NULL, &a));
  CHECK(weft_spawn(rt, yielder, &y, NULL, &b));
  CHECK(weft_join(a, WEFT_FOREVER, NULL, NULL));
  CHECK(weft_join(b, WEFT_FOREVER, NULL, NULL));
  int64_t t1 = now_ns();
  CHECK(weft_runtime_close(rt));
  return (sample_t){(double)(t1 - t0) / (double)(2 * p->n), 0};
}

static int32_t empty_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static int32_t spawn_driver(void *arg, void **result) {
  long n = *(long *)arg;
  (void)result;
  for (long i = 0; i < n; i++) {
    weft_task_t *t;
    CHECK(weft_spawn(bench_rt, empty_task, NULL, NULL, &t));
    CHECK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  }
  return 0;
}

/* As Go's `go f(); <-done` runs on a goroutine: the spawning and joining is a task's. */
static sample_t spawn_join_task_weft(const params_t *p) {
  long n = p->n;
  weft_task_t *t;
  int64_t t0 = now_ns();
  CHECK(weft_spawn(bench_rt, spawn_driver, &n, NULL, &t));
  CHECK(weft_join(t, WEFT_FOREVER, NULL, NULL));
  int64_t t1 = now_ns();
  return (sample_t){(double)(t1 - t0) / (double)n, 0};
}

typedef struct {
  long num, size;
} sky_t;

static int32_t skynet_task(void *arg, void **result) {
  sky_t *s = arg;
  if (s->size == 1) {
    *result = (void *)(uintptr_t)s->num;
    return 0;
  }
  sky_t kids[10];
  weft_task_t *t[10];
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = 16 * 1024;
  long sub = s->size / 10;
  for (int i = 0; i < 10; i++) {
    kids[i] = (sky_t){s->num + i * sub, sub};
    CHECK(weft_spawn(bench_rt, skynet_task, &kids[i], &opts, &t[i]));
  }
  uintptr_t sum = 0;
  for (int i = 0; i < 10; i++) {
    void *r;
    CHECK(weft_join(t[i], WEFT_FOREVER, NULL, &r));
    sum += (uintptr_t)r;
  }
  *result = (void *)sum;
  return 0;
}

static sample_t skynet_weft(const params_t *p) {
  long size = 1;
  while (size * 10 <= p->n) size *= 10;
  sky_t root = {0, size};
  int64_t t0 = now_ns();
  weft_task_t *t;
  void *r;
  CHECK(weft_spawn(bench_rt, skynet_task, &root, NULL, &t));
  CHECK(weft_join(t, WEFT_FOREVER, NULL, &r));
  int64_t t1 = now_ns();
  if ((uintptr_t)r != (uintptr_t)(size * (size - 1) / 2)) die("skynet sum", 1);
  return (sample_t){(double)(t1 - t0) / 1e6, 0};
}

void register_green_kinds(void) {
  /* The default sizes are the full run's for the native platform (green runs ten times
   * as many of the task kinds: benches/run.py). */
  bench_register(&(kind_t){.kind = "chan_pingpong", .unit = "ns per round trip", .better = "lower",
                           .default_n = 20000, .variants = {{"weft", pingpong_weft}}});
  bench_register(&(kind_t){.kind = "parked_rss", .unit = "bytes of RSS and page tables per parked task",
                           .better = "lower", .variants = {{"weft", parked_rss_weft}}});
  bench_register(&(kind_t){.kind = "yield_switch", .unit = "ns per yield between two tasks", .better = "lower",
                           .variants = {{"weft", yield_switch_weft}}});
  bench_register(&(kind_t){.kind = "spawn_join_task", .unit = "ns per spawn+join of an empty task",
                           .better = "lower", .default_n = 20000, .variants = {{"weft", spawn_join_task_weft}}});
  bench_register(&(kind_t){.kind = "skynet", .unit = "ms per tree of tasks", .better = "lower",
                           .variants = {{"weft", skynet_weft}}});
  bench_register(&(kind_t){.kind = "chan_pipeline", .unit = "ns per message", .better = "lower",
                           .default_n = 5000, .variants = {{"weft", pipeline_weft}}});
}
