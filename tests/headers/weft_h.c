/* weft.h compiles alone as C11; the poll macro expands. */
#include "weft.h"

int weft_header_check_c(weft_runtime_t *rt, const void *flag);
int weft_header_check_c(weft_runtime_t *rt, const void *flag) {
  weft_mutex_t m;
  (void)m;
  WEFT_SAFEPOINT_POLL(rt, flag);
  return WEFT_VERSION_MAJOR + (int)sizeof(weft_rwlock_t);
}
