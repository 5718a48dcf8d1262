/* The fast paths, each in a loop of its own, for tests/icount/check.sh: callgrind
 * counts the instructions of every probe_* function (inclusive), and the difference
 * between two runs of different lengths gives the instructions per iteration, exactly
 * (valgrind's count is deterministic, so a bound on it cannot flake on a noisy
 * machine). The peers (glibc's mutexes, clock_gettime, sched_yield, a __thread read)
 * run beside them, so that their counts are reported from the same run.
 *
 * A spawn and join involves two threads, and the probes above count only the calling
 * one's instructions; so it runs alone instead, in a process of its own, counted whole:
 * the difference between two runs of different lengths is again exact.
 *
 * Usage: probe N              (runs every probe N times; the runtime opens on
 *                              $WEFT_PLATFORM)
 *        probe spawn weft N   (N weft_spawn + weft_join of an empty task, from main)
 *        probe spawn pthread N  (N pthread_create + pthread_join, libweft open too) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

static weft_runtime_t *rt;
static weft_mutex_t mutex;
static weft_cond_t cond;
static weft_key_t key;
static pthread_mutex_t glibc_default = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t glibc_errorcheck;
static __thread void *thread_state;
static volatile uintptr_t sink;

#define MUST(call)                                 \
  do {                                             \
    if ((call) != 0) {                             \
      fprintf(stderr, "probe: %s failed\n", #call); \
      exit(1);                                     \
    }                                              \
  } while (0)

__attribute__((noinline)) void probe_weft_mutex(long n) {
  for (long i = 0; i < n; i++) {
    MUST(weft_mutex_lock(&mutex));
    MUST(weft_mutex_unlock(&mutex));
  }
}

/* Four mutexes of a runtime with the lock-order and deadlock checks on, taken in order
 * and released in reverse (the checks' common case: every order edge known already). */
static weft_runtime_t *checked_rt;
static weft_mutex_t checked[4];

__attribute__((noinline)) void probe_weft_checked_nested(long n) {
  for (long i = 0; i < n; i++) {
    for (int k = 0; k < 4; k++) MUST(weft_mutex_lock(&checked[k]));
    for (int k = 3; k >= 0; k--) MUST(weft_mutex_unlock(&checked[k]));
  }
}

__attribute__((noinline)) void probe_glibc_mutex(long n) {
  for (long i = 0; i < n; i++) {
    MUST(pthread_mutex_lock(&glibc_default));
    MUST(pthread_mutex_unlock(&glibc_default));
  }
}

__attribute__((noinline)) void probe_glibc_errorcheck(long n) {
  for (long i = 0; i < n; i++) {
    MUST(pthread_mutex_lock(&glibc_errorcheck));
    MUST(pthread_mutex_unlock(&glibc_errorcheck));
  }
}

__attribute__((noinline)) void probe_weft_now(long n) {
  for (long i = 0; i < n; i++) sink += (uintptr_t)weft_now(rt);
}

__attribute__((noinline)) void probe_clock_gettime(long n) {
  for (long i = 0; i < n; i++) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sink += (uintptr_t)ts.tv_nsec;
  }
}

__attribute__((noinline)) void probe_weft_yield(long n) {
  for (long i = 0; i < n; i++) MUST(weft_yield(rt));
}

__attribute__((noinline)) void probe_sched_yield(long n) {
  for (long i = 0; i < n; i++) MUST(sched_yield());
}

__attribute__((noinline)) void probe_weft_local_get(long n) {
  for (long i = 0; i < n; i++) sink += (uintptr_t)weft_local_get(key);
}

__attribute__((noinline)) void probe_weft_task_state(long n) {
  for (long i = 0; i < n; i++) sink += (uintptr_t)weft_task_state();
}

__attribute__((noinline)) void probe_thread_read(long n) {
  for (long i = 0; i < n; i++) {
    __asm__ volatile("" ::: "memory");
    sink += (uintptr_t)thread_state;
  }
}

/* A signal nobody waits for (the producer side of a condition, most of the time). */
__attribute__((noinline)) void probe_weft_cond_signal(long n) {
  for (long i = 0; i < n; i++) MUST(weft_cond_signal(&cond));
}

static int32_t empty_range(size_t begin, size_t end, void *ud) {
  (void)begin;
  (void)end;
  (void)ud;
  return 0;
}

/* A range that is one chunk (grain = its length): no worker, no clock; what a call costs
 * before any body runs (a per-call system call would show here as thousands). */
__attribute__((noinline)) void probe_weft_parallel_for_one_chunk(long n) {
  for (long i = 0; i < n; i++) {
    int32_t code = -1;
    MUST(weft_parallel_for(rt, 0, 64, 64, empty_range, NULL, &code));
    MUST(code);
  }
}

static int32_t empty_task(void *arg, void **result) {
  (void)arg;
  (void)result;
  return 0;
}

static void *empty_thread(void *arg) { return arg; }

/* `probe spawn weft|pthread N`: spawn and join N empty tasks (threads) one after the other. */
static int spawn_join(const char *which, long n) {
  int weft = strcmp(which, "weft") == 0;
  if (!weft && strcmp(which, "pthread") != 0) {
    fprintf(stderr, "probe: spawn weft|pthread N, not %s\n", which);
    return 2;
  }
  for (long i = 0; i < n; i++) {
    if (weft) {
      weft_task_t *task;
      MUST(weft_spawn(rt, empty_task, NULL, NULL, &task));
      MUST(weft_join(task, WEFT_FOREVER, NULL, NULL));
    } else {
      pthread_t thread;
      MUST(pthread_create(&thread, NULL, empty_thread, NULL));
      MUST(pthread_join(thread, NULL));
    }
  }
  MUST(weft_runtime_close(rt));
  return 0;
}

int main(int argc, char **argv) {
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) {
    fprintf(stderr, "probe: weft_runtime_open: %s\n", weft_last_error());
    return 1;
  }
  if (argc == 4 && strcmp(argv[1], "spawn") == 0) return spawn_join(argv[2], atol(argv[3]));
  long n = argc > 1 ? atol(argv[1]) : 1000;
  MUST(weft_mutex_init(rt, &mutex, 0));
  MUST(weft_cond_init(rt, &cond));
  weft_config_t cfg;
  weft_config_init(&cfg);
  cfg.flags = WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK;
  MUST(weft_runtime_open(&cfg, &checked_rt));
  for (int k = 0; k < 4; k++) MUST(weft_mutex_init(checked_rt, &checked[k], 0));
  MUST(weft_key_create(rt, NULL, &key));
  MUST(weft_local_set(key, &key));
  MUST(weft_task_set_state(&key));
  thread_state = &key;
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  MUST(pthread_mutex_init(&glibc_errorcheck, &attr));
  /* Once first, so that every lazy first-use cost is outside the counted runs' difference. */
  for (int round = 0; round < 2; round++) {
    long k = round == 0 ? 1 : n;
    probe_weft_mutex(k);
    probe_weft_checked_nested(k);
    probe_glibc_mutex(k);
    probe_glibc_errorcheck(k);
    probe_weft_now(k);
    probe_clock_gettime(k);
    probe_weft_yield(k);
    probe_sched_yield(k);
    probe_weft_local_get(k);
    probe_weft_task_state(k);
    probe_thread_read(k);
    probe_weft_cond_signal(k);
    probe_weft_parallel_for_one_chunk(k);
  }
  MUST(weft_cond_destroy(&cond));
  MUST(weft_mutex_destroy(&mutex));
  for (int k = 0; k < 4; k++) MUST(weft_mutex_destroy(&checked[k]));
  MUST(weft_runtime_close(checked_rt));
  MUST(weft_runtime_close(rt));
  return 0;
}
