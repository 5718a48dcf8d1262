/* weft_platform.h compiles alone as C11. */
#include "weft_platform.h"

unsigned weft_platform_header_check_c(const weft_platform_t *p);
unsigned weft_platform_header_check_c(const weft_platform_t *p) { return p->abi_version + WEFT_PLATFORM_MUTEX_BYTES; }
