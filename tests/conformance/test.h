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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

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

#endif
