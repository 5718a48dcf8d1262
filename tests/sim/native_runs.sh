#!/bin/sh
# native_runs.sh PLUGIN RUNS MIN_PASSES PROGRAM
# Runs a planted-bug host RUNS times on a thread platform (PLUGIN, e.g. native), each run
# bounded by 10 s (a deadlock on OS threads hangs), and passes when at least MIN_PASSES
# runs succeed: the bug is a race that real threads rarely (or only sometimes) lose,
# not a program that cannot work. Prints the counts and the first failure's output.
set -u
plugin=$1 runs=$2 min=$3 program=$4
export WEFT_PLATFORM="$plugin"
passes=0 first_failure=""
i=0
while [ "$i" -lt "$runs" ]; do
  i=$((i + 1))
  if out=$(timeout 10 "$program" 2>&1); then
    passes=$((passes + 1))
  else
    status=$?
    [ -n "$first_failure" ] || first_failure="run $i: exit status $status (124: hung for 10 s): $out"
  fi
done
echo "$(basename "$program") on $(basename "$plugin"): $passes of $runs runs passed (at least $min expected)"
[ -z "$first_failure" ] || echo "first failure: $first_failure"
[ "$passes" -ge "$min" ] || { echo "FAIL: fewer than $min runs passed"; exit 1; }
