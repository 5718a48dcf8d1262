/*
 * Every conformance test, by area. Each list-*.h holds WEFT_TEST(name) lines; this file
 * includes them all. CMake reads the same files to register one ctest per test and
 * plugin, so a test added to a list is run everywhere without further wiring.
 */
#include "list-runtime.h"
#include "list-tasks.h"
#include "list-keys.h"
#include "list-mutex.h"
#include "list-cond.h"
#include "list-rwlock.h"
#include "list-plugin.h"
#include "list-vm.h"
#include "list-vm-scan.h"
#include "list-chan.h"
#include "list-select.h"
#include "list-blob.h"
#include "list-checks.h"
#include "list-parallel.h"
#include "list-parking.h"
#include "list-io.h"
#include "list-sched.h"
