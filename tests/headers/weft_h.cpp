// weft.h compiles alone as C++17; the poll macro expands.
#include "weft.h"

int weft_header_check_cxx(weft_runtime_t *rt, const void *flag);
int weft_header_check_cxx(weft_runtime_t *rt, const void *flag) {
  weft_cond_t c;
  (void)c;
  WEFT_SAFEPOINT_POLL(rt, flag);
  return WEFT_VERSION_MINOR + static_cast<int>(sizeof(weft_mutex_t));
}
