#!/usr/bin/env bash
# CPU the daemon spends while idle (issue #13): nothing queued, no site (`--site none`), launch
# mode, one tick a second. Prints the ticks, user and kernel CPU time over SECONDS after the first
# tick, and the CPU per tick. Compare two builds by running it on each, in turn:
#   bench/idle.sh target/release/executor 60
set -euo pipefail
bin="${1:?usage: bench/idle.sh EXECUTOR_BINARY [SECONDS]}"
seconds="${2:-60}"
interval="${3:-1s}"
profile="$(mktemp -d /tmp/executor-idle-XXXXXX)"
trap 'touch "$profile/STOP_EXECUTOR"; wait 2>/dev/null; rm -rf "$profile"' EXIT
EXECUTOR_SITE=none "$bin" --profile "$profile" --browser-mode launch --cdp-port 0 \
  --tick-interval "$interval" daemon >"$profile/out" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do grep -q "pages=" "$profile/out" 2>/dev/null && break; sleep 0.1; done
cpu() { awk '{print $14, $15}' "/proc/$daemon/stat"; }
read -r user1 sys1 < <(cpu)
ticks1=$(grep -c "pages=" "$profile/out")
sleep "$seconds"
read -r user2 sys2 < <(cpu)
ticks2=$(grep -c "pages=" "$profile/out")
hz=$(getconf CLK_TCK)
ticks=$((ticks2 - ticks1))
cpu_ms=$(( ((user2 - user1) + (sys2 - sys1)) * 1000 / hz ))
echo "interval=$interval seconds=$seconds ticks=$ticks user_ms=$(( (user2 - user1) * 1000 / hz )) kernel_ms=$(( (sys2 - sys1) * 1000 / hz )) cpu_per_tick_ms=$(( cpu_ms / (ticks > 0 ? ticks : 1) )) cpu_s_per_hour=$(( cpu_ms * 3600 / seconds / 1000 ))"
