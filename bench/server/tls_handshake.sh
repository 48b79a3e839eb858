#!/usr/bin/env bash
# TLS handshake latency at RATE new connections per second, issue #4: rsips and Kamailio (tls
# module) in the same run, the same certificate (ECDSA P-256), each server pinned to CPU 0 with
# WORKERS stream workers, the client (tls_client.py, Python asyncio + ssl, full handshakes, no
# session resumption) on CPU 1. Starts follow a fixed schedule (open loop: a slow handshake does
# not delay the next start); each connection is timed from the moment the client starts it
# through TCP connect and the TLS handshake, then closed (close_notify + FIN). "client lag" is
# how late the client started connections against its schedule (its own CPU, not the server).
# Also reported: the server's CPU time per handshake (utime+stime over all its threads and
# processes, /proc/PID/stat).
#
# Usage: bench/server/tls_handshake.sh   (env: RATE=500 SECONDS_=10 WORKERS=1
#        SERVERS="rsips kamailio-tlsf kamailio-qm" NICE=-19 RSIPS=path)
source "$(dirname "$0")/lib.sh"

RATE=${RATE:-500}
DURATION=${SECONDS_:-10}
WORKERS=${WORKERS:-1}
SERVERS=${SERVERS:-"rsips kamailio-tlsf kamailio-qm"}
SERVER_CPU=0
CLIENT_CPU=1

need kamailio:kamailio openssl:openssl ss:iproute2 bc:bc python3:python3
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get install -y -qq kamailio-tls-modules >/dev/null; }
RSIPS_BIN=$(rsips_bin)
ulimit -n "$(ulimit -Hn)"
make_pki "$WORK/pki"
HZ=$(getconf CLK_TCK)

echo "# TLS handshakes: $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); $(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)') client"
echo "# $RATE/s for ${DURATION}s, workers=$WORKERS, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU, nice $NICE, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

client() {
  "${PRIO[@]}" taskset -c "$CLIENT_CPU" python3 "$HERE/tls_client.py" "$@" --ca "$WORK/pki/ca.pem"
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for name in $SERVERS; do
  PORT=$(free_port)
  start_tls_server "$name" "$PORT" "$SERVER_CPU"
  client handshake --port "$PORT" --rate 100 --seconds 1 >/dev/null   # warm-up
  sleep 1
  t0=$(cpu_ticks "$SERVER_PID")
  out="$WORK/client-$PORT.out"
  client handshake --port "$PORT" --rate "$RATE" --seconds "$DURATION" >"$out" 2>&1 || true
  t1=$(cpu_ticks "$SERVER_PID")
  line=$(grep '^handshakes' "$out" || echo "handshakes 0 failed ? (client: $(tail -1 "$out"))")
  echo "  $name: $line"
  grep '^first failure' "$out" | sed 's/^/    /' || true
  # handshakes N failed F p50 X p90 X p99 X max X ms mean X ms client lag p99 X ms
  set -- $line
  n=${2:-0}
  us=$(echo "($t1 - $t0) * 1000000 / $HZ / ($n + ${4:-0})" | bc -l 2>/dev/null || echo 0)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\n' "$name" "${n:-0}" "${4:-?}" "${6:-?}" "${10:-?}" "${12:-?}" "${20:-?}" "$us" >>"$RESULTS"
  stop_server "$SERVER_PID"
  log_problems "$name" "$SERVER_LOG"
done

echo
echo "| server | handshakes | failed | p50 | p99 | max | client lag p99 | server CPU per handshake |"
echo "|---|---|---|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s ms | %s ms | %s ms | %s ms | %s µs |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$RESULTS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
