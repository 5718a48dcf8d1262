#!/usr/bin/env bash
# The consumer tests (run by `./dev test`): install the CMake build in BUILD-DIR into a
# temporary prefix with `cmake --install`, then build, against that prefix alone, the
# external projects beside this script and run each from another directory with an
# empty environment, checking that it loaded the installed native plugin (and, by name,
# each other installed plugin; and the installed weft-sim driver):
#   cmake/      find_package(weft CONFIG): weft::weft and weft::weft_static
#   pkgconfig/  a Makefile with pkg-config --cflags --libs weft
#   static/     a Makefile with pkg-config --static --libs weft-static (libweft.a), and
#               the same program linked -static, which weft must refuse clearly
# and then: the plugin-hijack attempt through the current directory, the exact list of
# directories in the not-found message, and weft built inside another project through
# add_subdirectory() and FetchContent (subdir/, with weft::weft and with weft::weft_static +
# weft_copy_plugins).
#
#   tests/consumers/run.sh BUILD-DIR
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 BUILD-DIR" >&2; exit 2; }
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
cargo_target=$(sed -n 's/^WEFT_CARGO_TARGET_DIR:[A-Z]*=//p' "$build/CMakeCache.txt")
tmp=$(realpath "$(mktemp -d "${TMPDIR:-/tmp}/weft-consumers.XXXXXX")")
trap 'rm -rf "$tmp"' EXIT
failures=0

pass() { echo "consumers: ok: $*"; }
fail() { echo "consumers: FAILED: $*" >&2; failures=$((failures + 1)); }
quietly() { # quietly LOG COMMAND...: runs COMMAND, shows its output only if it fails
  local log=$1; shift
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; return 1; fi
}

prefix=$tmp/prefix
quietly "$tmp/install.log" cmake --install "$build" --prefix "$prefix"
pcdir=$(dirname "$(find "$prefix" -name weft.pc)")
export PKG_CONFIG_PATH=$pcdir
plugin_dir=$(pkg-config --variable=plugindir weft)
plugin=$plugin_dir/libweft_native.so
cp -r "$here" "$tmp/src"

# check NAME PROGRAM: run from / with no environment at all; must use the installed plugin.
check() {
  local name=$1 program=$2 out
  if ! out=$(cd / && env -i "$program" 2>&1); then
    fail "$name: $out"
  elif ! grep -qF "platform native from $plugin" <<<"$out"; then
    fail "$name: expected the plugin $plugin, got: $out"
  else
    pass "$name ($out)"
  fi
}

# 1. CMake, find_package(weft CONFIG)
if quietly "$tmp/cmake.log" cmake -S "$tmp/src/cmake" -B "$tmp/build-cmake" -DCMAKE_PREFIX_PATH="$prefix" &&
  quietly "$tmp/cmake-build.log" cmake --build "$tmp/build-cmake"; then
  check "cmake find_package weft::weft" "$tmp/build-cmake/consumer_shared"
  check "cmake find_package weft::weft_static" "$tmp/build-cmake/consumer_static"
else
  fail "cmake find_package: the project did not build"
fi

# 2. Makefile + pkg-config (libweft.so)
if quietly "$tmp/pkgconfig.log" make -C "$tmp/src/pkgconfig"; then
  check "pkg-config weft" "$tmp/src/pkgconfig/consumer"
  # Every plugin is installed, each found by its name alone; and the sim driver.
  for name in green sim pthread; do
    if out=$(cd / && env -i WEFT_PLATFORM=$name WEFT_SEED=1 "$tmp/src/pkgconfig/consumer" 2>&1) &&
      grep -qF "platform $name from $plugin_dir/libweft_$name.so" <<<"$out"; then
      pass "the installed $name plugin, by name ($out)"
    else
      fail "the installed $name plugin, by name: $out"
    fi
  done
  if out=$(cd / && env -i WEFT_PLATFORM=sim "$prefix/bin/weft-sim" explore --seeds 3 -- "$tmp/src/pkgconfig/consumer" 2>&1) &&
    grep -qF "no failure in 3 seeds" <<<"$out"; then
    pass "the installed weft-sim explores the consumer"
  else
    fail "the installed weft-sim: $out"
  fi
  needed=$(readelf -d "$tmp/src/pkgconfig/consumer" | sed -n 's/.*NEEDED.*\[\(libweft[^]]*\)\].*/\1/p')
  [ "$needed" = libweft.so.0 ] && pass "the program records NEEDED libweft.so.0" || fail "NEEDED is '$needed', not libweft.so.0"
else
  fail "pkg-config: the project did not build"
fi

# 3. Makefile + pkg-config --static (libweft.a), and -static
if quietly "$tmp/static.log" make -C "$tmp/src/static" consumer; then
  check "pkg-config --static weft-static" "$tmp/src/static/consumer"
  if readelf -d "$tmp/src/static/consumer" | grep -q 'NEEDED.*libweft'; then fail "the static consumer needs libweft.so"; fi
else
  fail "pkg-config --static: the project did not build"
fi
if quietly "$tmp/fully-static.log" make -C "$tmp/src/static" consumer_fully_static; then
  if out=$(cd / && env -i "$tmp/src/static/consumer_fully_static" 2>&1); then
    fail "-static: expected a refusal, got: $out"
  elif grep -qF "linked fully statically (-static)" <<<"$out"; then
    pass "-static is refused clearly ($out)"
  else
    fail "-static: unclear failure: $out"
  fi
else
  fail "-static: the program did not link"
fi

# 4. The hijack: a program linked with libweft.a, found through $PATH, run from a
# directory that holds a file of its name and a fake libweft_native.so.
mkdir -p "$tmp/bin" "$tmp/evil"
cp "$tmp/src/static/consumer" "$tmp/bin/weft_consumer"
cp "$tmp/src/static/consumer" "$tmp/evil/weft_consumer"
${CC:-cc} -shared -fPIC -o "$tmp/evil/libweft_native.so" "$here/fake_plugin.c"
if out=$(cd "$tmp/evil" && env -i PATH="$tmp/bin" weft_consumer 2>&1) && grep -qF "platform native from $plugin" <<<"$out"; then
  pass "no hijack through the current directory ($out)"
else
  fail "hijack: $out"
fi

# 5. The not-found message lists exactly the directories searched, in order.
expected="platform \"nowhere\" not found: no libweft_nowhere.so in $tmp/bin (next to the program), $plugin_dir (installed plugin directory)"
out=$(cd "$tmp/evil" && env -i PATH="$tmp/bin" WEFT_PLATFORM=nowhere weft_consumer 2>&1) || true
if grep -qF "$expected" <<<"$out"; then
  pass "the not-found message names exactly the directories searched"
else
  fail "not-found message: expected '$expected', got: $out"
fi

# 6. weft inside another project: add_subdirectory() and FetchContent, reusing this
# build's cargo artifacts (same profile) instead of compiling libweft again.
for how in add_subdirectory fetchcontent; do
  via=OFF; [ $how = fetchcontent ] && via=ON
  b=$tmp/build-$how
  if quietly "$tmp/$how.log" cmake -S "$tmp/src/subdir" -B "$b" -DCMAKE_BUILD_TYPE="$build_type" \
    -DWEFT_SOURCE_DIR="$source_dir" -DWEFT_VIA_FETCHCONTENT=$via -DFETCHCONTENT_SOURCE_DIR_WEFT="$source_dir" \
    -DWEFT_CARGO_TARGET_DIR="$cargo_target" &&
    quietly "$tmp/$how-build.log" cmake --build "$b"; then
    out=$(cd / && env -i "$b/consumer" 2>&1) && grep -qF "platform native from" <<<"$out" &&
      pass "$how ($out)" || fail "$how: $out"
    out=$(cd / && env -i "$b/consumer_static" 2>&1) && grep -qF "platform native from $b/libweft_native.so" <<<"$out" &&
      pass "$how, static, weft_copy_plugins ($out)" || fail "$how, static: $out"
    if find "$b" -name conformance -o -name pipeline | grep -q .; then fail "$how built weft's tests or examples"; fi
  else
    fail "$how: the project did not build"
  fi
done

if [ $failures -ne 0 ]; then
  echo "consumers: $failures failed" >&2
  exit 1
fi
echo "consumers: all passed"
