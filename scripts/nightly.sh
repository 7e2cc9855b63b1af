#!/usr/bin/env bash
# Nightly precision-drift job: what a cron or CI job calls.
#
# For every case in cases/*.json: `parity run` into OUT/<case>, write the reports, save a baseline
# when the case has none (saying so), compare with the baseline (`parity drift`, which also appends
# to the store's history), then write the trend page OUT/trend.html.
#
# Exit status: 0 all cases ran and nothing drifted; 1 a drift gate tripped (or a case failed its own
# gates, unless PARITY_NIGHTLY_IGNORE_GATES=1); 2 a case could not be run or compared (or there are
# no cases). Every case is attempted whatever happens to the others.
#
# Environment (defaults in brackets):
#   PARITY_BIN            the parity executable [build/parity]
#   PARITY_CASES          directory of case files [cases]
#   PARITY_STORE          baseline store [baselines]
#   PARITY_NIGHTLY_OUT    output directory for this night [out/nightly/<UTC timestamp>]
#   PARITY_RUN_ARGS       extra arguments for `parity run`, e.g. "--device cuda" []
#   PARITY_NIGHTLY_IGNORE_GATES=1   gate only on drift, not on the cases' own pass/fail gates
set -uo pipefail
cd "$(dirname "$0")/.."

parity=${PARITY_BIN:-build/parity}
cases_dir=${PARITY_CASES:-cases}
store=${PARITY_STORE:-baselines}
out_root=${PARITY_NIGHTLY_OUT:-out/nightly/$(date -u +%Y%m%dT%H%M%SZ)}
read -r -a run_args <<< "${PARITY_RUN_ARGS:-}"

shopt -s nullglob
cases=("$cases_dir"/*.json)
if [ ${#cases[@]} -eq 0 ]; then
  echo "nightly: no cases in $cases_dir/*.json" >&2
  exit 2
fi
mkdir -p "$out_root"

drifted=() failed=() broken=()
for case_file in "${cases[@]}"; do
  name=$(basename "$case_file" .json)
  dir="$out_root/$name"
  echo "== $name ($case_file) -> $dir"
  "$parity" run "$case_file" --out "$dir" "${run_args[@]}"
  status=$?
  if [ $status -eq 1 ]; then
    failed+=("$name")  # the run's own gates failed; its outputs are complete
  elif [ $status -ne 0 ] || [ ! -f "$dir/summary.json" ]; then
    echo "nightly: $name: parity run exited $status without a complete output" >&2
    broken+=("$name")
    continue
  fi
  if ! "$parity" report "$dir"; then broken+=("$name"); continue; fi
  if ! "$parity" baseline save "$dir" --store "$store" --if-missing; then
    broken+=("$name")
    continue
  fi
  "$parity" drift "$dir" --store "$store"
  status=$?
  if [ $status -eq 1 ]; then
    drifted+=("$name")
  elif [ $status -ne 0 ]; then
    broken+=("$name")
  fi
done

"$parity" trend --store "$store" --out "$out_root/trend.html" || broken+=("trend")

echo "== nightly summary: ${#cases[@]} case(s), outputs in $out_root"
[ ${#drifted[@]} -gt 0 ] && echo "drift in: ${drifted[*]}"
[ ${#failed[@]} -gt 0 ] && echo "gates failed in: ${failed[*]}"
[ ${#broken[@]} -gt 0 ] && echo "could not run or compare: ${broken[*]}"

if [ ${#broken[@]} -gt 0 ]; then exit 2; fi
if [ ${#drifted[@]} -gt 0 ]; then exit 1; fi
if [ ${#failed[@]} -gt 0 ] && [ "${PARITY_NIGHTLY_IGNORE_GATES:-0}" != 1 ]; then exit 1; fi
echo "no drift"
exit 0
