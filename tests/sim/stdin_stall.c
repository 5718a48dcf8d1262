/* A task blocks in fgets(stdin) (a pipe nobody writes: the call holds stdin's lock for
 * as long as it waits) while another task could run: the stall report, exit 88. The
 * report's flush of the C streams waited for stdin's lock, and the process hung. With
 * "deadlock" the task that reads is main, alone with a task blocked for ever: the
 * report comes after a thread of the host's made stdin's lock busy the same way. Lines
 * printed before (fully buffered: stdout is a pipe) come out before the report. */
#define _DEFAULT_SOURCE /* usleep */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static weft_runtime_t *rt;

static int32_t read_stdin(void *arg, void **result) {
  (void)arg;
  (void)result;
  char line[64];
  if (fgets(line, sizeof line, stdin) != NULL) printf("read %s", line);
  return 0;
}

static void *hold_stdin(void *arg) {
  (void)arg;
  char line[64];
  if (fgets(line, sizeof line, stdin) != NULL) printf("read %s", line);
  return NULL;
}

int main(int argc, char **argv) {
  int p[2];
  if (pipe(p) != 0 || dup2(p[0], 0) != 0) return 1; /* stdin: a pipe nobody writes */
  for (int i = 0; i < 30; i++) printf("progress line %d\n", i);
  rt = open_runtime();
  if (argc > 1 && strcmp(argv[1], "deadlock") == 0) {
    pthread_t reader;
    if (pthread_create(&reader, NULL, hold_stdin, NULL) != 0) return 1;
    usleep(100000); /* the reader is in fgets by then, or the report only flushes sooner */
    deadlock_on_two_locks(rt);
    return 1;
  }
  weft_task_t *r = spawn(rt, read_stdin, NULL);
  weft_task_t *s = spawn(rt, yield_for_ever, rt);
  join(r);
  join(s);
  return 1;
}
