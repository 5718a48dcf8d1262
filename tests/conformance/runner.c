/*
 * The conformance runner, libuv-style.
 *
 *   conformance --list        print every test name
 *   conformance NAME          run one test in this process (what ctest does)
 *   conformance               run every test, each in its own process with a timeout,
 *                             and print one line per test and a summary
 *
 * The platform under test is $WEFT_PLATFORM (a name or a path), as for any host.
 * $WEFT_TEST_TIMEOUT (seconds, default 60) bounds each test in the all-tests mode.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#define WEFT_TEST(name) int test_##name(void);
#include "test-list.h"
#undef WEFT_TEST

typedef struct {
  const char *name;
  int (*fn)(void);
} test_entry_t;

static const test_entry_t tests[] = {
#define WEFT_TEST(name) {#name, test_##name},
#include "test-list.h"
#undef WEFT_TEST
};

static const size_t test_count = sizeof(tests) / sizeof(tests[0]);

static int run_in_process(const test_entry_t *t) {
  int rc = t->fn();
  fflush(stdout);
  return rc;
}

static double seconds_since(const struct timespec *start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Runs one test in a child process; returns 0 pass, 1 fail, 2 skip. */
static int run_in_child(const test_entry_t *t, int timeout_s) {
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "fork: %s\n", strerror(errno));
    return 1;
  }
  if (pid == 0) _exit(run_in_process(t));
  int status = 0;
  for (;;) {
    pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (seconds_since(&start) > timeout_s) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      printf("FAIL  %-40s timed out after %d s\n", t->name, timeout_s);
      return 1;
    }
    struct timespec nap = {0, 2000000};
    nanosleep(&nap, NULL);
  }
  double took = seconds_since(&start);
  if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_OK) {
    printf("ok    %-40s %.3f s\n", t->name, took);
    return 0;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP) {
    printf("skip  %-40s\n", t->name);
    return 2;
  }
  if (WIFSIGNALED(status))
    printf("FAIL  %-40s killed by signal %d\n", t->name, WTERMSIG(status));
  else
    printf("FAIL  %-40s exit code %d\n", t->name, WEXITSTATUS(status));
  return 1;
}

/* Opens the platform under test once and says which it is; 0 if it cannot be loaded
 * (then running the tests would only repeat the reason). */
static int describe_platform(void) {
  weft_runtime_t *rt = NULL;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) {
    printf("cannot open the platform: %s\n", weft_last_error());
    return 0;
  }
  const weft_platform_info_t *info = weft_runtime_platform(rt);
  printf("platform %s %s (ABI %u, caps 0x%llx) from %s\n", info->name, info->version, info->abi_version,
         (unsigned long long)info->caps, info->path);
  weft_runtime_close(rt);
  return 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < test_count; i++) printf("%s\n", tests[i].name);
    return 0;
  }
  if (argc == 2) {
    for (size_t i = 0; i < test_count; i++)
      if (strcmp(argv[1], tests[i].name) == 0) return run_in_process(&tests[i]);
    fprintf(stderr, "no test named \"%s\" (see --list)\n", argv[1]);
    return 2;
  }
  if (argc > 2) {
    fprintf(stderr, "usage: %s [--list | NAME]\n", argv[0]);
    return 2;
  }
  const char *platform = getenv("WEFT_PLATFORM");
  const char *timeout_env = getenv("WEFT_TEST_TIMEOUT");
  int timeout_s = timeout_env ? atoi(timeout_env) : 60;
  if (timeout_s <= 0) timeout_s = 60;
  printf("weft conformance: %zu tests on platform %s\n", test_count, platform ? platform : "native (default)");
  fflush(stdout);
  /* In a child, so that the tests' processes do not inherit a loaded runtime. */
  pid_t pid = fork();
  if (pid == 0) _exit(describe_platform() ? 0 : 1);
  int status = 1;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("0 passed, %zu failed, 0 skipped\n", test_count);
    return 1;
  }
  int passed = 0, failed = 0, skipped = 0;
  for (size_t i = 0; i < test_count; i++) {
    switch (run_in_child(&tests[i], timeout_s)) {
      case 0: passed++; break;
      case 2: skipped++; break;
      default: failed++; break;
    }
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
