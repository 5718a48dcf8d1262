/*
 * VM integration for a conservative collector: what weft_tasks_foreach tells about a
 * stopped mutator (stack bounds, the stack pointer and callee-saved registers recorded
 * where it parked), weft_task_stack, weft_blocking_call, tasks not started yet, and a
 * process that ends while its main thread holds the world stopped.
 *
 * The scan tests are built to fail when weft records the wrong thing: each mutator
 * keeps a secret word only in a volatile array on its own stack (or only in one
 * callee-saved register), and the collector looks for it in the range weft reports,
 * [sp, stack_hi) plus the register block, never anywhere else.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* Under valgrind (the "valgrind" label runs these tests too) a scan copies the stack
 * range first: memcheck then reports any byte of it that is not addressable (a scan
 * outside the mutator's stack), and the words the mutator never initialised are marked
 * defined in the copy only, so that comparing them is not reported. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void)(addr), (void)(len))
#endif

#define SCAN_BOUND_MS 20000 /* a bound for what must happen; never reached when correct */
#define SCAN_ROUNDS 20
#define SCAN_WORDS 4

/* The ways a mutator can be stopped, each one a mutator task. */
enum { BY_POLL, BY_LOCK, BY_COND, BY_SLEEP, BY_CHAN, BY_BLOCKING_CALL, BY_BLOCKING_BEGIN, BY_YIELD, SCAN_WAYS };
static const char *const way_names[SCAN_WAYS] = {"poll",      "mutex lock",         "cond wait",
                                                 "sleep",     "chan recv",          "weft_blocking_call",
                                                 "weft_blocking_begin", "weft_yield"};

static struct {
  weft_runtime_t *rt;
  const void *flag;
  weft_mutex_t lock; /* held by the collector while a mutator waits for it */
  weft_mutex_t m;
  weft_cond_t c;
  int released; /* protected by m */
  weft_chan_t *chan;
  atomic_int quit;
  atomic_int ready;
  weft_task_t *tasks[SCAN_WAYS];
} scan;

/* A word that appears nowhere in a mutator's stack unless the mutator put it there. */
static uintptr_t secret_of(int way) {
  return (uintptr_t)0x5eedc0de00000000ull ^ ((uintptr_t)(way + 1) * (uintptr_t)0x9e3779b97f4a7c15ull);
}

static void sleep_until_quit(void *arg) {
  (void)arg;
  while (!atomic_load(&scan.quit)) test_sleep_ms(scan.rt, 1);
}

static void park_by(int way) {
  switch (way) {
    case BY_POLL:
      while (!atomic_load(&scan.quit)) WEFT_SAFEPOINT_POLL(scan.rt, scan.flag);
      break;
    case BY_LOCK:
      ASSERT_OK(weft_mutex_lock(&scan.lock));
      ASSERT_OK(weft_mutex_unlock(&scan.lock));
      break;
    case BY_COND:
      ASSERT_OK(weft_mutex_lock(&scan.m));
      while (!scan.released) ASSERT_OK(weft_cond_wait(&scan.c, &scan.m));
      ASSERT_OK(weft_mutex_unlock(&scan.m));
      break;
    case BY_SLEEP:
      sleep_until_quit(NULL);
      break;
    case BY_CHAN: {
      int got = 0;
      ASSERT_STATUS(WEFT_ECLOSED, weft_chan_recv(scan.chan, &got, WEFT_FOREVER));
      break;
    }
    case BY_BLOCKING_CALL:
      ASSERT_OK(weft_blocking_call(scan.rt, sleep_until_quit, NULL));
      break;
    case BY_BLOCKING_BEGIN:
      ASSERT_OK(weft_blocking_begin(scan.rt));
      sleep_until_quit(NULL);
      ASSERT_OK(weft_blocking_end(scan.rt));
      break;
    case BY_YIELD:
      while (!atomic_load(&scan.quit)) ASSERT_OK(weft_yield(scan.rt));
      break;
  }
}

static int32_t scan_mutator(void *arg, void **result) {
  (void)result;
  int way = (int)(intptr_t)arg;
  volatile uintptr_t keep[SCAN_WORDS]; /* the secret lives here, on this task's stack */
  for (int k = 0; k < SCAN_WORDS; k++) keep[k] = secret_of(way);
  atomic_fetch_add(&scan.ready, 1);
  park_by(way);
  for (int k = 0; k < SCAN_WORDS; k++) ASSERT(keep[k] == secret_of(way));
  return 0;
}

/* Reading another thread's stack word by word crosses the red zones AddressSanitizer
 * puts between its frames' locals: a conservative scan is exempt, as Boehm's is (and
 * copies with a loop, since ASan checks memcpy's ranges whoever calls it). */
#if defined(__GNUC__) || defined(__clang__)
#define SCAN_NO_ASAN __attribute__((no_sanitize_address))
#else
#define SCAN_NO_ASAN
#endif

SCAN_NO_ASAN static void copy_stack_words(uintptr_t *to, const volatile uintptr_t *from, size_t words) {
  for (size_t k = 0; k < words; k++) to[k] = from[k];
}

/* Whether `want` is in [sp, stack_hi) (word-aligned) or in the register block. */
static int scan_finds(const weft_task_info_t *info, uintptr_t want) {
  uintptr_t regs[WEFT_SAVED_REGS];
  memcpy(regs, info->regs, sizeof regs);
  VALGRIND_MAKE_MEM_DEFINED(regs, sizeof regs);
  for (int r = 0; r < WEFT_SAVED_REGS; r++)
    if (regs[r] == want) return 1;
  uintptr_t from = ((uintptr_t)info->sp + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
  size_t words = ((uintptr_t)info->stack_hi - from) / sizeof(uintptr_t);
  uintptr_t *copy = malloc(words * sizeof(uintptr_t));
  ASSERT(copy != NULL);
  copy_stack_words(copy, (const volatile uintptr_t *)from, words);
  VALGRIND_MAKE_MEM_DEFINED(copy, words * sizeof(uintptr_t));
  int found = 0;
  for (size_t k = 0; k < words && !found; k++) found = copy[k] == want;
  free(copy);
  return found;
}

typedef struct {
  int found[SCAN_WAYS];
  int seen[SCAN_WAYS];
  int bad_state, bad_bounds;
} scan_walk_t;

static bool scan_visit(const weft_task_info_t *info, void *ud) {
  scan_walk_t *w = ud;
  for (int way = 0; way < SCAN_WAYS; way++) {
    if (info->task != scan.tasks[way]) continue;
    w->seen[way]++;
    if (info->state != WEFT_TASK_AT_SAFEPOINT && info->state != WEFT_TASK_BLOCKING) w->bad_state++;
    char *lo = info->stack_lo, *hi = info->stack_hi, *sp = info->sp;
    if (lo == NULL || sp == NULL || !(lo < sp && sp < hi)) {
      w->bad_bounds++;
      continue;
    }
    if (scan_finds(info, secret_of(way))) w->found[way]++;
  }
  return 0;
}

static void scan_setup(void) {
  scan.rt = test_open_runtime();
  scan.flag = weft_safepoint_flag(scan.rt);
  ASSERT_OK(weft_mutex_init(scan.rt, &scan.lock, 0));
  ASSERT_OK(weft_mutex_init(scan.rt, &scan.m, 0));
  ASSERT_OK(weft_cond_init(scan.rt, &scan.c));
  ASSERT_OK(weft_chan_new(scan.rt, sizeof(int), 0, NULL, &scan.chan));
}

static void scan_teardown(void) {
  weft_chan_release(scan.chan);
  ASSERT_OK(weft_cond_destroy(&scan.c));
  ASSERT_OK(weft_mutex_destroy(&scan.m));
  ASSERT_OK(weft_mutex_destroy(&scan.lock));
  test_close_runtime(scan.rt);
}

static void wait_ready(int n) {
  int64_t give_up = test_after_ms(scan.rt, SCAN_BOUND_MS);
  while (atomic_load(&scan.ready) < n) {
    ASSERT(weft_now(scan.rt) < give_up);
    test_sleep_ms(scan.rt, 1);
  }
}

TEST_IMPL(vm_scan_finds_parked_stack_values) {
  scan_setup();
  ASSERT_OK(weft_mutex_lock(&scan.lock));
  for (int way = 0; way < SCAN_WAYS; way++) {
    char name[32];
    snprintf(name, sizeof name, "scan-%d", way);
    weft_spawn_opts_t opts;
    weft_spawn_opts_init(&opts);
    opts.name = name;
    ASSERT_OK(weft_spawn(scan.rt, scan_mutator, (void *)(intptr_t)way, &opts, &scan.tasks[way]));
  }
  wait_ready(SCAN_WAYS);
  for (int round = 0; round < SCAN_ROUNDS; round++) {
    ASSERT_OK(weft_stw_begin(scan.rt, test_after_ms(scan.rt, SCAN_BOUND_MS)));
    scan_walk_t walk;
    memset(&walk, 0, sizeof walk);
    ASSERT_OK(weft_tasks_foreach(scan.rt, scan_visit, &walk));
    ASSERT_OK(weft_stw_end(scan.rt));
    ASSERT_EQ(walk.bad_state, 0);
    ASSERT_EQ(walk.bad_bounds, 0);
    for (int way = 0; way < SCAN_WAYS; way++) {
      ASSERT_EQ(walk.seen[way], 1);
      if (!walk.found[way]) TEST_FAIL_("round %d: the secret of the mutator stopped in %s was not found", round, way_names[way]);
    }
    test_sleep_ms(scan.rt, 1);
  }
  atomic_store(&scan.quit, 1);
  ASSERT_OK(weft_mutex_unlock(&scan.lock));
  ASSERT_OK(weft_mutex_lock(&scan.m));
  scan.released = 1;
  ASSERT_OK(weft_cond_broadcast(&scan.c));
  ASSERT_OK(weft_mutex_unlock(&scan.m));
  ASSERT_OK(weft_chan_close(scan.chan));
  for (int way = 0; way < SCAN_WAYS; way++) ASSERT_EQ(test_join(scan.tasks[way]), 0);
  scan_teardown();
  return TEST_OK;
}

/* --- a value held only in a callee-saved register -------------------------------- */

/* reg_begin(value, rt): puts `value` in one callee-saved register, calls
 * weft_blocking_begin(rt) and restores the register: at the call, that register is the
 * only place the value is. The block's index of that register is REG_SLOT. */
#if defined(__x86_64__)
#define REG_SLOT 2 /* r12 */
__asm__(".text\n"
        ".globl weft_test_reg_begin\n"
        ".type weft_test_reg_begin, @function\n"
        "weft_test_reg_begin:\n"
        "  push %r12\n"
        "  mov %rdi, %r12\n"
        "  mov %rsi, %rdi\n"
        "  call weft_blocking_begin@PLT\n"
        "  pop %r12\n"
        "  ret\n"
        ".size weft_test_reg_begin, . - weft_test_reg_begin\n");
#elif defined(__aarch64__)
#define REG_SLOT 3 /* x22 */
__asm__(".text\n"
        ".globl weft_test_reg_begin\n"
        ".type weft_test_reg_begin, %function\n"
        "weft_test_reg_begin:\n"
        "  stp x29, x30, [sp, #-32]!\n"
        "  str x22, [sp, #16]\n"
        "  mov x22, x0\n"
        "  mov x0, x1\n"
        "  bl weft_blocking_begin\n"
        "  ldr x22, [sp, #16]\n"
        "  ldp x29, x30, [sp], #32\n"
        "  ret\n"
        ".size weft_test_reg_begin, . - weft_test_reg_begin\n");
#endif

#ifdef REG_SLOT
weft_status_t weft_test_reg_begin(uintptr_t value, weft_runtime_t *rt);

static int32_t reg_mutator(void *arg, void **result) {
  (void)arg;
  (void)result;
  ASSERT_OK(weft_test_reg_begin(secret_of(99), scan.rt));
  atomic_store(&scan.ready, 1);
  sleep_until_quit(NULL);
  ASSERT_OK(weft_blocking_end(scan.rt));
  return 0;
}

typedef struct {
  weft_task_t *task;
  int seen;
  uintptr_t reg;
  int sp_in_stack;
} reg_walk_t;

static bool reg_visit(const weft_task_info_t *info, void *ud) {
  reg_walk_t *w = ud;
  if (info->task != w->task) return 0;
  w->seen++;
  w->reg = info->regs[REG_SLOT];
  w->sp_in_stack = (char *)info->stack_lo < (char *)info->sp && (char *)info->sp < (char *)info->stack_hi;
  return 0;
}
#endif

TEST_IMPL(vm_scan_finds_register_at_blocking_begin) {
#ifndef REG_SLOT
  fprintf(stderr, "skip: the register test is written for x86-64 and aarch64\n");
  return TEST_SKIP;
#else
  scan_setup();
  weft_task_t *t = test_spawn(scan.rt, reg_mutator, NULL);
  wait_ready(1);
  for (int round = 0; round < SCAN_ROUNDS; round++) {
    ASSERT_OK(weft_stw_begin(scan.rt, test_after_ms(scan.rt, SCAN_BOUND_MS)));
    reg_walk_t walk = {t, 0, 0, 0};
    ASSERT_OK(weft_tasks_foreach(scan.rt, reg_visit, &walk));
    ASSERT_OK(weft_stw_end(scan.rt));
    ASSERT_EQ(walk.seen, 1);
    ASSERT(walk.sp_in_stack);
    if (walk.reg != secret_of(99))
      TEST_FAIL_("round %d: register slot %d holds %#llx, not the value it held at weft_blocking_begin", round,
                 REG_SLOT, (unsigned long long)walk.reg);
    test_sleep_ms(scan.rt, 1);
  }
  atomic_store(&scan.quit, 1);
  ASSERT_EQ(test_join(t), 0);
  scan_teardown();
  return TEST_OK;
#endif
}

/* --- tasks spawned during a stop ------------------------------------------------- */

#define STARTING_TASKS 8

static struct {
  weft_task_t *tasks[STARTING_TASKS];
  int objects[STARTING_TASKS]; /* each task's argument: a root only weft holds */
  atomic_int ran[STARTING_TASKS];
} starting;

static int32_t starting_task(void *arg, void **result) {
  (void)result;
  int *object = arg;
  atomic_fetch_add(&starting.ran[object - starting.objects], 1);
  return 0;
}

typedef struct {
  int seen[STARTING_TASKS];
  int bad;
} starting_walk_t;

static bool starting_visit(const weft_task_info_t *info, void *ud) {
  starting_walk_t *w = ud;
  for (int i = 0; i < STARTING_TASKS; i++) {
    if (info->task != starting.tasks[i]) continue;
    w->seen[i]++;
    if (info->arg != &starting.objects[i]) w->bad++;
    if (info->state == WEFT_TASK_STARTING) {
      if (info->sp != NULL || info->stack_lo != NULL || info->locals != NULL) w->bad++;
    } else if (info->state != WEFT_TASK_AT_SAFEPOINT) {
      w->bad++; /* a task that started during the stop is parked before its function */
    }
  }
  return 0;
}

static void check_starting(weft_runtime_t *rt) {
  starting_walk_t walk;
  memset(&walk, 0, sizeof walk);
  ASSERT_OK(weft_tasks_foreach(rt, starting_visit, &walk));
  ASSERT_EQ(walk.bad, 0);
  for (int i = 0; i < STARTING_TASKS; i++) {
    ASSERT_EQ(walk.seen[i], 1);
    ASSERT_EQ(atomic_load(&starting.ran[i]), 0);
  }
}

TEST_IMPL(vm_scan_starting_tasks_have_their_arg) {
  weft_runtime_t *rt = test_open_runtime();
  ASSERT_OK(weft_stw_begin(rt, test_after_ms(rt, SCAN_BOUND_MS)));
  for (int i = 0; i < STARTING_TASKS; i++)
    ASSERT_OK(weft_spawn(rt, starting_task, &starting.objects[i], NULL, &starting.tasks[i]));
  check_starting(rt);
  test_sleep_ms(rt, 20); /* the tasks start meanwhile, and park before their function */
  check_starting(rt);
  ASSERT_OK(weft_stw_end(rt));
  for (int i = 0; i < STARTING_TASKS; i++) {
    ASSERT_EQ(test_join(starting.tasks[i]), 0);
    ASSERT_EQ(atomic_load(&starting.ran[i]), 1);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- weft_task_stack ------------------------------------------------------------- */

#define PROBE_STACK (512 * 1024)

typedef struct {
  void *lo, *hi, *sp;
  int seen;
} own_entry_t;

static bool own_visit(const weft_task_info_t *info, void *ud) {
  own_entry_t *own = ud;
  if (info->task != weft_task_self()) return 0;
  own->seen++;
  own->lo = info->stack_lo;
  own->hi = info->stack_hi;
  own->sp = info->sp;
  return 0;
}

/* The caller's stack holds `here`, and weft_tasks_foreach reports the same bounds. */
static void check_own_stack(weft_runtime_t *rt, size_t at_least) {
  volatile int here = 0;
  void *lo = NULL, *hi = NULL;
  ASSERT_OK(weft_task_stack(&lo, &hi));
  ASSERT((char *)lo < (char *)&here && (char *)&here < (char *)hi);
  ASSERT((size_t)((char *)hi - (char *)lo) >= at_least);
  if (weft_task_self() != NULL) {
    own_entry_t own = {NULL, NULL, NULL, 0};
    ASSERT_OK(weft_tasks_foreach(rt, own_visit, &own));
    ASSERT_EQ(own.seen, 1);
    ASSERT(own.lo == lo && own.hi == hi);
    /* The caller's own entry carries a stack pointer below this frame. */
    ASSERT((char *)lo < (char *)own.sp && (char *)own.sp < (char *)&here);
  }
}

static int32_t stack_probe(void *arg, void **result) {
  (void)result;
  check_own_stack(arg, PROBE_STACK);
  return 0;
}

TEST_IMPL(vm_task_stack_bounds) {
  weft_runtime_t *rt = test_open_runtime();
  weft_spawn_opts_t opts;
  weft_spawn_opts_init(&opts);
  opts.stack_size = PROBE_STACK;
  for (int i = 0; i < 4; i++) {
    weft_task_t *t = NULL;
    ASSERT_OK(weft_spawn(rt, stack_probe, rt, &opts, &t));
    ASSERT_EQ(test_join(t), 0);
  }
  if (!(weft_runtime_platform(rt)->caps & WEFT_CAP_DETERMINISTIC)) {
    /* An attached thread: the thread's own stack. */
    ASSERT_OK(weft_thread_attach(rt));
    check_own_stack(rt, 16 * 1024);
    ASSERT_OK(weft_thread_detach(rt));
  }
  void *lo = NULL, *hi = NULL;
  ASSERT_STATUS(WEFT_EPERM, weft_task_stack(&lo, &hi)); /* not a mutator any more */
  ASSERT(lo == NULL && hi == NULL);
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- weft_blocking_call ---------------------------------------------------------- */

typedef struct {
  weft_runtime_t *rt;
  int calls;
  int depth;
  int not_blocking; /* calls that found their own entry not BLOCKING */
} nest_t;

typedef struct {
  uint32_t state;
  int seen;
} self_state_t;

static bool self_state_visit(const weft_task_info_t *info, void *ud) {
  self_state_t *s = ud;
  if (info->task != weft_task_self()) return 0;
  s->state = info->state;
  s->seen++;
  return 0;
}

static uint32_t own_state(weft_runtime_t *rt) {
  self_state_t s = {0, 0};
  ASSERT_OK(weft_tasks_foreach(rt, self_state_visit, &s));
  ASSERT_EQ(s.seen, 1);
  return s.state;
}

static void nested_call(void *arg) {
  nest_t *n = arg;
  n->calls++;
  if (own_state(n->rt) != WEFT_TASK_BLOCKING) n->not_blocking++;
  ASSERT_OK(weft_blocking_begin(n->rt));
  ASSERT_OK(weft_blocking_end(n->rt));
  if (n->depth < 3) {
    n->depth++;
    ASSERT_OK(weft_blocking_call(n->rt, nested_call, n));
  }
  if (own_state(n->rt) != WEFT_TASK_BLOCKING) n->not_blocking++;
}

static atomic_int call_phase; /* 1: in the call; 2: told to return; 3: returned */

static void call_until_told(void *arg) {
  weft_runtime_t *rt = arg;
  atomic_store(&call_phase, 1);
  while (atomic_load(&call_phase) != 2) test_sleep_ms(rt, 1);
}

static int32_t call_task(void *arg, void **result) {
  (void)result;
  weft_runtime_t *rt = arg;
  ASSERT_OK(weft_blocking_call(rt, call_until_told, rt));
  atomic_store(&call_phase, 3);
  return 0;
}

static int32_t nesting_task(void *arg, void **result) {
  (void)result;
  nest_t *n = arg;
  ASSERT_OK(weft_blocking_call(n->rt, nested_call, n));
  ASSERT_EQ(n->calls, 4);
  ASSERT_EQ(n->not_blocking, 0);
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_end(n->rt)); /* every region was closed */
  /* Inside an open region too. */
  ASSERT_OK(weft_blocking_begin(n->rt));
  n->depth = 3;
  ASSERT_OK(weft_blocking_call(n->rt, nested_call, n));
  ASSERT_OK(weft_blocking_end(n->rt));
  ASSERT_EQ(n->calls, 5);
  return 0;
}

TEST_IMPL(vm_blocking_call_nests) {
  weft_runtime_t *rt = test_open_runtime();
  nest_t n = {rt, 0, 0, 0};
  weft_task_t *t = NULL;
  ASSERT_OK(weft_spawn(rt, nesting_task, &n, NULL, &t));
  ASSERT_EQ(test_join(t), 0);

  /* Returning from the function while the world is stopped waits for the end. */
  for (int round = 0; round < 10; round++) {
    atomic_store(&call_phase, 0);
    ASSERT_OK(weft_spawn(rt, call_task, rt, NULL, &t));
    int64_t give_up = test_after_ms(rt, SCAN_BOUND_MS);
    while (atomic_load(&call_phase) != 1) {
      ASSERT(weft_now(rt) < give_up);
      test_sleep_ms(rt, 1);
    }
    ASSERT_OK(weft_stw_begin(rt, test_after_ms(rt, SCAN_BOUND_MS)));
    atomic_store(&call_phase, 2);
    test_sleep_ms(rt, 5); /* the function returns meanwhile; the task must not go on */
    ASSERT_EQ(atomic_load(&call_phase), 2);
    ASSERT_OK(weft_stw_end(rt));
    ASSERT_EQ(test_join(t), 0);
    ASSERT_EQ(atomic_load(&call_phase), 3);
  }
  test_close_runtime(rt);
  return TEST_OK;
}

/* --- identity across a host's blocking calls ------------------------------------- */

/* On an M:N platform a task in a host's blocking region gives its processor away and
 * may come back on another thread; a task that ends on another thread than it started
 * on once restored the starting thread's running context, under whatever task that
 * thread ran by then (a release build only). Tasks of different lengths make some end
 * while the others still run and check who they are after every call. */
#define IDENTITY_TASKS 4
#define IDENTITY_CALLS 300

static void host_nap(void *arg) {
  (void)arg;
  struct timespec pause = {0, 20 * 1000};
  nanosleep(&pause, NULL);
}

static int32_t identity_task(void *arg, void **result) {
  (void)result;
  int calls = IDENTITY_CALLS * (1 + (int)(intptr_t)arg);
  weft_task_t *me = weft_task_self();
  weft_runtime_t *rt = scan.rt;
  for (int i = 0; i < calls; i++) {
    ASSERT_OK(weft_blocking_call(rt, host_nap, NULL));
    if (weft_task_self() != me) TEST_FAIL_("call %d: weft_task_self() changed under the task", i);
    if (i % 7 == 0) ASSERT_OK(weft_yield(rt));
  }
  return 0;
}

TEST_IMPL(vm_region_tasks_keep_their_identity) {
  scan_setup();
  weft_task_t *tasks[IDENTITY_TASKS];
  for (int i = 0; i < IDENTITY_TASKS; i++) tasks[i] = test_spawn(scan.rt, identity_task, (void *)(intptr_t)i);
  for (int i = 0; i < IDENTITY_TASKS; i++) ASSERT_EQ(test_join(tasks[i]), 0);
  scan_teardown();
  return TEST_OK;
}

/* --- errors ---------------------------------------------------------------------- */

static void count_call(void *arg) { (*(int *)arg)++; }

TEST_IMPL(vm_scan_errors) {
  void *lo = NULL, *hi = NULL;
  int called = 0;
  ASSERT_STATUS(WEFT_EINVAL, weft_task_stack(NULL, &hi));
  ASSERT_ERROR_MENTIONS("lo");
  ASSERT_STATUS(WEFT_EINVAL, weft_task_stack(&lo, NULL));
  ASSERT_ERROR_MENTIONS("hi");
  ASSERT_STATUS(WEFT_EPERM, weft_task_stack(&lo, &hi)); /* no runtime, not a mutator */
  ASSERT_ERROR_MENTIONS("not a mutator");
  ASSERT_STATUS(WEFT_EINVAL, weft_blocking_call(NULL, count_call, &called));

  weft_runtime_t *rt = test_open_runtime();
  ASSERT_STATUS(WEFT_EINVAL, weft_blocking_call(rt, NULL, &called));
  ASSERT_ERROR_MENTIONS("func");
  ASSERT_STATUS(WEFT_EPERM, weft_task_stack(&lo, &hi));
  ASSERT_STATUS(WEFT_EPERM, weft_blocking_call(rt, count_call, &called)); /* not a mutator */
  ASSERT_ERROR_MENTIONS("not a mutator");
  ASSERT_EQ(called, 0);
  ASSERT(lo == NULL && hi == NULL);
  test_close_runtime(rt);
  ASSERT_STATUS(WEFT_EINVAL, weft_blocking_call(rt, count_call, &called)); /* closed */
  ASSERT_ERROR_MENTIONS("closed");
  ASSERT_EQ(called, 0);
  return TEST_OK;
}

/* --- ending the process with the world held -------------------------------------- */

#define EXIT_POLLERS 3

static struct {
  weft_runtime_t *rt;
  const void *flag;
  weft_mutex_t lock; /* held by main: one mutator waits for it forever */
  atomic_long epoch; /* bumped by the pollers while they run */
  long epoch_at_stop;
  int checked;
} ending;

static int32_t exit_poller(void *arg, void **result) {
  (void)arg;
  (void)result;
  for (;;) {
    atomic_fetch_add(&ending.epoch, 1);
    WEFT_SAFEPOINT_POLL(ending.rt, ending.flag);
    if (ending.checked) return 1; /* never: the process ends first */
  }
}

static int32_t exit_blocked(void *arg, void **result) {
  (void)arg;
  (void)result;
  ASSERT_OK(weft_mutex_lock(&ending.lock));
  TEST_FAIL_("%s", "the mutex held by the exiting main thread was acquired");
  return 1;
}

typedef struct {
  int stopped_with_sp, others;
} exit_walk_t;

static bool exit_visit(const weft_task_info_t *info, void *ud) {
  exit_walk_t *w = ud;
  if (info->task == NULL) return 0; /* the main thread itself */
  w->others++;
  if ((info->state == WEFT_TASK_AT_SAFEPOINT || info->state == WEFT_TASK_BLOCKING) && info->sp != NULL)
    w->stopped_with_sp++;
  return 0;
}

/* Runs first among the atexit handlers (registered last): the world is still held by
 * this thread, so the mutators are still stopped and readable. */
static void exit_check(void) {
  usleep(20 * 1000); /* a poller let go would run meanwhile */
  ASSERT_EQ(atomic_load(&ending.epoch), ending.epoch_at_stop);
  exit_walk_t walk = {0, 0};
  ASSERT_OK(weft_tasks_foreach(ending.rt, exit_visit, &walk));
  ASSERT_EQ(walk.others, EXIT_POLLERS + 1);
  ASSERT_EQ(walk.stopped_with_sp, EXIT_POLLERS + 1);
  ending.checked = 1;
}

/* Runs last: the test passes only if the check ran and passed, and exit got here. */
static void exit_verdict(void) {
  fflush(NULL);
  _exit(ending.checked ? TEST_OK : 1);
}

TEST_IMPL(vm_exit_with_world_held) {
  ending.rt = test_open_runtime();
  ending.flag = weft_safepoint_flag(ending.rt);
  ASSERT_OK(weft_mutex_init(ending.rt, &ending.lock, 0));
  ASSERT_OK(weft_mutex_lock(&ending.lock));
  weft_task_t *t = NULL;
  for (int i = 0; i < EXIT_POLLERS; i++) {
    ASSERT_OK(weft_spawn(ending.rt, exit_poller, NULL, NULL, &t));
    ASSERT_OK(weft_detach(t));
  }
  ASSERT_OK(weft_spawn(ending.rt, exit_blocked, NULL, NULL, &t));
  test_wait_blocked(ending.rt, t);
  ASSERT_OK(weft_detach(t));
  while (atomic_load(&ending.epoch) == 0) test_sleep_ms(ending.rt, 1);
  ASSERT_OK(weft_stw_begin(ending.rt, test_after_ms(ending.rt, SCAN_BOUND_MS)));
  ending.epoch_at_stop = atomic_load(&ending.epoch);
  ASSERT_EQ(atexit(exit_verdict), 0);
  ASSERT_EQ(atexit(exit_check), 0);
  exit(2); /* never the test's status: exit_verdict ends the process */
}
