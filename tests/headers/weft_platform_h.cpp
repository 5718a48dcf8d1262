// weft_platform.h compiles alone as C++17.
#include "weft_platform.h"

unsigned weft_platform_header_check_cxx(const weft_platform_t *p);
unsigned weft_platform_header_check_cxx(const weft_platform_t *p) { return p->abi_version + WEFT_PLATFORM_COND_BYTES; }
