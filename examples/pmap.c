/*
 * pmap: the two parallel operations a Lisp-like language asks of its runtime, built on
 * weft_parallel_for and checked against the serial result.
 *
 *   pmap   out[i] = f(in[i]) for every i, in parallel;
 *   pfilter the elements for which pred holds, in their original order, in parallel:
 *          count per block, a prefix sum over the blocks, then each block writes its
 *          survivors at its offset.
 *
 *   pmap [N]     (default 10000000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#define CHECK(call)                                                         \
  do {                                                                      \
    weft_status_t s_ = (call);                                              \
    if (s_ != WEFT_OK) {                                                    \
      fprintf(stderr, "%s: %s\n", #call, weft_last_error());                \
      exit(1);                                                              \
    }                                                                       \
  } while (0)

static uint64_t f(uint64_t x) { return x * x + 1; }
static int pred(uint64_t x) { return x % 3 == 0 || x % 7 == 0; }

/* ---- pmap ---- */

typedef struct {
  const uint64_t *in;
  uint64_t *out;
} map_t;

static int32_t map_range(size_t begin, size_t end, void *ud) {
  map_t *m = ud;
  for (size_t i = begin; i < end; i++) m->out[i] = f(m->in[i]);
  return 0;
}

static void pmap(weft_runtime_t *rt, const uint64_t *in, uint64_t *out, size_t n) {
  map_t m = {in, out};
  int32_t code;
  CHECK(weft_parallel_for(rt, 0, n, 0, map_range, &m, &code));
}

/* ---- pfilter ---- */

enum { BLOCK = 1 << 14 };

typedef struct {
  const uint64_t *in;
  size_t n;
  size_t *counts; /* per block, then the block's offset */
  uint64_t *out;
} filter_t;

static int32_t count_blocks(size_t begin, size_t end, void *ud) {
  filter_t *fl = ud;
  for (size_t b = begin; b < end; b++) {
    size_t lo = b * BLOCK, hi = lo + BLOCK < fl->n ? lo + BLOCK : fl->n, c = 0;
    for (size_t i = lo; i < hi; i++) c += (size_t)pred(fl->in[i]);
    fl->counts[b] = c;
  }
  return 0;
}

static int32_t write_blocks(size_t begin, size_t end, void *ud) {
  filter_t *fl = ud;
  for (size_t b = begin; b < end; b++) {
    size_t lo = b * BLOCK, hi = lo + BLOCK < fl->n ? lo + BLOCK : fl->n, at = fl->counts[b];
    for (size_t i = lo; i < hi; i++)
      if (pred(fl->in[i])) fl->out[at++] = fl->in[i];
  }
  return 0;
}

/* Returns how many elements survived into out. */
static size_t pfilter(weft_runtime_t *rt, const uint64_t *in, size_t n, uint64_t *out) {
  size_t blocks = (n + BLOCK - 1) / BLOCK;
  filter_t fl = {in, n, calloc(blocks ? blocks : 1, sizeof(size_t)), out};
  int32_t code;
  CHECK(weft_parallel_for(rt, 0, blocks, 1, count_blocks, &fl, &code));
  size_t total = 0;
  for (size_t b = 0; b < blocks; b++) {
    size_t c = fl.counts[b];
    fl.counts[b] = total;
    total += c;
  }
  CHECK(weft_parallel_for(rt, 0, blocks, 1, write_blocks, &fl, &code));
  free(fl.counts);
  return total;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000;
  weft_runtime_t *rt;
  CHECK(weft_runtime_open(NULL, &rt));
  uint64_t *in = malloc(n * sizeof *in), *mapped = malloc(n * sizeof *in), *kept = malloc(n * sizeof *in);
  if (!in || !mapped || !kept) return 1;
  for (size_t i = 0; i < n; i++) in[i] = i * 2654435761u % 1000003;

  int64_t t0 = weft_now(rt);
  pmap(rt, in, mapped, n);
  size_t survivors = pfilter(rt, in, n, kept);
  int64_t t1 = weft_now(rt);

  /* The serial answers. */
  size_t expect = 0, bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (mapped[i] != f(in[i])) bad++;
    if (pred(in[i])) {
      if (expect >= survivors || kept[expect] != in[i]) bad++;
      expect++;
    }
  }
  int64_t t2 = weft_now(rt);
  printf("pmap and pfilter over %zu elements on %s: %zu kept, %s (parallel %.1f ms, serial check %.1f ms)\n", n,
         weft_runtime_platform(rt)->name, survivors, bad == 0 && expect == survivors ? "OK" : "WRONG",
         (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
  free(in);
  free(mapped);
  free(kept);
  CHECK(weft_runtime_close(rt));
  return bad == 0 && expect == survivors ? 0 : 1;
}
