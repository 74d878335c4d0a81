#!/usr/bin/env bash
# Emulator throughput and peak memory: the full app (bandits, faults, process kills) beside a
# tracking-only baseline of the same fleet, for 100 and 1000 devices over 3 simulated days.
# Prints one Markdown table row per run (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CARGO_TARGET_DIR:=$PWD/target}"
cargo build --release -p starling-emulator
bin="$CARGO_TARGET_DIR/release/starling-emulate"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

echo "| devices | app | events generated | wall time | device-days per minute | peak resident memory |"
echo "|---|---|---|---|---|---|"
for devices in ${DEVICES:-100 1000}; do
  for mode in full tracking-only; do
    flags=()
    [ "$mode" = tracking-only ] && flags=(--tracking-only)
    /usr/bin/time -v -o "$out/time" "$bin" --devices "$devices" --days 3 --quiet \
      --out "$out/run" "${flags[@]}" > "$out/stdout"
    rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/time")
    python3 - "$out/run/report.json" "$devices" "$mode" "$rss_kb" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
a = r["accounting"]
assert a["balanced"], a
print(f"| {sys.argv[2]} | {sys.argv[3]} | {a['generated']} | {r['elapsed_s']:.1f} s "
      f"| {r['device_days_per_minute']:.0f} | {int(sys.argv[4]) / 1024:.0f} MiB |")
PY
  done
done
