/*
 * For the fixtures that wrap a working plugin (abi1_wrapper.c, region_wrapper.c): the
 * table of the plugin at WEFT_FIXTURE_INNER (set by the build), loaded and kept (never
 * unloaded), or NULL if it cannot be.
 */
#ifndef WEFT_FIXTURE_INNER_PLUGIN_H
#define WEFT_FIXTURE_INNER_PLUGIN_H

#include <dlfcn.h>

#include "weft_platform.h"

static const weft_platform_t *inner_plugin(const weft_host_t *h) {
  void *inner = dlopen(WEFT_FIXTURE_INNER, RTLD_NOW | RTLD_LOCAL);
  if (inner == NULL) return NULL;
  const weft_platform_t *(*entry)(const weft_host_t *);
  *(void **)&entry = dlsym(inner, "weft_platform_entry");
  return entry == NULL ? NULL : entry(h);
}

#endif
