/* weftbench's harness: argument parsing, the idle extra thread, round interleaving and
 * the JSON output. See bench.h. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

weft_runtime_t *bench_rt;

#define MAX_KINDS 32
static kind_t kinds[MAX_KINDS];
static int nkinds;

void bench_register(const kind_t *kind) {
  if (nkinds == MAX_KINDS) die("too many kinds", 1);
  kinds[nkinds++] = *kind;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double median_of(double *v, long n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t time_two_threads(void *(*a)(void *), void *arg_a, void *(*b)(void *), void *arg_b, int *start) {
  pthread_t ta, tb;
  CHECK(pthread_create(&ta, NULL, a, arg_a));
  CHECK(pthread_create(&tb, NULL, b, arg_b));
  int64_t t0 = now_ns();
  __atomic_store_n(start, 1, __ATOMIC_RELEASE);
  CHECK(pthread_join(ta, NULL));
  CHECK(pthread_join(tb, NULL));
  return now_ns() - t0;
}

void die(const char *what, int code) {
  fprintf(stderr, "weftbench: %s failed (%d)", what, code);
  if (code > 0 && code < 100) fprintf(stderr, ": %s [%s]", weft_strerror(code), weft_last_error());
  fprintf(stderr, "\n");
  exit(1);
}

/* glibc takes cheaper paths in a process that never had a second thread; every peer
 * here would be flattered by that, so a second thread exists before anything is timed.
 * It sleeps for the life of the process. */
static void *idle_thread(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

/* On an M:N platform the channel kinds run inside a task, as Go's run inside its main
 * goroutine: the "main thread" of a shape is then a task like its partners (on native a
 * task is a thread, so nothing changes there but one more spawn, outside the timing). */
typedef struct {
  variant_fn fn;
  const params_t *p;
  sample_t out;
} in_task_t;

static int32_t run_in_task(void *arg, void **result) {
  in_task_t *t = arg;
  (void)result;
  t->out = t->fn(t->p);
  return 0;
}

static sample_t run_variant(const kind_t *kind, int v, const params_t *p) {
  int green = (weft_runtime_platform(bench_rt)->caps & WEFT_CAP_GREEN_TASKS) != 0;
  if (!green || strncmp(kind->kind, "chan_", 5) != 0) return kind->variants[v].run(p);
  in_task_t t = {kind->variants[v].run, p, {0, 0}};
  weft_task_t *task;
  CHECK(weft_spawn(bench_rt, run_in_task, &t, NULL, &task));
  CHECK(weft_join(task, WEFT_FOREVER, NULL, NULL));
  return t.out;
}

static void usage(void) {
  fprintf(stderr,
          "usage: weftbench --list\n"
          "       weftbench KIND [--n N] [--threads T] [--locks L] [--cap C|unbounded]\n"
          "                      [--chans K] [--ms MS] [--rounds R] [--quick]\n"
          "       (without --n, each kind runs a full run's size: 1,000,000 but for the\n"
          "       slower kinds, e.g. cond_pingpong 50,000, spawn_join 5,000)\n");
  exit(2);
}

static void print_samples(const sample_t *s, int rounds, int extra) {
  printf("[");
  for (int r = 0; r < rounds; r++) printf("%s%.6g", r ? ", " : "", extra ? s[r].extra : s[r].value);
  printf("]");
}

int main(int argc, char **argv) {
  register_mutex_kinds();
  register_cond_kinds();
  register_spawn_kinds();
  register_callpath_kinds();
  register_safepoint_kinds();
  register_chan_kinds();
  register_parallel_kinds();
  register_parking_kinds();
  register_checks_kinds();
  register_green_kinds();
  register_machine_kinds();

  if (argc < 2) usage();
  if (strcmp(argv[1], "--list") == 0) {
    for (int k = 0; k < nkinds; k++) {
      printf("%s:", kinds[k].kind);
      for (int v = 0; v < MAX_VARIANTS && kinds[k].variants[v].name; v++) printf(" %s", kinds[k].variants[v].name);
      printf("\n");
    }
    return 0;
  }
  const kind_t *kind = NULL;
  for (int k = 0; k < nkinds; k++)
    if (strcmp(kinds[k].kind, argv[1]) == 0) kind = &kinds[k];
  if (!kind) {
    fprintf(stderr, "weftbench: unknown kind %s (see --list)\n", argv[1]);
    return 2;
  }

  params_t p = {.n = kind->default_n > 0 ? kind->default_n : 1000000,
                .threads = 2, .locks = 1, .cap = 1, .chans = 2, .ms = 200, .quick = 0};
  int rounds = 5;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--quick") == 0) { p.quick = 1; continue; }
    if (!v) usage();
    if (strcmp(a, "--n") == 0) p.n = atol(v);
    else if (strcmp(a, "--threads") == 0) p.threads = atoi(v);
    else if (strcmp(a, "--locks") == 0) p.locks = atoi(v);
    else if (strcmp(a, "--cap") == 0) p.cap = strcmp(v, "unbounded") == 0 ? -1 : atol(v);
    else if (strcmp(a, "--chans") == 0) p.chans = atoi(v);
    else if (strcmp(a, "--ms") == 0) p.ms = atoi(v);
    else if (strcmp(a, "--rounds") == 0) rounds = atoi(v);
    else usage();
    i++;
  }
  if (rounds < 1 || rounds > 100 || p.n < 1 || p.threads < 1 || p.locks < 1 || p.chans < 1) usage();

  pthread_t idle;
  CHECK(pthread_create(&idle, NULL, idle_thread, NULL));
  CHECK(pthread_detach(idle));
  CHECK(weft_runtime_open(NULL, &bench_rt));

  int nvar = 0;
  while (nvar < MAX_VARIANTS && kind->variants[nvar].name) nvar++;
  sample_t samples[MAX_VARIANTS][100];

  /* Warm-up (untimed): page faults, lazily made thread contexts, the plugin's first
   * calls. */
  params_t warm = p;
  warm.n = p.n / 20 > 0 ? p.n / 20 : 1;
  warm.ms = p.ms / 10 > 10 ? p.ms / 10 : 10;
  for (int v = 0; v < nvar; v++) run_variant(kind, v, &warm);

  /* Interleaved rounds: A B, then B A, ... so that a slow drift of the machine (another
   * process, frequency) falls on every variant alike. */
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < nvar; i++) {
      int v = (r % 2 == 0) ? i : nvar - 1 - i;
      samples[v][r] = run_variant(kind, v, &p);
    }
  }

  printf("{\"kind\": \"%s\", \"unit\": \"%s\", \"better\": \"%s\"", kind->kind, kind->unit, kind->better);
  if (kind->extra_unit) printf(", \"extra_unit\": \"%s\"", kind->extra_unit);
  printf(", \"platform\": \"%s\", \"samples\": {", weft_runtime_platform(bench_rt)->name);
  for (int v = 0; v < nvar; v++) {
    printf("%s\"%s\": ", v ? ", " : "", kind->variants[v].name);
    print_samples(samples[v], rounds, 0);
  }
  printf("}");
  if (kind->extra_unit) {
    printf(", \"extra\": {");
    for (int v = 0; v < nvar; v++) {
      printf("%s\"%s\": ", v ? ", " : "", kind->variants[v].name);
      print_samples(samples[v], rounds, 1);
    }
    printf("}");
  }
  printf("}\n");
  fflush(stdout);
  /* Tasks of the safepoint kinds are joined; the runtime closes cleanly. */
  CHECK(weft_runtime_close(bench_rt));
  return 0;
}
