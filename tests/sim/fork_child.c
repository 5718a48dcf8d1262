/* A child of fork() leaves the parent's sim scheduler behind: a runtime the child opens
 * runs on a scheduler of its own, and the parent's tasks (copied into the child with
 * the one thread that ran them all) never run there. Before, the child's runtime shared
 * the copy of the parent's scheduler, and the parent's task below ran in the child. */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static weft_runtime_t *parents;
static pid_t parent_pid;
static int stop;

static int32_t spin_until_stopped(void *arg, void **result) {
  (void)arg;
  (void)result;
  while (!stop) {
    if (getpid() != parent_pid) {
      printf("a task of the parent's runtime ran in the child\n");
      fflush(stdout);
      _exit(1);
    }
    check(weft_yield(parents), "weft_yield");
  }
  return 0;
}

static int32_t count_yields(void *arg, void **result) {
  weft_runtime_t *rt = arg;
  for (int i = 0; i < 20; i++) check(weft_yield(rt), "weft_yield (child)");
  *result = (void *)(intptr_t)42;
  return 0;
}

static void child(void) {
  weft_runtime_t *rt = open_runtime();
  weft_task_t *t = spawn(rt, count_yields, rt);
  void *result = NULL;
  for (int i = 0; i < 20; i++) check(weft_yield(rt), "weft_yield (child's main)");
  check(weft_join(t, WEFT_FOREVER, NULL, &result), "weft_join (child)");
  if ((intptr_t)result != 42) {
    printf("the child's task gave %ld, not 42\n", (long)(intptr_t)result);
    fflush(stdout);
    _exit(1);
  }
  check(weft_runtime_close(rt), "weft_runtime_close (child)");
  fflush(stdout);
  _exit(0);
}

int main(void) {
  parent_pid = getpid();
  parents = open_runtime();
  weft_task_t *spinner = spawn(parents, spin_until_stopped, NULL);
  check(weft_yield(parents), "weft_yield");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    printf("fork failed\n");
    return 1;
  }
  if (pid == 0) child();
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("the child failed (status %#x)\n", status);
    return 1;
  }
  stop = 1;
  join(spinner);
  check(weft_runtime_close(parents), "weft_runtime_close");
  printf("done\n");
  return 0;
}
