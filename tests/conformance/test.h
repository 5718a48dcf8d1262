/*
 * The conformance suite's test macros, libuv-style. Each test is
 *
 *     TEST_IMPL(name) { ... return TEST_OK; }
 *
 * listed once in an area list (list-*.h) with WEFT_TEST(name). A test runs in its own
 * process (see runner.c); a failed ASSERT prints where and why, with weft_last_error(),
 * and exits non-zero. Tests get the platform from $WEFT_PLATFORM like any host.
 */
#ifndef WEFT_CONFORMANCE_TEST_H
#define WEFT_CONFORMANCE_TEST_H

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"

/* Valgrind's client requests, where its header is installed (./dev test installs
 * valgrind, and the ctest label valgrind exists only where it is). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define TEST_HAVE_VALGRIND_H 1
#endif
#endif

#define TEST_OK 0
#define TEST_SKIP 77 /* the exit code ctest is told means "skipped" */

#define TEST_IMPL(name) int test_##name(void)

#define TEST_FAIL_(fmt, ...)                                                          \
  do {                                                                                \
    fprintf(stderr, "%s:%d: " fmt "\n  last error: %s\n", __FILE__, __LINE__,        \
            __VA_ARGS__, weft_last_error());                                          \
    fflush(stderr);                                                                   \
    abort();                                                                          \
  } while (0)

#define ASSERT(cond)                                                                  \
  do {                                                                                \
    if (!(cond)) TEST_FAIL_("assertion failed: %s", #cond);                           \
  } while (0)

#define ASSERT_EQ(a, b)                                                               \
  do {                                                                                \
    long long a_ = (long long)(a), b_ = (long long)(b);                               \
    if (a_ != b_) TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);               \
  } while (0)

/* A weft call that must give `code`; on a mismatch both codes are named. */
#define ASSERT_STATUS(code, call)                                                     \
  do {                                                                                \
    weft_status_t got_ = (call);                                                      \
    if (got_ != (code))                                                               \
      TEST_FAIL_("%s gave %d (%s), expected %d (%s)", #call, got_, weft_strerror(got_), \
                 (int)(code), weft_strerror(code));                                   \
  } while (0)

#define ASSERT_OK(call) ASSERT_STATUS(WEFT_OK, call)

/* weft_last_error() mentions `text` (for error-message checks). */
#define ASSERT_ERROR_MENTIONS(text)                                                   \
  do {                                                                                \
    if (strstr(weft_last_error(), (text)) == NULL)                                    \
      TEST_FAIL_("weft_last_error() does not mention \"%s\"", (text));                \
  } while (0)

/* Opens a runtime on $WEFT_PLATFORM (or native); fails the test if it cannot. */
static inline weft_runtime_t *test_open_runtime(void) {
  weft_runtime_t *rt = NULL;
  ASSERT_OK(weft_runtime_open(NULL, &rt));
  ASSERT(rt != NULL);
  return rt;
}

/* Skips the test (exit TEST_SKIP, the reason on stderr) on a platform that runs every
 * task on the one thread that opened the runtime (WEFT_CAP_DETERMINISTIC: sim), for a
 * test that needs what such a platform cannot give: a thread the host made itself, or
 * a task that computes without weft calls while another one runs. */
static inline void test_skip_on_one_thread(weft_runtime_t *rt, const char *reason) {
  if (weft_runtime_platform(rt)->caps & WEFT_CAP_DETERMINISTIC) {
    fprintf(stderr, "skip: %s\n", reason);
    fflush(NULL);
    _Exit(TEST_SKIP);
  }
}

/* As test_skip_on_one_thread, for a test that has no runtime open yet (a probe runtime
 * is opened and closed to ask). */
static inline void test_skip_if_one_thread(const char *reason) {
  weft_runtime_t *probe = test_open_runtime();
  uint64_t caps = weft_runtime_platform(probe)->caps;
  ASSERT_OK(weft_runtime_close(probe));
  if (caps & WEFT_CAP_DETERMINISTIC) {
    fprintf(stderr, "skip: %s\n", reason);
    fflush(NULL);
    _Exit(TEST_SKIP);
  }
}

/* Closes a runtime opened by test_open_runtime. */
static inline void test_close_runtime(weft_runtime_t *rt) { ASSERT_OK(weft_runtime_close(rt)); }

/* A deadline `ms` milliseconds from now. */
static inline int64_t test_after_ms(weft_runtime_t *rt, int64_t ms) {
  return weft_deadline_after(rt, ms * 1000000);
}

/* Spawns fn(arg) with default options; fails the test if it cannot. */
static inline weft_task_t *test_spawn(weft_runtime_t *rt, weft_task_fn fn, void *arg) {
  weft_task_t *t = NULL;
  ASSERT_OK(weft_spawn(rt, fn, arg, NULL, &t));
  return t;
}

/* Joins t forever and returns its code. */
static inline int32_t test_join(weft_task_t *t) {
  int32_t code = -1;
  ASSERT_OK(weft_join(t, WEFT_FOREVER, &code, NULL));
  return code;
}

/* Sleeps `ms` milliseconds (lets other tasks reach a wait; no test result depends on
 * how long it really takes). */
static inline void test_sleep_ms(weft_runtime_t *rt, int64_t ms) {
  ASSERT_OK(weft_sleep_until(rt, test_after_ms(rt, ms)));
}

/* Whether the test runs under valgrind (the ctest label valgrind, ./dev memcheck). */
static inline int test_under_valgrind(void) {
#ifdef TEST_HAVE_VALGRIND_H
  return RUNNING_ON_VALGRIND != 0;
#else
  return 0;
#endif
}

/* How many messages (rounds, items) a volume test moves: `n`, or a hundredth of it
 * under valgrind. Memcheck checks every access of the first message as of the
 * millionth, at 20-50 times the cost of each: the volume adds minutes, not checks. */
static inline uint64_t test_volume(uint64_t n) {
  if (!test_under_valgrind()) return n;
  return n / 100 > 0 ? n / 100 : 1;
}

/* Ends a forked child with `code`. Under valgrind, without the child's leak check: a
 * child inherits the memory the parent's other threads held in their registers, stacks
 * and thread-locals at the fork, and those threads do not exist in it, so their blocks
 * read as lost there. The child's memory errors still count (--error-exitcode). */
static inline void test_child_exit(int code) {
#ifdef TEST_HAVE_VALGRIND_H
  if (RUNNING_ON_VALGRIND) VALGRIND_CLO_CHANGE("--leak-check=no");
#endif
  fflush(NULL);
  _Exit(code);
}

/* How long a test waits for something that must happen "promptly" before it fails:
 * generous, so that a slow or loaded machine never fails a correct platform. */
#define TEST_PATIENCE_MS 10000

/* The OS's monotonic clock, in ns: real time, whatever the runtime's clock is. */
static inline int64_t test_real_now_ns(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* When TEST_PATIENCE_MS of real time from now will have passed. */
static inline int64_t test_real_patience_end(void) { return test_real_now_ns() + (int64_t)TEST_PATIENCE_MS * 1000000; }

/* Waits up to TEST_PATIENCE_MS of real time (not the runtime's: on a virtual-time
 * platform a sleeping parent would run out of patience in no time while the child
 * really works) for the forked `child` to exit; its exit code, or -1 (after killing
 * it, and saying so on stderr) if it hung or died of a signal. */
static inline int test_wait_child(pid_t child, const char *what) {
  int64_t give_up = test_real_patience_end();
  int status = 0;
  pid_t done;
  while ((done = waitpid(child, &status, WNOHANG)) == 0) {
    if (test_real_now_ns() >= give_up) break;
    usleep(1000);
  }
  if (done == 0) {
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    fprintf(stderr, "%s: the child hung\n", what);
    return -1;
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "%s: the child died of signal %d\n", what, WTERMSIG(status));
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A gate: tasks wait in test_gate_wait until the test opens it. The wait is a
 * condition wait, so it is a cancellation point (its status is returned). */
typedef struct {
  weft_mutex_t m;
  weft_cond_t c;
  int open;
  int waiting;
} test_gate_t;

static inline void test_gate_init(weft_runtime_t *rt, test_gate_t *g) {
  g->open = 0;
  g->waiting = 0;
  ASSERT_OK(weft_mutex_init(rt, &g->m, 0));
  ASSERT_OK(weft_cond_init(rt, &g->c));
}

static inline weft_status_t test_gate_wait(test_gate_t *g) {
  weft_status_t st = WEFT_OK;
  ASSERT_OK(weft_mutex_lock(&g->m));
  g->waiting++;
  while (!g->open && st == WEFT_OK) st = weft_cond_wait(&g->c, &g->m);
  g->waiting--;
  ASSERT_OK(weft_mutex_unlock(&g->m));
  return st;
}

static inline void test_gate_open(test_gate_t *g) {
  ASSERT_OK(weft_mutex_lock(&g->m));
  g->open = 1;
  ASSERT_OK(weft_cond_broadcast(&g->c));
  ASSERT_OK(weft_mutex_unlock(&g->m));
}

/* Waits until `n` tasks wait at the gate (fails the test after TEST_PATIENCE_MS). */
static inline void test_gate_await_waiters(weft_runtime_t *rt, test_gate_t *g, int n) {
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  for (;;) {
    ASSERT_OK(weft_mutex_lock(&g->m));
    int waiting = g->waiting;
    ASSERT_OK(weft_mutex_unlock(&g->m));
    if (waiting >= n) return;
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
}

static inline void test_gate_destroy(test_gate_t *g) {
  ASSERT_OK(weft_cond_destroy(&g->c));
  ASSERT_OK(weft_mutex_destroy(&g->m));
}

typedef struct {
  weft_task_t *task;
  int found;
  uint32_t state;
} test_probe_t;

static inline bool test_probe_visit(const weft_task_info_t *info, void *ud) {
  test_probe_t *p = (test_probe_t *)ud;
  if (info->task != p->task) return 0;
  p->found = 1;
  p->state = info->state;
  return 1;
}

/* Waits until task `t` is inside a blocking region (a weft wait), as seen by
 * weft_tasks_foreach; fails the test after TEST_PATIENCE_MS. Tests use it to cancel a
 * task that is really parked, not one about to park (both must work). */
static inline void test_wait_blocked(weft_runtime_t *rt, weft_task_t *t) {
  int64_t give_up = test_after_ms(rt, TEST_PATIENCE_MS);
  for (;;) {
    test_probe_t p = {t, 0, 0};
    ASSERT_OK(weft_tasks_foreach(rt, test_probe_visit, &p));
    if (p.found && p.state == WEFT_TASK_BLOCKING) return;
    ASSERT(weft_now(rt) < give_up);
    test_sleep_ms(rt, 1);
  }
}

/* Closes `rt`, waiting (bounded) for detached tasks to end first. */
static inline void test_close_runtime_when_idle(weft_runtime_t *rt) {
  ASSERT_OK(weft_runtime_drain(rt, test_after_ms(rt, TEST_PATIENCE_MS)));
  ASSERT_OK(weft_runtime_close(rt));
}

#endif
