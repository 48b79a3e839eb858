#!/usr/bin/env bash
# 10,000 idle TLS connections, issue #4: the memory a server holds per idle TLS connection,
# rsips and Kamailio (tls module) in the same run, the same certificate (ECDSA P-256), each
# server pinned to CPU 0 with WORKERS stream workers (rsips tcp_workers, Kamailio tcp_children),
# the client (tls_client.py, Python asyncio + ssl) on CPU 1.
#
# Per server: start it, open and close 100 connections (warm-up), read its memory, open COUNT
# connections and keep them idle, wait SETTLE seconds, read its memory again, check that they
# are all still open, close them. Memory is VmRSS from /proc/PID/status and PSS from
# /proc/PID/smaps_rollup, summed over the server's processes (Kamailio keeps connections in
# shared memory mapped by all its processes: summed RSS counts those pages once per process,
# summed PSS counts them once).
#
# Usage: bench/server/tls_idle.sh   (env: COUNT=10000 WORKERS=1 SETTLE=3
#        SERVERS="rsips kamailio-tlsf kamailio-qm" NICE=-19 RSIPS=path)
source "$(dirname "$0")/lib.sh"

COUNT=${COUNT:-10000}
WORKERS=${WORKERS:-1}
SETTLE=${SETTLE:-3}
SERVERS=${SERVERS:-"rsips kamailio-tlsf kamailio-qm"}
SERVER_CPU=0
CLIENT_CPU=1

need kamailio:kamailio openssl:openssl ss:iproute2 bc:bc python3:python3
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 ||
  { apt-get update -qq && apt-get install -y -qq kamailio-tls-modules >/dev/null; }
RSIPS_BIN=$(rsips_bin)
# Both sides need COUNT descriptors and more; the hard limit is as far as we may go.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -gt $((COUNT + 200)) ] || { echo "ulimit -n $(ulimit -n) is too low for $COUNT" >&2; exit 1; }
make_pki "$WORK/pki"

echo "# idle TLS connections: $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); $(python3 -c 'import ssl; print(ssl.OPENSSL_VERSION)') client"
echo "# count=$COUNT, workers=$WORKERS, server on CPU $SERVER_CPU, client on CPU $CLIENT_CPU, nice $NICE, ulimit -n $(ulimit -n), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

client() {
  "${PRIO[@]}" taskset -c "$CLIENT_CPU" python3 "$HERE/tls_client.py" "$@" --ca "$WORK/pki/ca.pem"
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for name in $SERVERS; do
  PORT=$(free_port)
  start_tls_server "$name" "$PORT" "$SERVER_CPU"
  client handshake --port "$PORT" --rate 100 --seconds 1 >/dev/null   # warm-up
  sleep "$SETTLE"
  read -r rss0 pss0 < <(mem_kib "$SERVER_PID")
  go="$WORK/go-$PORT"
  out="$WORK/client-$PORT.out"
  client idle --port "$PORT" --count "$COUNT" --concurrency 100 --go "$go" >"$out" 2>&1 &
  CLIENT_PID=$!
  PIDS+=("$CLIENT_PID")
  until grep -q '^ready' "$out" || ! kill -0 "$CLIENT_PID" 2>/dev/null; do sleep 0.2; done
  sleep "$SETTLE"
  read -r rss1 pss1 < <(mem_kib "$SERVER_PID")
  established=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
  touch "$go"
  wait "$CLIENT_PID" || true
  ready=$(awk '/^ready/ {print $2, "open,", $4, "failed, in", $6 ",", $7, $8}' "$out")
  alive=$(awk '/^alive/ {print $2}' "$out")
  echo "  $name: $ready; $established established at the server; $alive still open at the end"
  grep '^first failure' "$out" | sed 's/^/    /' || true
  echo "  $name: VmRSS ${rss0} -> ${rss1} KiB, PSS ${pss0} -> ${pss1} KiB, $(tree "$SERVER_PID" | wc -l) processes"
  n=$(awk '/^ready/ {print $2}' "$out")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "$rss0" "$rss1" "$pss0" "$pss1" \
    "$(echo "($pss1 - $pss0) / ${n:-1}" | bc -l)" >>"$RESULTS"
  stop_server "$SERVER_PID"
  log_problems "$name" "$SERVER_LOG"
done

echo
echo "| server | connections held | VmRSS before → after (MiB) | PSS before → after (MiB) | VmRSS Δ per connection | PSS Δ per connection |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %.1f → %.1f | %.1f → %.1f | %.1f KiB | %.1f KiB |\n", $1, $2, $3/1024, $4/1024, $5/1024, $6/1024, ($4-$3)/$2, ($6-$5)/$2}' "$RESULTS"
rs=$(awk -F'\t' '$1=="rsips" {print $7}' "$RESULTS")
awk -F'\t' -v rs="$rs" '$1 ~ /^kamailio/ && rs > 0 {printf "rsips PSS per connection / %s: %.2f (target <= 0.33)\n", $1, rs / $7}' "$RESULTS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
