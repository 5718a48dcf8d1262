/* The hijacker's libweft_native.so: loading it at all is the failure, so it says so
 * from a constructor, before the loader could look at its table. */
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void hijacked(void) {
  fputs("HIJACKED: a plugin from the current directory was loaded\n", stderr);
  _exit(66);
}

void *weft_platform_entry(const void *host);
void *weft_platform_entry(const void *host) {
  (void)host;
  return NULL;
}
