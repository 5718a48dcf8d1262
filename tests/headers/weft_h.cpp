// weft.h compiles alone as C++17; its macros expand and its inline functions compile.
#include "weft.h"

int weft_header_check_cxx(weft_runtime_t *rt, const void *flag);
int weft_header_check_cxx(weft_runtime_t *rt, const void *flag) {
  static weft_mutex_t m = WEFT_MUTEX_INIT;
  static weft_cond_t c = WEFT_COND_INIT;
  static weft_rwlock_t l = WEFT_RWLOCK_INIT;
  static weft_once_t o = WEFT_ONCE_INIT;
  (void)m;
  (void)c;
  (void)l;
  (void)o;
  if (WEFT_KEY_SLOT(1u) != 0) return -1;
  WEFT_SAFEPOINT_POLL(rt, flag);
  if (weft_task_state() != nullptr) return 0;
  return WEFT_VERSION_MINOR + static_cast<int>(sizeof(weft_mutex_t));
}
