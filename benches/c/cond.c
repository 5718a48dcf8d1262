/* Condition-variable ping-pong between two tasks (weft) or two threads (pthread): a
 * shared turn, one mutex, one condition. Task A waits for its turn, hands it to B and
 * signals; B does the same back. The figure is the time of one round trip A -> B -> A
 * (two hand-overs, each a signal and a wake-up), from the start line to the last
 * hand-over, over n round trips. */
#include <pthread.h>

#include "bench.h"

typedef struct {
  weft_mutex_t m;
  weft_cond_t c;
  int turn;
  int start;
  long n;
} weft_pp_t;

typedef struct {
  pthread_mutex_t m;
  pthread_cond_t c;
  int turn;
  int start;
  long n;
} pthread_pp_t;

typedef struct {
  void *pp;
  int me;
} pp_arg_t;

static int32_t weft_player(void *arg, void **result) {
  (void)result;
  pp_arg_t *a = arg;
  weft_pp_t *pp = a->pp;
  spin_until_set(&pp->start);
  for (long i = 0; i < pp->n; i++) {
    CHECK(weft_mutex_lock(&pp->m));
    while (pp->turn != a->me) CHECK(weft_cond_wait(&pp->c, &pp->m));
    pp->turn = !a->me;
    CHECK(weft_cond_signal(&pp->c));
    CHECK(weft_mutex_unlock(&pp->m));
  }
  return 0;
}

static void *pthread_player(void *arg) {
  pp_arg_t *a = arg;
  pthread_pp_t *pp = a->pp;
  spin_until_set(&pp->start);
  for (long i = 0; i < pp->n; i++) {
    CHECK(pthread_mutex_lock(&pp->m));
    while (pp->turn != a->me) CHECK(pthread_cond_wait(&pp->c, &pp->m));
    pp->turn = !a->me;
    CHECK(pthread_cond_signal(&pp->c));
    CHECK(pthread_mutex_unlock(&pp->m));
  }
  return NULL;
}

static sample_t pingpong_weft(const params_t *p) {
  weft_pp_t pp = {.turn = 0, .start = 0, .n = p->n};
  CHECK(weft_mutex_init(bench_rt, &pp.m, 0));
  CHECK(weft_cond_init(bench_rt, &pp.c));
  pp_arg_t a = {&pp, 0}, b = {&pp, 1};
  weft_task_t *ta, *tb;
  CHECK(weft_spawn(bench_rt, weft_player, &a, NULL, &ta));
  CHECK(weft_spawn(bench_rt, weft_player, &b, NULL, &tb));
  int64_t t0 = now_ns();
  __atomic_store_n(&pp.start, 1, __ATOMIC_RELEASE);
  CHECK(weft_join(ta, WEFT_FOREVER, NULL, NULL));
  CHECK(weft_join(tb, WEFT_FOREVER, NULL, NULL));
  int64_t t1 = now_ns();
  CHECK(weft_cond_destroy(&pp.c));
  CHECK(weft_mutex_destroy(&pp.m));
  return (sample_t){(double)(t1 - t0) / (double)p->n, 0};
}

static sample_t pingpong_pthread(const params_t *p) {
  pthread_pp_t pp = {.turn = 0, .start = 0, .n = p->n};
  CHECK(pthread_mutex_init(&pp.m, NULL));
  CHECK(pthread_cond_init(&pp.c, NULL));
  pp_arg_t a = {&pp, 0}, b = {&pp, 1};
  int64_t ns = time_two_threads(pthread_player, &a, pthread_player, &b, &pp.start);
  CHECK(pthread_cond_destroy(&pp.c));
  CHECK(pthread_mutex_destroy(&pp.m));
  return (sample_t){(double)ns / (double)p->n, 0};
}

void register_cond_kinds(void) {
  bench_register(&(kind_t){
      .kind = "cond_pingpong",
      .unit = "ns per round trip A->B->A (two signal+wake hand-overs under one mutex)",
      .better = "lower",
      .default_n = 50000,
      .variants = {{"weft", pingpong_weft}, {"pthread", pingpong_pthread}},
  });
}
