#!/bin/sh
# report_last.sh STATUS PROGRAM ARGS...
# PROGRAM exits with STATUS, and the last line of its output (stdout and stderr on one
# pipe) is the report's replay line: what the host printed before came out first.
set -u
want=$1
shift
out=$("$@" 2>&1)
got=$?
printf '%s\n' "$out"
[ "$got" -eq "$want" ] || { echo "FAIL: exit status $got, expected $want"; exit 1; }
printf '%s\n' "$out" | grep -q 'progress line 29' || { echo "FAIL: the host's output was lost"; exit 1; }
printf '%s\n' "$out" | tail -n 1 | grep -q 'replay with WEFT_SEED' || { echo "FAIL: the report is not last"; exit 1; }
