#!/usr/bin/env bash
# Instructions per iteration of weft's fast paths, counted by callgrind (deterministic,
# so a bound cannot flake on a loaded machine), against upper bounds and against the
# peers counted in the same run. Exit 0 if every bound holds, 1 if one does not, 77
# (skip) without valgrind. The probe program must be linked with an optimised libweft.
#
# Usage: check.sh PROBE PLUGIN   (WEFT_PLATFORM is the plugin; PLUGIN its name, which
#                                 picks the bounds)
set -euo pipefail
probe=$1
plugin=$2
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null || {
  echo "check.sh: valgrind is not installed: skipped" >&2
  exit 77
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

count() { # count N: "probe_name instructions" lines for a run of N iterations
  valgrind -q --tool=callgrind --callgrind-out-file="$work/out.$1" --toggle-collect='probe_*' "$probe" "$1" >&2
  # Every function listed (--threshold=100: the cheap probes are under 1 % of the
  # total), and of them the probe program's own: "???:probe_name [/path/to/probe]".
  callgrind_annotate --inclusive=yes --threshold=100 "$work/out.$1" 2>/dev/null |
    sed -nE 's/^ *([0-9,]+) .*:(probe_[a-z_]+) \[.*/\2 \1/p' | tr -d , | sort
}
total() { # total ARGS...: the instructions of a whole run of the probe program
  valgrind -q --tool=callgrind --callgrind-out-file="$work/total" "$probe" "$@" >&2
  sed -nE 's/^summary: ([0-9]+)$/\1/p' "$work/total"
}
small=10000
large=20000
count $small >"$work/small"
count $large >"$work/large"
# per: instructions per iteration of each probe
join "$work/small" "$work/large" | awk -v d=$((large - small)) '{ printf "%s %.1f\n", $1, ($3 - $2) / d }' >"$work/per"
# A spawn and join runs on two threads: whole runs of 200 and 400, both threads counted.
for which in weft pthread; do
  a=$(total spawn $which 200)
  b=$(total spawn $which 400)
  awk -v w=$which -v a="$a" -v b="$b" 'BEGIN { printf "probe_%s_spawn_join %.1f\n", w, (b - a) / 200 }' >>"$work/per"
done

per() { awk -v p="probe_$1" '$1 == p { print $2 }' "$work/per"; }
failed=0
# A probe that was not counted (renamed, or its name not matched above) fails, rather
# than reading as 0 against its bound.
for probe_name in weft_mutex glibc_errorcheck weft_checked_nested weft_now clock_gettime weft_yield sched_yield \
  weft_local_get weft_task_state thread_read weft_cond_signal weft_parallel_for_one_chunk weft_spawn_join; do
  if [ -z "$(per $probe_name)" ]; then
    echo "check.sh: no count for probe_$probe_name" >&2
    failed=1
  fi
done
check() { # check WHAT VALUE BOUND: VALUE <= BOUND
  local verdict=ok
  if awk -v v="$2" -v b="$3" 'BEGIN { exit !(v > b) }'; then verdict=EXCEEDS; failed=1; fi
  printf '%-52s %8s  <= %-8s %s\n' "$1" "$2" "$3" "$verdict"
}
echo "instructions per iteration (callgrind, loop included), $plugin ($WEFT_PLATFORM):"
sort -k1 "$work/per" | awk '{ printf "  %-30s %8s\n", $1, $2 }'
# The bounds: today's counts plus a little room, so that a regression of a few
# instructions on a fast path fails here. Measured on native and green (2026-11-29):
# mutex pair 49 (58 until 2026-12-02, when the owner moved into the lock word: the
# swaps take and free it, with no owner field to store, load and clear; 89 until 2026-11-30, when the unlock stopped reading the mutex's first
# word three times and the runtime twice, then 68 until it stopped reading the runtime
# at all, then 64 until lock and unlock stopped keeping a frame; glibc: default 68,
# errorcheck 100), weft_now
# 19 over clock_gettime, weft_local_get 25 over a __thread read (the key's liveness, the
# running context, the slot's key: a deleted key reads NULL), weft.h's inline
# weft_task_state() 2 over it, a condition signal with no waiter 24, weft_parallel_for
# over one chunk 420 (2026-11-30: the job's allocation and the body's call; counting the
# CPUs on every call, as it did before, costs thousands more), weft_yield 20 over
# sched_yield on native (34 until 2026-11-30, when it began to make the sched_yield
# itself, in tail position, instead of calling the plugin and polling again); on green a yield from a thread that is not a task is a blocking
# region (173 over). A spawn and join of an empty task on native, both threads counted,
# 3,550 (3,300 until 2026-12-02, when a context began to take an owner token from a
# locked pool and give it back as it ends; pthread_create + pthread_join in the same process 1,730-1,820; 5,450 while the
# task's thread set up glibc's per-thread malloc cache, which its first malloc or free
# does, and handed it back; 3,890-3,930 until 2026-12-02, while the task's thread set a
# pthread key's value, for which glibc scans every key as the thread ends). Whole runs,
# so it moves by a percent or two with which thread runs first. Four nested mutexes of a
# runtime with the checks on, per lock+unlock pair, loop included: 266 (259 while the owner's
# mark was OR-ed into the word, not swapped in place of the bits there; 251 before the owner
# moved into the lock word, whose mark costs the checked lock one more locked swap; 277 until 2026-12-02, when
# the release of the last lock held stopped shifting the held list with a memmove).
case $plugin in
  green) yield_bound=190 ;;
  *) yield_bound=26 ;;
esac
check "weft mutex lock+unlock" "$(per weft_mutex)" 54
check "weft mutex pair vs glibc errorcheck pair" "$(per weft_mutex)" "$(per glibc_errorcheck)"
check "weft mutex pair, checks on, 4 nested" "$(awk -v a="$(per weft_checked_nested)" 'BEGIN { print a / 4 }')" 275
check "weft_now over clock_gettime" "$(awk -v a="$(per weft_now)" -v b="$(per clock_gettime)" 'BEGIN { print a - b }')" 24
check "weft_yield over sched_yield" "$(awk -v a="$(per weft_yield)" -v b="$(per sched_yield)" 'BEGIN { print a - b }')" $yield_bound
check "weft_local_get over a __thread read" "$(awk -v a="$(per weft_local_get)" -v b="$(per thread_read)" 'BEGIN { print a - b }')" 29
check "weft_task_state() over a __thread read" "$(awk -v a="$(per weft_task_state)" -v b="$(per thread_read)" 'BEGIN { print a - b }')" 6
check "weft_cond_signal, no waiter" "$(per weft_cond_signal)" 30
check "weft_parallel_for, one chunk" "$(per weft_parallel_for_one_chunk)" 500
# Native only: a green task is no thread (its spawn and join are in docs/performance.md).
if [ "$plugin" = native ]; then
  check "weft_spawn + weft_join, empty task, both threads" "$(per weft_spawn_join)" 3850
fi
exit $failed
