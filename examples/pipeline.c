/*
 * pipeline: a parallel work pipeline on weft, in plain C.
 *
 *     generator --[work queue]--> N counter tasks --[done queue]--> collector
 *
 * It counts (and sums) the primes below a limit by trial division, slow on purpose,
 * in chunks that flow through two bounded queues built from a weft mutex and two weft
 * condition variables. The answer is checked against a sieve; the time of the
 * pipeline and of the same work done by one thread are printed with the platform.
 *
 *     ./pipeline [workers [limit]]        (default: one counter per CPU, 2000000)
 */
#define _POSIX_C_SOURCE 200809L /* for sysconf */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

/* Every weft call returns a status; on failure weft_last_error() says what and why. */
#define CHECK(call)                                                                 \
  do {                                                                              \
    weft_status_t status_ = (call);                                                 \
    if (status_ != WEFT_OK) {                                                       \
      fprintf(stderr, "%s failed: %s\n  %s\n", #call, weft_strerror(status_),       \
              weft_last_error());                                                   \
      exit(1);                                                                      \
    }                                                                               \
  } while (0)

/* One chunk of numbers [lo, hi); a counter fills in what it found. */
typedef struct {
  uint64_t lo, hi;
  uint64_t primes, sum;
} job_t;

/* A bounded, closable queue of jobs: the classic mutex + two conditions. */
#define QUEUE_CAPACITY 8

typedef struct {
  weft_mutex_t lock;
  weft_cond_t not_empty, not_full;
  job_t jobs[QUEUE_CAPACITY];
  size_t head, count;
  int closed;
} queue_t;

static void queue_init(weft_runtime_t *rt, queue_t *q) {
  memset(q, 0, sizeof *q);
  CHECK(weft_mutex_init(rt, &q->lock, 0));
  CHECK(weft_cond_init(rt, &q->not_empty));
  CHECK(weft_cond_init(rt, &q->not_full));
}

static void queue_push(queue_t *q, job_t job) {
  CHECK(weft_mutex_lock(&q->lock));
  while (q->count == QUEUE_CAPACITY) CHECK(weft_cond_wait(&q->not_full, &q->lock));
  q->jobs[(q->head + q->count) % QUEUE_CAPACITY] = job;
  q->count++;
  CHECK(weft_cond_signal(&q->not_empty));
  CHECK(weft_mutex_unlock(&q->lock));
}

/* Takes the oldest job; returns 0 once the queue is closed and empty. */
static int queue_pop(queue_t *q, job_t *job) {
  CHECK(weft_mutex_lock(&q->lock));
  while (q->count == 0 && !q->closed) CHECK(weft_cond_wait(&q->not_empty, &q->lock));
  int got = q->count > 0;
  if (got) {
    *job = q->jobs[q->head];
    q->head = (q->head + 1) % QUEUE_CAPACITY;
    q->count--;
    CHECK(weft_cond_signal(&q->not_full));
  }
  CHECK(weft_mutex_unlock(&q->lock));
  return got;
}

static void queue_close(queue_t *q) {
  CHECK(weft_mutex_lock(&q->lock));
  q->closed = 1;
  CHECK(weft_cond_broadcast(&q->not_empty)); /* wake every consumer to see it */
  CHECK(weft_mutex_unlock(&q->lock));
}

static void queue_destroy(queue_t *q) {
  CHECK(weft_cond_destroy(&q->not_full));
  CHECK(weft_cond_destroy(&q->not_empty));
  CHECK(weft_mutex_destroy(&q->lock));
}

/* The work itself: deliberately naive. */
static int is_prime(uint64_t n) {
  if (n < 2) return 0;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return 0;
  return 1;
}

static void count_primes(job_t *job) {
  job->primes = job->sum = 0;
  for (uint64_t n = job->lo; n < job->hi; n++)
    if (is_prime(n)) {
      job->primes++;
      job->sum += n;
    }
}

/* The pipeline's shared state, handed to every task as its argument. */
typedef struct {
  queue_t work, done;
  uint64_t limit, chunk;
} pipeline_t;

static int32_t generator(void *arg, void **result) {
  pipeline_t *p = arg;
  (void)result;
  for (uint64_t lo = 0; lo < p->limit; lo += p->chunk) {
    job_t job = {lo, lo + p->chunk < p->limit ? lo + p->chunk : p->limit, 0, 0};
    queue_push(&p->work, job);
  }
  queue_close(&p->work);
  return 0;
}

static int32_t counter(void *arg, void **result) {
  pipeline_t *p = arg;
  (void)result;
  job_t job;
  while (queue_pop(&p->work, &job)) {
    count_primes(&job);
    queue_push(&p->done, job);
  }
  return 0;
}

static int32_t collector(void *arg, void **result) {
  pipeline_t *p = arg;
  job_t *total = calloc(1, sizeof *total); /* handed to the joiner through *result */
  if (total == NULL) return 1;
  job_t job;
  while (queue_pop(&p->done, &job)) {
    total->primes += job.primes;
    total->sum += job.sum;
  }
  *result = total;
  return 0;
}

/* The reference answer, computed another way: a sieve of Eratosthenes. */
static job_t sieve(uint64_t limit) {
  job_t total = {0, limit, 0, 0};
  char *composite = calloc(limit + 1, 1);
  if (composite == NULL) exit(1);
  for (uint64_t n = 2; n < limit; n++) {
    if (composite[n]) continue;
    total.primes++;
    total.sum += n;
    for (uint64_t m = n * n; m < limit; m += n) composite[m] = 1;
  }
  free(composite);
  return total;
}

int main(int argc, char **argv) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int workers = argc > 1 ? atoi(argv[1]) : (cpus >= 1 && cpus <= 64 ? (int)cpus : 4);
  uint64_t limit = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000000;
  if (workers < 1 || workers > 64 || limit < 2) {
    fprintf(stderr, "usage: %s [workers (1-64) [limit (>= 2)]]\n", argv[0]);
    return 2;
  }

  /* A runtime on the default platform: $WEFT_PLATFORM, else "native". */
  weft_runtime_t *rt = NULL;
  CHECK(weft_runtime_open(NULL, &rt));
  const weft_platform_info_t *platform = weft_runtime_platform(rt);
  printf("weft %s, platform \"%s\" %s (%s)\n", weft_version(), platform->name, platform->version, platform->path);

  pipeline_t p;
  p.limit = limit;
  p.chunk = limit / 200 > 1000 ? limit / 200 : 1000;
  queue_init(rt, &p.work);
  queue_init(rt, &p.done);
  printf("counting the primes below %" PRIu64 " in chunks of %" PRIu64 ", %d counter tasks\n", limit, p.chunk, workers);

  /* Start the stages. Each task is named (debuggers and weft_tasks_foreach show it). */
  int64_t start = weft_now(rt);
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  weft_task_t *gen, *col, *counters[64];
  opts.name = "generator";
  CHECK(weft_spawn(rt, generator, &p, &opts, &gen));
  opts.name = "counter";
  for (int i = 0; i < workers; i++) CHECK(weft_spawn(rt, counter, &p, &opts, &counters[i]));
  opts.name = "collector";
  CHECK(weft_spawn(rt, collector, &p, &opts, &col));

  /* Wait for the stages in order; the done queue closes when every counter is gone. */
  CHECK(weft_join(gen, WEFT_FOREVER, NULL, NULL));
  for (int i = 0; i < workers; i++) CHECK(weft_join(counters[i], WEFT_FOREVER, NULL, NULL));
  queue_close(&p.done);
  int32_t code = 0;
  void *result = NULL;
  CHECK(weft_join(col, WEFT_FOREVER, &code, &result));
  double pipeline_s = (double)(weft_now(rt) - start) / 1e9;
  if (code != 0) {
    fprintf(stderr, "the collector failed with code %d\n", (int)code);
    return 1;
  }
  job_t *total = result;

  /* The same work on one thread, for comparison. */
  start = weft_now(rt);
  job_t one = {0, limit, 0, 0};
  count_primes(&one);
  double sequential_s = (double)(weft_now(rt) - start) / 1e9;

  job_t expected = sieve(limit);
  printf("  pipeline:   %" PRIu64 " primes, sum %" PRIu64 ", %.3f s\n", total->primes, total->sum, pipeline_s);
  printf("  one thread: %" PRIu64 " primes, sum %" PRIu64 ", %.3f s (speed-up %.1fx)\n", one.primes, one.sum,
         sequential_s, sequential_s / pipeline_s);
  int ok = total->primes == expected.primes && total->sum == expected.sum && one.primes == expected.primes &&
           one.sum == expected.sum;
  printf("  sieve says: %" PRIu64 " primes, sum %" PRIu64 ": %s\n", expected.primes, expected.sum, ok ? "OK" : "MISMATCH");

  free(total);
  queue_destroy(&p.done);
  queue_destroy(&p.work);
  CHECK(weft_runtime_close(rt));
  return ok ? 0 : 1;
}
