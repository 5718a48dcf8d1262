// absl::Mutex for checks_lock (checks.c): `nest` nested locks, lock+unlock p->n times,
// with absl's deadlock detection reporting (its lock-order graph, the peer of weft's
// WEFT_CHECK_LOCK_ORDER | WEFT_CHECK_DEADLOCK) or off. Debian's libabsl is built with
// the detection active (checked: an inversion is reported).
#include <absl/synchronization/mutex.h>

extern "C" {
#include "bench.h"
}

extern "C" sample_t absl_nested(const params_t *p, int nest, int detect) {
  absl::SetMutexDeadlockDetectionMode(detect ? absl::OnDeadlockCycle::kReport : absl::OnDeadlockCycle::kIgnore);
  absl::Mutex m[8];
  int64_t t0 = now_ns();
  for (long i = 0; i < p->n; i++) {
    for (int k = 0; k < nest; k++) m[k].Lock();
    for (int k = nest - 1; k >= 0; k--) m[k].Unlock();
  }
  int64_t t1 = now_ns();
  return sample_t{static_cast<double>(t1 - t0) / static_cast<double>(p->n * nest), 0};
}
