// oneTBB for parallel_sum and parallel_map (parallel.c): parallel_reduce and
// parallel_for with TBB's default (auto) partitioner, on its default arena (one thread
// per CPU).
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_reduce.h>

extern "C" {
#include "bench.h"
}

extern "C" uint64_t tbb_sum(size_t n) {
  return oneapi::tbb::parallel_reduce(
      oneapi::tbb::blocked_range<size_t>(0, n), uint64_t{0},
      [](const oneapi::tbb::blocked_range<size_t> &r, uint64_t s) {
        for (size_t i = r.begin(); i != r.end(); i++) s += bench_sum_term(i);
        return s;
      },
      [](uint64_t a, uint64_t b) { return a + b; });
}

extern "C" void tbb_map(const float *in, float *out, size_t n) {
  oneapi::tbb::parallel_for(oneapi::tbb::blocked_range<size_t>(0, n), [=](const oneapi::tbb::blocked_range<size_t> &r) {
    for (size_t i = r.begin(); i != r.end(); i++) out[i] = in[i] * 1.5f + 1.0f;
  });
}
