#!/usr/bin/env bash
# Memory per pending INVITE transaction, issue #5: a SIPp uac opens PENDING calls through the
# stateful proxy (rsips-stateful.cfg / kamailio-stateful.cfg, fr_timeout = fr_inv_timeout =
# 300 s) to a SIPp uas that answers 180 and never a final response (sipp-uas-ring.xml), so every
# call leaves one INVITE transaction (server side + one client branch) waiting in the proxy.
# Servers on CPU 0, SIPp on CPU 1, same UDP worker count.
#
# Method: the calls are opened in two batches: PENDING/10, then the rest. After each batch has
# been taken in (the server's own count of transactions in use reaches it: rsips MI
# `get_statistics tm:inuse_transactions`, Kamailio `kamcmd tm.stats` current) the server's
# memory is read: PSS and VmRSS summed over its processes (/proc/PID/smaps_rollup, status) and,
# for Kamailio, the shared-memory allocator's `real_used` (`kamcmd core.shmmem`; Kamailio
# preallocates -m MiB of shm, so its RSS only shows the pages touched so far). Memory per
# transaction = growth between the two batches / transactions added (the first batch absorbs
# one-time growth: table buckets, allocator arenas); growth from idle / PENDING is shown too.
#
# Usage: bench/server/pending_tx.sh   (env: PENDING=100000 PENDING_RATE=2000 WORKERS_LIST="1"
#        KAMAILIO_ALLOCATORS="tlsf qm" KAMAILIO_SHM=4096 NICE=-19 RSIPS=path)
source "$(dirname "$0")/lib.sh"

PENDING=${PENDING:-100000}
PENDING_RATE=${PENDING_RATE:-2000}
WORKERS_LIST=${WORKERS_LIST:-"1"}
KAMAILIO_ALLOCATORS=${KAMAILIO_ALLOCATORS:-"tlsf qm"}
KAMAILIO_SHM=${KAMAILIO_SHM:-4096}
SERVER_CPU=0
SIPP_CPU=1
FIRST=$((PENDING / 10))

need sipp:sip-tester kamailio:kamailio kamcmd:kamailio ss:iproute2 curl:curl bc:bc
RSIPS_BIN=$(rsips_bin)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "# pending INVITE transactions: $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); SIPp $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
echo "# $PENDING calls at $PENDING_RATE/s in batches of $FIRST + $((PENDING - FIRST)); workers=$WORKERS_LIST; nice $NICE; load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# Transactions the server under test holds now (SERVER_KIND rsips | kamailio).
tx_count() {
  if [ "$SERVER_KIND" = rsips ]; then
    curl -s -m 5 -H 'Content-Type: application/json' \
      -d '{"jsonrpc":"2.0","method":"get_statistics","params":{"statistics":["tm:inuse_transactions"]},"id":1}' \
      "http://127.0.0.1:$MI_PORT/mi" | grep -o '"tm:inuse_transactions": *[0-9]*' | grep -o '[0-9]*$' || echo 0
  else
    kamcmd -s "$CTL" tm.stats 2>/dev/null | awk '/current:/ {print $2}' || echo 0
  fi
}

# Kamailio's shm in use (bytes, allocator real_used); "-" for rsips.
shm_used() {
  if [ "$SERVER_KIND" = rsips ]; then echo -; return; fi
  kamcmd -s "$CTL" core.shmmem 2>/dev/null | awk '/real_used:/ {print $2}'
}

# Waits until the server holds >= $1 transactions or the count stops growing for 20 s.
wait_count() {
  local want=$1 c last=-1 still=0
  while :; do
    c=$(tx_count); c=${c:-0}
    [ "$c" -ge "$want" ] && break
    if [ "$c" = "$last" ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 20 ] && { echo "  (count stuck at $c of $want)"; break; }
    last=$c
    sleep 1
  done
  sleep 3   # let the server settle (replies in flight, allocator)
}

start_uac() {
  local calls=$1 port
  port=$(free_port)
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$HERE/sipp-uac-pending.xml" -s bench \
    -i 127.0.0.1 -p "$port" "127.0.0.1:$PORT" -m "$calls" -r "$PENDING_RATE" -l "$PENDING" \
    -nostdin -trace_stat -stf "$WORK/uac-$port.csv" -fd 1 >"$WORK/uac-$port.out" 2>&1 &
  PIDS+=("$!")
  UACS+=("$!")
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# sample NAME: "tx pss rss shm" now.
sample() { echo "$(tx_count) $(mem_kib "$SERVER_PID" | awk '{print $2, $1}') $(shm_used)"; }

measure() {
  local name=$1 workers=$2 s0 s1 s2 p
  UACS=()
  s0=$(sample)
  start_uac "$FIRST"
  wait_count "$FIRST"
  s1=$(sample)
  start_uac "$((PENDING - FIRST))"
  wait_count "$PENDING"
  s2=$(sample)
  echo "  $name w=$workers  tx pss_kib rss_kib shm_bytes: idle $s0 | batch 1 $s1 | batch 2 $s2"
  for p in "${UACS[@]}"; do kill "$p" 2>/dev/null || true; done
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$workers" "$s0" "$s1" "$s2" >>"$RESULTS"
}

for workers in $WORKERS_LIST; do
  # --- rsips
  UAS_PORT=$(free_port)
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$HERE/sipp-uas-ring.xml" -i 127.0.0.1 \
    -p "$UAS_PORT" -nostdin >"$WORK/uas-$UAS_PORT.out" 2>&1 &
  UAS_PID=$!; PIDS+=("$UAS_PID")
  wait_listen udp "$UAS_PORT"
  PORT=$(free_port); MI_PORT=$(free_port); SERVER_KIND=rsips
  sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$workers/" \
    -e "s/@FR@/300/" -e "s/@MI_PORT@/$MI_PORT/" "$HERE/rsips-stateful.cfg" >"$WORK/rsips.cfg"
  start_rsips "$WORK/rsips.cfg" "$SERVER_CPU" "$WORK/rsips-w$workers.log"
  wait_listen udp "$PORT"; wait_listen tcp "$MI_PORT"
  measure rsips "$workers"
  stop_server "$SERVER_PID"
  log_problems rsips "$WORK/rsips-w$workers.log"
  kill "$UAS_PID" 2>/dev/null || true

  # --- Kamailio, per allocator
  for alloc in $KAMAILIO_ALLOCATORS; do
    UAS_PORT=$(free_port)
    "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$HERE/sipp-uas-ring.xml" -i 127.0.0.1 \
      -p "$UAS_PORT" -nostdin >"$WORK/uas-$UAS_PORT.out" 2>&1 &
    UAS_PID=$!; PIDS+=("$UAS_PID")
    wait_listen udp "$UAS_PORT"
    PORT=$(free_port); SERVER_KIND=kamailio; CTL="unix:$WORK/kamailio-ctl-$PORT"
    sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$workers/" \
      -e "s/@FR_MS@/300000/" -e "s|@CTL@|$CTL|" "$HERE/kamailio-stateful.cfg" >"$WORK/kamailio.cfg"
    start_kamailio "$WORK/kamailio.cfg" "$SERVER_CPU" "$WORK/kamailio-$alloc-w$workers.log" \
      "$alloc" "$KAMAILIO_SHM"
    wait_listen udp "$PORT"
    sleep 1
    measure "kamailio -x $alloc" "$workers"
    stop_server "$SERVER_PID"
    log_problems "kamailio -x $alloc" "$WORK/kamailio-$alloc-w$workers.log"
    kill "$UAS_PID" 2>/dev/null || true
  done
done

echo
echo "| server | workers | pending tx reached | PSS idle → after, MiB | PSS per tx (batch 2), bytes | PSS per tx (from idle), bytes | VmRSS per tx (batch 2), bytes | shm real_used per tx (batch 2), bytes |"
echo "|---|---|---|---|---|---|---|---|"
# Columns: name workers | tx0 pss0 rss0 shm0 | tx1 pss1 rss1 shm1 | tx2 pss2 rss2 shm2
awk -F'\t' '{
  split($3, a, " "); split($4, b, " "); split($5, c, " ")
  dt = c[1] - b[1]; if (dt <= 0) dt = 1
  dt0 = c[1] - a[1]; if (dt0 <= 0) dt0 = 1
  shm = (c[4] == "-") ? "-" : sprintf("%.0f", (c[4] - b[4]) / dt)
  printf "| %s | %s | %d | %.1f → %.1f | %.0f | %.0f | %.0f | %s |\n", $1, $2, c[1], a[2] / 1024, c[2] / 1024,
    (c[2] - b[2]) * 1024 / dt, (c[2] - a[2]) * 1024 / dt0, (c[3] - b[3]) * 1024 / dt, shm
}' "$RESULTS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
