#!/usr/bin/env bash
# CPU the daemon spends while idle (issue #13): nothing queued, launch mode, one tick per
# INTERVAL (default 1s). With SITE=sandbox the bundled sandbox site is served (by the same
# binary, in its own process, not counted) and the daemon holds its account and checks its
# session as it would for a real site; otherwise there is no site (`--site none`).
#
# Prints the ticks, the CPU time of the daemon's process (all its threads) over SECONDS after the
# first tick, per tick, and as CPU-seconds per hour. The CPU time is perf's task-clock
# (nanoseconds) where `perf` is installed, else user + kernel time from /proc/PID/stat (clock
# ticks of 10 ms: run for minutes). Compare two builds by running it on each, in turn:
#   bench/idle.sh target/release/executor 120
#   SITE=sandbox bench/idle.sh target/release/executor 120
#   bench/idle.sh target/release/executor 600 60s
set -euo pipefail
bin="${1:?usage: [SITE=sandbox] bench/idle.sh EXECUTOR_BINARY [SECONDS] [INTERVAL]}"
seconds="${2:-60}"
interval="${3:-1s}"
site="${SITE:-none}"
profile="$(mktemp -d /tmp/executor-idle-XXXXXX)"
pids=()
cleanup() {
  touch "$profile/STOP_EXECUTOR"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf "$profile"
}
trap cleanup EXIT

site_args=(--site none)
if [ "$site" = sandbox ]; then
  "$bin" --profile "$profile" sandbox --port 0 >"$profile/sandbox.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q "http://" "$profile/sandbox.out" 2>/dev/null && break; sleep 0.1; done
  url=$(grep -o "http://[0-9.:]*" "$profile/sandbox.out" | head -1)
  # Logged in, as an operator would be: the login form's cookie, set by `executor login`.
  curl -s -o /dev/null -c "$profile/cookies.txt" --data "username=bench" "$url/i/flow/login"
  "$bin" --profile "$profile" --browser-mode launch --cdp-port 0 --site sandbox \
    login --cookies "$profile/cookies.txt" >"$profile/login.out" 2>&1 \
    || { echo "could not log in to the sandbox:" >&2; cat "$profile/login.out" >&2; exit 1; }
  site_args=(--site sandbox)
elif [ "$site" != none ]; then
  echo "SITE is none or sandbox, not $site" >&2
  exit 2
fi

"$bin" --profile "$profile" --browser-mode launch --cdp-port 0 --tick-interval "$interval" \
  "${site_args[@]}" daemon >"$profile/out" 2>&1 &
daemon=$!
for _ in $(seq 1 300); do grep -q "pages=" "$profile/out" 2>/dev/null && break; sleep 0.1; done
if ! grep -q "pages=" "$profile/out"; then
  echo "the daemon did not tick:" >&2
  cat "$profile/out" >&2
  exit 1
fi

if grep -q "AUTH_REQUIRED" "$profile/out"; then
  echo "the daemon is not logged in to the site: an idle tick would check the session each time" >&2
  exit 1
fi
ticks1=$(grep -c "pages=" "$profile/out")
if command -v perf >/dev/null && perf stat -e task-clock -p "$daemon" -- true >/dev/null 2>&1; then
  how=perf
  cpu_ms=$(perf stat -x, -e task-clock -p "$daemon" -- sleep "$seconds" 2>&1 \
    | awk -F, '/task-clock/ { printf "%.1f", $1 }')
else
  how=proc
  hz=$(getconf CLK_TCK)
  read -r user1 sys1 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  sleep "$seconds"
  read -r user2 sys2 < <(awk '{print $14, $15}' "/proc/$daemon/stat")
  cpu_ms=$(( ((user2 - user1) + (sys2 - sys1)) * 1000 / hz ))
fi
ticks2=$(grep -c "pages=" "$profile/out")
ticks=$((ticks2 - ticks1))
failed=$(grep -c "last_error=[^ ]" "$profile/out" || true)
awk -v how="$how" -v site="$site" -v interval="$interval" -v seconds="$seconds" -v ticks="$ticks" \
  -v cpu="$cpu_ms" -v failed="$failed" 'BEGIN {
  per_tick = ticks > 0 ? cpu / ticks : 0
  printf "site=%s interval=%s seconds=%d ticks=%d failed_ticks=%d cpu_ms=%.1f (%s) cpu_per_tick_ms=%.3f cpu_s_per_hour=%.2f\n",
    site, interval, seconds, ticks, failed, cpu, how, per_tick, cpu * 3600 / seconds / 1000
}'
