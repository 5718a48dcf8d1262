/* A tiny weft host, built by each consumer project against an installed weft: opens a
 * runtime on the default platform (no environment variables), runs one task, and prints
 * the plugin it loaded, so that the test can check where it came from. */
#include <stdio.h>
#include <weft.h>

static int32_t answer(void *arg, void **result) {
  *result = arg;
  return 0;
}

int main(void) {
  if (weft_version_number() != WEFT_VERSION_NUMBER) {
    fprintf(stderr, "header %d, library %u\n", WEFT_VERSION_NUMBER, (unsigned)weft_version_number());
    return 1;
  }
  weft_runtime_t *rt;
  if (weft_runtime_open(NULL, &rt) != WEFT_OK) {
    fprintf(stderr, "weft_runtime_open: %s\n", weft_last_error());
    return 1;
  }
  static int value = 42;
  weft_task_t *task;
  int32_t code = -1;
  void *result = NULL;
  if (weft_spawn(rt, answer, &value, NULL, &task) != WEFT_OK || weft_join(task, WEFT_FOREVER, &code, &result) != WEFT_OK ||
      code != 0 || result != &value) {
    fprintf(stderr, "spawn/join: %s\n", weft_last_error());
    return 1;
  }
  const weft_platform_info_t *info = weft_runtime_platform(rt);
  printf("weft %s: platform %s from %s\n", weft_version(), info->name, info->path);
  return weft_runtime_close(rt) == WEFT_OK ? 0 : 1;
}
