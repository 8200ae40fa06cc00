#!/usr/bin/env bash
# callgrind_one_worker.sh KIND PORT OUT [SECONDS=10]
#
# Callgrind on the one worker (thread) of a server under `wrk -t1 -c64` keep-alive on a
# 100 B file: KIND = preforkd | h2o | floor; or preforkd's UDP echo (KIND = preforkd-udp)
# under `bench/tools/udp_load 127.0.0.1 PORT SECONDS 32 4 64` (OUT.load: its output;
# instructions per datagram = the total / echoed). Prints wrk's output; the profile of the
# measured run is OUT.PID[.1] (instructions per request = its total / wrk's requests).
#   preforkd: workers = 1, the worker run under callgrind by bench/tools/wrap_worker
#             (LD_PRELOAD on the master); counters zeroed after a 3 s warm-up and dumped
#             after the measured run (callgrind_control). ACCESS=1 turns the access log
#             on; PREFORKD=path profiles another build. CLOSE=1: every request on its
#             own connection (wrk -H 'Connection: close'), for the cost per connection.
#   h2o:      num-threads 1, the same zero / dump.
#   floor:    bench/tools/http_floor with 1 worker. Its worker is forked, not exec'd,
#             and callgrind_control cannot reach a forked child, so it collects only
#             inside Worker::run, from the first request (no warm-up: nothing to warm)
#             to the TERM that ends it.
# Runs everything as root (valgrind's control pipes do not survive a switch to nobody).
# Needs build-bench (bench/run builds it). Loopback only; stops what it started.
set -euo pipefail
KIND=$1 PORT=$2 OUT=$3 SECONDS_=${4:-10}
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
B=$PWD/build-bench
D=$(mktemp -d /tmp/preforkd-callgrind.XXXXXX)
chmod 755 "$D"; mkdir -p "$D/www"; chmod 755 "$D/www"
printf '%099d\n' 0 > "$D/www/small.txt"; chmod 644 "$D/www/small.txt"   # 100 bytes
CG="valgrind --tool=callgrind --callgrind-out-file=$OUT.%p"
URL=http://127.0.0.1:$PORT/small.txt
WRK_HEADER=()
[[ -n ${CLOSE:-} ]] && WRK_HEADER=(-H 'Connection: close')
MASTER=""
cleanup() {
  [[ -n $MASTER ]] && kill -TERM "$MASTER" 2>/dev/null || true
  sleep 1; rm -rf "$D"
}
trap cleanup EXIT
case $KIND in
preforkd|preforkd-udp)
  # prespawn = false: a spare would be a second child of the master, and the one to
  # profile is found as the master's only child.
  { echo 'workers = 1'; echo 'prespawn = false'; echo 'user = "root"'; echo "pid_file = \"$D/p.pid\""; echo 'worker_timeout = 120'
    echo '[log]'; echo 'level = "info"'; [[ -n ${ACCESS:-} ]] && echo "access_log = \"$D/access.log\""
    echo '[[listen]]'; echo "address = \"127.0.0.1:$PORT\""
    if [[ $KIND == preforkd ]]; then echo 'protocol = "http"'; echo "root = \"$D/www\""; else echo 'protocol = "udp-echo"'; fi
  } > "$D/p.toml"
  PREFORKD_WRAP_WORKER="$CG" LD_PRELOAD=$B/bench/libwrap_worker.so setsid "${PREFORKD:-$B/preforkd}" -c "$D/p.toml" \
    2>"$D/log" &
  MASTER=$! ;;
h2o)
  printf 'num-threads: 1\nmax-connections: 20000\nuser: root\nlisten:\n  host: 127.0.0.1\n  port: %s\n' "$PORT" > "$D/h2o.conf"
  printf 'http1-request-timeout: 75\nfile.mime.settypes:\n  text/plain: .txt\nhosts:\n  default:\n' >> "$D/h2o.conf"
  printf '    paths:\n      /:\n        file.dir: %s\n' "$D/www" >> "$D/h2o.conf"
  setsid $CG h2o -c "$D/h2o.conf" 2>"$D/log" &
  MASTER=$! ;;
floor)
  setsid valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=*Worker::run*' \
    --callgrind-out-file="$OUT.%p" "$B/bench/http_floor" 127.0.0.1 "$PORT" 1 "/small.txt=$D/www/small.txt" 2>"$D/log" &
  MASTER=$! ;;
*) echo "usage: $0 preforkd|h2o|floor|preforkd-udp PORT OUT [SECONDS]" >&2; exit 2 ;;
esac
if [[ $KIND == preforkd-udp ]]; then
  for _ in $(seq 150); do grep -q "workers ready" "$D/log" 2>/dev/null && break; sleep 0.2; done
  sleep 1
  W=$(pgrep -P "$(cat "$D/p.pid")")
  echo "profiling pid $W"
  "$B/bench/udp_load" 127.0.0.1 "$PORT" 2 32 4 64 >/dev/null   # warm-up
  timeout 60 callgrind_control -z "$W" >/dev/null
  "$B/bench/udp_load" 127.0.0.1 "$PORT" "$SECONDS_" 32 4 64 | tee "$OUT.load"
  timeout 60 callgrind_control -d "$W" >/dev/null
  sleep 2
  ls "$OUT".*
  exit 0
fi
for _ in $(seq 150); do curl -s -o /dev/null -m 2 "$URL" && break; sleep 0.2; done
sleep 1
case $KIND in
preforkd) W=$(pgrep -P "$(cat "$D/p.pid")") ;;
h2o) W=$MASTER ;;
floor) W=$(pgrep -P "$MASTER") ;;
esac
echo "profiling pid $W"
if [[ $KIND != floor ]]; then
  wrk -t1 -c64 -d3s "${WRK_HEADER[@]}" "$URL" >/dev/null   # warm-up: the file cache, the page cache
  timeout 60 callgrind_control -z "$W" >/dev/null
fi
wrk -t1 -c64 -d"${SECONDS_}"s "${WRK_HEADER[@]}" "$URL" | tee "$OUT.wrk"
if [[ $KIND != floor ]]; then
  timeout 60 callgrind_control -d "$W" >/dev/null
else
  kill -TERM "$W"   # valgrind writes the profile as the worker dies
fi
sleep 2
ls "$OUT".*
