#!/usr/bin/env bash
# Runs the benchmarks behind docs/performance.md one after another (never in
# CI: they want a quiet machine) and rewrites docs/performance-latest.md with
# what each printed last — its medians and the ratio to its anchor — beside
# the commit and the machine. docs/performance.md keeps the curated table and
# the reasons; this file is the raw record of the newest run.
#
#   scripts/benches.sh                 # every bench (about an hour here)
#   scripts/benches.sh signin reconcile  # only these (names below)
#
# Each bench's whole output is kept under target/bench-runs/<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CI=true

# name | package | bench target | arguments
BENCHES=(
  "me|galaxy-auth|me|"
  "delivery|galaxy-mail|delivery|"
  "submit|galaxy-notification|submit|"
  "reconcile|galaxy-runtime|reconcile|"
  "signin|galaxy-integration|signin|"
  "warm|galaxy-integration|warm|"
  "scale|galaxy-integration|scale|"
  "gateway|galaxy-integration|gateway|"
  "telemetry_latency|galaxy-integration|telemetry_latency|"
  "geo_record|galaxy-geo|record|"
)

SELECTED=("$@")
selected() {
  [ ${#SELECTED[@]} -eq 0 ] && return 0
  for w in "${SELECTED[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# The benches that start backends and gateways run the release binaries.
cargo build --release --locked -p galaxy-backend -p galaxy-gateway-bin

run_dir="target/bench-runs/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$run_dir"
commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain | grep -q . && echo " (with uncommitted changes)" || true)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
load=$(cut -d' ' -f1-3 /proc/loadavg)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)

rows=""
for entry in "${BENCHES[@]}"; do
  IFS='|' read -r name package target args <<<"$entry"
  selected "$name" || continue
  command="cargo bench -p $package --bench $target${args:+ -- $args}"
  echo "== $name: $command"
  log="$run_dir/$name.txt"
  started=$SECONDS
  # shellcheck disable=SC2086 # the arguments are words
  if cargo bench -p "$package" --bench "$target" ${args:+-- $args} >"$log" 2>&1; then
    status="ok"
  else
    status="failed (exit $?)"
  fi
  took=$((SECONDS - started))
  # The summary a bench prints last: its medians and ratios, without
  # cargo's own lines.
  summary=$(grep -v -E '^\s*(Compiling|Finished|Running|Blocking|Downloaded|Updating)\b' "$log" |
    tail -n 8 | sed 's/|/\\|/g' | sed 's/$/<br>/' | tr -d '\n')
  rows+="| $name | \`$command\` | $status, ${took}s | $summary |"$'\n'
  echo "   $status in ${took}s; output in $log"
done

{
  echo "# Benchmarks: the newest run"
  echo
  echo "Written by \`scripts/benches.sh\` — do not edit by hand. The curated"
  echo "table, the goals and why a figure misses its goal are in"
  echo "[performance.md](performance.md)."
  echo
  echo "- commit: \`$commit\`$dirty"
  echo "- run: $(date -u '+%Y-%m-%d %H:%M UTC'); load average at its start: $load"
  echo "- machine: $(nproc) cores ($cpu), $mem"
  echo
  echo "| bench | command | outcome | what it printed last |"
  echo "|---|---|---|---|"
  printf '%s' "$rows"
} >docs/performance-latest.md
echo "rewrote docs/performance-latest.md"
