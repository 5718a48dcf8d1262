#!/bin/sh
# expect_status.sh STATUS TEXT PROGRAM ARGS...
# PROGRAM exits with STATUS and its output (stdout and stderr) contains TEXT.
set -u
want=$1 text=$2
shift 2
out=$("$@" 2>&1)
got=$?
printf '%s\n' "$out"
[ "$got" -eq "$want" ] || { echo "FAIL: exit status $got, expected $want"; exit 1; }
printf '%s\n' "$out" | grep -qF -- "$text" || { echo "FAIL: no \"$text\" in the output"; exit 1; }
