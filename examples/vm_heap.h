/*
 * vm_heap.h: the shared, garbage-collected heap of the two VM-shaped examples
 * (gc_vm.c, a precise collector over task-local roots, and conservative_gc.c, a
 * conservative one over stopped mutators' stacks and registers). Included by exactly
 * one .c file of a program; the program defines collect_when_full().
 *
 * The heap is a fixed array of objects with a free list under a weft mutex. Every
 * object carries a canary (LIVE while allocated, FREED once swept), its owner and a
 * serial number, so that a mutator that reaches a freed or reused object notices.
 */
#ifndef WEFT_EXAMPLE_VM_HEAP_H
#define WEFT_EXAMPLE_VM_HEAP_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#define HEAP_OBJECTS 4096
#define LIVE 0x4c49564521212121ull
#define FREED 0x4652454544454144ull

typedef struct object {
  uint64_t canary;
  uint64_t serial; /* increases with every allocation */
  int owner;       /* who allocated it */
  int marked;
  struct object *next; /* the link: a mutator's list, or the free list */
} object_t;

static weft_runtime_t *rt;
static const void *poll_flag;
static object_t heap[HEAP_OBJECTS];
static object_t *free_list;
static weft_mutex_t heap_lock;
static atomic_uint_fast64_t next_serial, allocated;
/* Written only by the thread that holds the stopped world. */
static uint64_t freed;

#define die(...)                                            \
  do {                                                      \
    fprintf(stderr, "%s: FAILED: ", VM_PROGRAM);            \
    fprintf(stderr, __VA_ARGS__);                           \
    fputc('\n', stderr);                                    \
    abort();                                                \
  } while (0)

#define CHECK(call)                                                                     \
  do {                                                                                  \
    weft_status_t s_ = (call);                                                          \
    if (s_ != WEFT_OK) die("%s: %s (%s)", #call, weft_strerror(s_), weft_last_error()); \
  } while (0)

/* Opens the runtime (cfg may be NULL) and puts every object on the free list. */
static void heap_open(const weft_config_t *cfg) {
  CHECK(weft_runtime_open(cfg, &rt));
  poll_flag = weft_safepoint_flag(rt);
  CHECK(weft_mutex_init(rt, &heap_lock, 0));
  for (int i = HEAP_OBJECTS - 1; i >= 0; i--) {
    heap[i].canary = FREED;
    heap[i].next = free_list;
    free_list = &heap[i];
  }
}

static void heap_close(void) {
  CHECK(weft_mutex_destroy(&heap_lock));
  CHECK(weft_runtime_close(rt));
}

/* Runs a collection because an allocation found the heap full (on the allocating
 * mutator, which may itself hold references). Defined by the program. */
static void collect_when_full(void);

static object_t *allocate(int owner) {
  for (;;) {
    WEFT_SAFEPOINT_POLL(rt, poll_flag); /* an allocation site */
    CHECK(weft_mutex_lock(&heap_lock));
    object_t *o = free_list;
    if (o != NULL) free_list = o->next;
    CHECK(weft_mutex_unlock(&heap_lock));
    if (o != NULL) {
      if (o->canary != FREED) die("object %p on the free list is not free", (void *)o);
      o->canary = LIVE;
      o->serial = atomic_fetch_add(&next_serial, 1) + 1;
      o->owner = owner;
      o->next = NULL;
      atomic_fetch_add(&allocated, 1);
      return o;
    }
    collect_when_full();
  }
}

/* Frees every LIVE object not marked and clears the marks. The caller holds the
 * stopped world and heap_lock (safe during a stop: no mutator is parked holding a weft
 * mutex it was handed). */
static void sweep(void) {
  for (int i = 0; i < HEAP_OBJECTS; i++) {
    object_t *o = &heap[i];
    if (o->canary == LIVE && !o->marked) {
      o->canary = FREED;
      o->next = free_list;
      free_list = o;
      freed++;
    }
    o->marked = 0;
  }
}

/* Touches every object of a list that `owner` built newest first: a freed or reused
 * one is a collector bug. */
static void check_list(const object_t *head, int owner) {
  uint64_t previous = UINT64_MAX;
  for (const object_t *o = head; o != NULL; o = o->next) {
    if (o->canary != LIVE) die("mutator %d reached object %p, which was freed", owner, (void *)o);
    if (o->owner != owner || o->serial >= previous)
      die("mutator %d reached object %p, which was freed and allocated again", owner, (void *)o);
    previous = o->serial;
  }
}

/* Drops a random tail of the list at *head (of *length objects): garbage. */
static void drop_tail(object_t **head, int *length, uint32_t random) {
  int keep = (int)(random % (uint32_t)(*length + 1));
  if (keep == 0) {
    *head = NULL;
  } else {
    object_t *last = *head;
    for (int i = 1; i < keep; i++) last = last->next;
    last->next = NULL;
  }
  *length = keep;
}

static uint32_t next_random(uint32_t *state) {
  *state ^= *state << 13;
  *state ^= *state >> 17;
  *state ^= *state << 5;
  return *state;
}

#endif
