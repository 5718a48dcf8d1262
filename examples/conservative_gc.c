/*
 * conservative_gc: a VM-shaped host on weft whose collector is conservative, the way
 * Boehm GC or a stack-scanning interpreter works: the mutators keep their references
 * where C code keeps them (local variables, on their stacks and in registers), and the
 * collector finds them there. It keeps no bookkeeping of its own; weft gives it all:
 *
 *   - every stopped mutator's stack bounds, the stack pointer and the callee-saved
 *     registers recorded where it parked or entered its blocking region
 *     (weft_task_info_t.stack_lo / stack_hi / sp / regs), for tasks and for the
 *     attached main thread, on every platform (a green task's stack is its coroutine's);
 *   - the argument of a task spawned but not started yet (WEFT_TASK_STARTING, `arg`):
 *     the main thread hands each short-lived worker a fresh object and forgets it;
 *   - weft_blocking_call for the host's own blocking calls, which records the caller's
 *     registers itself (no begin/end pair, no assembly in the host);
 *   - weft_task_stack, for an interpreter's recursion guard.
 *
 * The heap is a fixed array of objects under a weft mutex; every object carries a canary
 * (LIVE while allocated, FREED once swept), its owner and a serial number. Mutators
 * build a list from a local `head`, drop parts of it, and check every object they reach.
 * If the collector ever frees an object a mutator still reaches, the mutator finds a
 * FREED canary or a reused object and the program fails loudly.
 *
 *   usage: conservative_gc [seconds]       (default 2)
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <string.h>
#include <time.h>

#define VM_PROGRAM "conservative_gc"
#include "vm_heap.h"

#define MUTATORS 4
#define MAX_LIST 256

static atomic_uint_fast64_t workers_checked;
static atomic_int quit;
/* Written only by the thread that holds the stopped world. */
static object_t *mark_stack[HEAP_OBJECTS];
static uint64_t collections, words_scanned, starting_roots, worst_pause_ns;

/* ---- the collector ------------------------------------------------------------ */

/* The object a word points into, if any: interior pointers count, as in any
 * conservative collector (the compiler may keep &o->next rather than o). */
static object_t *object_at(uintptr_t word) {
  uintptr_t base = (uintptr_t)heap;
  if (word < base || word >= base + sizeof heap) return NULL;
  object_t *o = &heap[(word - base) / sizeof(object_t)];
  return o->canary == LIVE ? o : NULL;
}

static size_t mark_one(uintptr_t word, size_t top) {
  object_t *o = object_at(word);
  if (o != NULL && !o->marked) {
    o->marked = 1;
    mark_stack[top++] = o;
  }
  return top;
}

/* Marks everything reachable from `word` (through `next` links). */
static void mark_from(uintptr_t word) {
  size_t top = mark_one(word, 0);
  while (top > 0) {
    object_t *o = mark_stack[--top];
    top = mark_one((uintptr_t)o->next, top);
  }
}

/* Reading another thread's stack word by word crosses the red zones AddressSanitizer
 * puts between its frames' locals: a conservative scan is exempt from it (as Boehm's
 * collector is). */
#if defined(__GNUC__) || defined(__clang__)
#define SCAN_NO_ASAN __attribute__((no_sanitize_address))
#else
#define SCAN_NO_ASAN
#endif

/* One stopped mutator: its registers, every word of its stack from where it parked to
 * the top, and the argument of a task whose function has not run yet. Nothing read
 * before weft_stw_begin is trusted: this is read inside the stop. */
SCAN_NO_ASAN static bool scan_mutator(const weft_task_info_t *info, void *ud) {
  (void)ud;
  if (info->arg != NULL) {
    mark_from((uintptr_t)info->arg);
    starting_roots++;
  }
  if (info->sp == NULL) return 0; /* a task not started: no stack yet */
  for (int r = 0; r < WEFT_SAVED_REGS; r++) mark_from(info->regs[r]);
  const uintptr_t *word = (const uintptr_t *)(((uintptr_t)info->sp + 7) & ~(uintptr_t)7);
  for (; (uintptr_t)(word + 1) <= (uintptr_t)info->stack_hi; word++) {
    mark_from(*word);
    words_scanned++;
  }
  return 0;
}

static void collect(void) {
  int64_t start = weft_now(rt);
  CHECK(weft_stw_begin(rt, weft_deadline_after(rt, 10 * 1000000000ll)));
  /* Safe during a stop: no mutator is parked holding a weft mutex it was handed. */
  CHECK(weft_mutex_lock(&heap_lock));
  CHECK(weft_tasks_foreach(rt, scan_mutator, NULL));
  sweep();
  CHECK(weft_mutex_unlock(&heap_lock));
  collections++;
  uint64_t pause = (uint64_t)(weft_now(rt) - start);
  if (pause > worst_pause_ns) worst_pause_ns = pause;
  CHECK(weft_stw_end(rt));
}

/* ---- the mutators --------------------------------------------------------------- */

/* An allocation found the heap full: this mutator collects (its own stack included). */
static void collect_when_full(void) { collect(); }

/* The objects an interpreter keeps in a value stack on the C stack, with the serial
 * each had when it was stored: a freed and reused one has another. */
#define SLOTS 8

static void check_slots(object_t *const *slots, const uint64_t *serials, int owner) {
  for (int k = 0; k < SLOTS; k++) {
    const object_t *o = slots[k];
    if (o != NULL && (o->canary != LIVE || o->owner != owner || o->serial != serials[k]))
      die("mutator %d's stack slot %d holds object %p, which was freed", owner, k, (void *)o);
  }
}

/* The host's own blocking call (a read(), a foreign library): no managed memory. */
static void host_wait(void *arg) {
  struct timespec pause = {0, (long)(uintptr_t)arg};
  nanosleep(&pause, NULL);
}

static int32_t mutator(void *arg, void **result) {
  (void)result;
  int index = (int)(intptr_t)arg;
  uint32_t random = 0x9e3779b9u * (uint32_t)(index + 1);
  object_t *head = NULL; /* the only reference to this mutator's list */
  int length = 0;
  object_t *slots[SLOTS] = {NULL}; /* references held only in this array, on the stack */
  uint64_t serials[SLOTS] = {0};
  /* An interpreter's recursion guard: how much of this task's stack is left. */
  void *stack_lo, *stack_hi;
  CHECK(weft_task_stack(&stack_lo, &stack_hi));
  if ((char *)&head - (char *)stack_lo < 16 * 1024 || (char *)&head >= (char *)stack_hi)
    die("mutator %d runs outside its stack or with less than 16 KiB of it left", index);
  while (!atomic_load(&quit)) {
    WEFT_SAFEPOINT_POLL(rt, poll_flag); /* a loop back-edge */
    object_t *o = allocate(index);
    o->next = head;
    head = o;
    length++;
    check_list(head, index);
    if (length >= MAX_LIST || next_random(&random) % 4 == 0) drop_tail(&head, &length, next_random(&random));
    if (next_random(&random) % 8 == 0) {
      int k = (int)(next_random(&random) % SLOTS);
      slots[k] = allocate(index); /* the old occupant becomes garbage */
      serials[k] = slots[k]->serial;
    }
    check_slots(slots, serials, index);
    uint32_t roll = next_random(&random) % 64;
    if (roll == 0) CHECK(weft_sleep_until(rt, weft_deadline_after(rt, 100000)));
    if (roll == 1) CHECK(weft_blocking_call(rt, host_wait, (void *)(uintptr_t)50000));
    check_list(head, index); /* managed code right after a blocking call */
    check_slots(slots, serials, index);
  }
  return 0;
}

/* A short-lived task whose only root, until it runs, is its spawn argument. */
static int32_t worker(void *arg, void **result) {
  (void)result;
  object_t *o = arg;
  if (o->canary != LIVE || o->owner != -1) die("a worker's argument %p was freed before the worker ran", (void *)o);
  atomic_fetch_add(&workers_checked, 1);
  return 0;
}

/* ---- the program ---------------------------------------------------------------- */

int main(int argc, char **argv) {
  double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
  heap_open(NULL);
  CHECK(weft_thread_attach(rt)); /* the main thread spawns and collects: a mutator too */

  weft_task_t *tasks[MUTATORS];
  for (int i = 0; i < MUTATORS; i++) CHECK(weft_spawn(rt, mutator, (void *)(intptr_t)i, NULL, &tasks[i]));
  int64_t end = weft_deadline_after(rt, (int64_t)(seconds * 1e9));
  uint64_t workers = 0;
  weft_spawn_opts_t detached;
  weft_spawn_opts_init(&detached);
  detached.flags = WEFT_SPAWN_DETACHED;
  while (weft_now(rt) < end) {
    /* A worker gets a fresh object and the main thread forgets it at once: a collection
     * before the worker runs finds it only through the worker's `arg`. */
    CHECK(weft_spawn(rt, worker, allocate(-1), &detached, NULL));
    workers++;
    collect();
    CHECK(weft_sleep_until(rt, weft_deadline_after(rt, 1000000)));
  }
  atomic_store(&quit, 1);
  for (int i = 0; i < MUTATORS; i++) CHECK(weft_join(tasks[i], WEFT_FOREVER, NULL, NULL));
  CHECK(weft_thread_detach(rt));
  CHECK(weft_runtime_drain(rt, weft_deadline_after(rt, 10 * 1000000000ll)));
  if (atomic_load(&workers_checked) != workers) die("%" PRIu64 " workers spawned, %" PRIu64 " ran", workers, (uint64_t)workers_checked);

  uint64_t live = 0;
  for (int i = 0; i < HEAP_OBJECTS; i++) live += heap[i].canary == LIVE;
  if (freed + live != atomic_load(&allocated))
    die("allocated %" PRIu64 " objects, freed %" PRIu64 ", %" PRIu64 " still live", (uint64_t)allocated, freed, live);
  printf("conservative_gc: %d mutators, %.1f s: %" PRIu64 " collections, %" PRIu64 " objects allocated, %" PRIu64
         " freed, %" PRIu64 " workers (their argument found as a root %" PRIu64 " times before they ran), %.0f "
         "stack words scanned per collection, worst pause %.1f us\n",
         MUTATORS, seconds, collections, (uint64_t)allocated, freed, workers, starting_roots,
         collections ? (double)words_scanned / (double)collections : 0.0, worst_pause_ns / 1e3);
  heap_close();
  return 0;
}
