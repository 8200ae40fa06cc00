#!/usr/bin/env bash
# user_sys_split.sh preforkd|floor PORT [SECONDS=5]
#
# Worker CPU per request split into user and system time: WORKERS=2 workers (preforkd with
# prespawn = false, so that the master's children are the workers; or
# bench/tools/http_floor), `wrk -t1 -c64` keep-alive on a 100 B file, a 2 s warm-up,
# then utime and stime of the workers (/proc/PID/stat, clock ticks) over the measured
# run / wrk's requests. PREFORKD=path measures another build. Run them alternately a
# few times: one run's system time moves by more than the differences between builds.
# Needs build-bench (bench/run builds it). Loopback only; stops what it started.
set -euo pipefail
KIND=$1 PORT=$2 SECONDS_=${3:-5} WORKERS_N=${WORKERS:-2}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=$PWD/build-bench
D=$(mktemp -d /tmp/preforkd-split.XXXXXX)
chmod 755 "$D"
printf '%099d\n' 0 > "$D/small.txt"; chmod 644 "$D/small.txt"   # 100 bytes
MASTER=""
cleanup() {
  [[ -n $MASTER ]] && kill -TERM "$MASTER" 2>/dev/null && wait "$MASTER" 2>/dev/null || true
  rm -rf "$D"
}
trap cleanup EXIT
case $KIND in
preforkd)
  printf 'workers = %s\nprespawn = false\nuser = "root"\npid_file = "%s/p.pid"\n[log]\nlevel = "warn"\n' "$WORKERS_N" "$D" > "$D/p.toml"
  printf '[[listen]]\naddress = "127.0.0.1:%s"\nprotocol = "http"\nroot = "%s"\n' "$PORT" "$D" >> "$D/p.toml"
  "${PREFORKD:-$B/preforkd}" -c "$D/p.toml" 2>"$D/log" &
  MASTER=$! ;;
floor)
  "$B/bench/http_floor" 127.0.0.1 "$PORT" "$WORKERS_N" "/small.txt=$D/small.txt" 2>"$D/log" &
  MASTER=$! ;;
*) echo "usage: $0 preforkd|floor PORT [SECONDS]" >&2; exit 2 ;;
esac
URL=http://127.0.0.1:$PORT/small.txt
for _ in $(seq 100); do curl -s -o /dev/null -m 1 "$URL" && break; sleep 0.1; done
WORKERS=$(pgrep -P "$MASTER" | tr '\n' ' ')
ticks() { for w in $WORKERS; do awk '{print $14, $15}' "/proc/$w/stat"; done | awk '{u += $1; s += $2} END {print u, s}'; }
wrk -t1 -c64 -d2s "$URL" >/dev/null
read -r u0 s0 < <(ticks)
requests=$(wrk -t1 -c64 -d"${SECONDS_}"s "$URL" | awk '/requests in/ {print $1}')
read -r u1 s1 < <(ticks)
hz=$(getconf CLK_TCK)
awk -v k="$KIND" -v n="$requests" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" \
  'BEGIN {printf "%s: %d requests; user %.2f µs, system %.2f µs per request\n", k, n, u / hz * 1e6 / n, s / hz * 1e6 / n}'
