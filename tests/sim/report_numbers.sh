#!/bin/sh
# report_numbers.sh PLUGIN PROGRAM
# PROGRAM ends in the deadlock report (status 86); the report's task lines, objects'
# numbers included, are the same with the trace on and off.
set -u
export WEFT_PLATFORM="$1" WEFT_SEED=1
untraced=$("$2" 2>&1)
status=$?
[ "$status" -eq 86 ] || { printf '%s\nFAIL: exit status %s, expected 86\n' "$untraced" "$status"; exit 1; }
traced=$(WEFT_SIM_TRACE=1 "$2" 2>&1)
report_lines() { printf '%s\n' "$1" | grep '^  task '; }
printf '%s\n' "$untraced"
if [ "$(report_lines "$untraced")" != "$(report_lines "$traced")" ]; then
  printf 'FAIL: the traced run reported\n%s\n' "$(report_lines "$traced")"
  exit 1
fi
