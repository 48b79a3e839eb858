#!/usr/bin/env bash
# Stateful proxy with record-route, issue #5: SIPp uac -> proxy -> SIPp uas over UDP on
# 127.0.0.1, rsips and Kamailio in the same run, the same config logic (tm t_relay,
# record_route on INVITE, in-dialog requests by loose_route) and the same UDP worker count;
# servers pinned to CPU 0, the two SIPp processes to CPU 1. A call is INVITE / 100 / 180 / 200 /
# ACK / BYE / 200 with the SIPp scenarios sipp-uac-call.xml + sipp-uas-answer.xml, which
# follow the route set (SIPp's built-in uac does not).
#
#   (a) server CPU per call, RSS/PSS and SIPp response times (INVITE -> 200, BYE -> 200; every
#       sample from -trace_rtt, p50/p99) at FIXED_RATE for FIXED_CALLS calls;
#   (b) max sustainable call rate: RATES ramped with CALLS_PER_STEP calls per step (a fresh uac
#       per step); a step holds when < 0.1 % of its calls fail and SIPp reached >= 90 % of the
#       asked rate (SIPp's cumulative rate includes the last calls' duration: a 5,000-call step
#       at 2,500/s reads ~94.6 % with every call on time); a step that does not hold is run once more, and the ramp stops at the first
#       step that fails twice.
#
# Kamailio runs with each allocator of KAMAILIO_ALLOCATORS (tlsf: its fastest; qm: the Debian
# package's default). Worker counts: each of WORKERS_LIST.
#
# Usage: bench/server/stateful.sh   (env: WORKERS_LIST="1 2" RATES="..." CALLS_PER_STEP=5000
#        FIXED_RATE=1000 FIXED_CALLS=20000 NICE=-19 KAMAILIO_ALLOCATORS="tlsf qm" RSIPS=path
#        RSIPS_B=path (a second rsips build, row "rsips-B"), SERVERS="rsips kamailio floor direct",
#        VARIANT=stateful | dialog: the dialog variant tracks every call in the dialog module as
#        well, rsips-dialog.cfg / kamailio-dialog.cfg)
source "$(dirname "$0")/lib.sh"

WORKERS_LIST=${WORKERS_LIST:-"1 2"}
RATES=${RATES:-"1000 1500 2000 2500 3000 3500 4000 5000"}
CALLS_PER_STEP=${CALLS_PER_STEP:-5000}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_CALLS=${FIXED_CALLS:-20000}
KAMAILIO_ALLOCATORS=${KAMAILIO_ALLOCATORS:-"tlsf qm"}
VARIANT=${VARIANT:-stateful}
# Kamailio's shared memory (MiB): transactions stay 5 s in the wait state after their final
# reply, so a few thousand calls/s keep tens of thousands of them; 256 MiB ran out at 2,500/s.
KAMAILIO_SHM=${KAMAILIO_SHM:-1024}
SERVER_CPU=0
SIPP_CPU=1
UAC_XML="$HERE/sipp-uac-call.xml"
UAS_XML="$HERE/sipp-uas-answer.xml"

need sipp:sip-tester kamailio:kamailio ss:iproute2 bc:bc
RSIPS_BIN=$(rsips_bin)
HZ=$(getconf CLK_TCK)

echo "# stateful proxy ($VARIANT): $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); SIPp $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
echo "# workers=$WORKERS_LIST, server on CPU $SERVER_CPU, SIPp on CPU $SIPP_CPU, nice $NICE, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

start_uas() {
  UAS_PORT=$(free_port)
  restart_uas
}

restart_uas() {
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$UAS_XML" -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
    >"$WORK/uas-$UAS_PORT.out" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  wait_listen udp "$UAS_PORT"
}

# One uac run, repeated (up to three times) when SIPp stopped before creating all its calls (a
# signal from outside: this machine is shared) or the uas is gone:
# run_uac TARGET_PORT RATE CALLS SERVER_PID -> sets STEP_* values.
run_uac() {
  local try
  for try in 1 2 3; do
    if ! kill -0 "$UAS_PID" 2>/dev/null; then
      echo "  (uas on $UAS_PORT is gone; restarting it)"
      restart_uas
    fi
    run_uac_once "$@"
    if kill -0 "$UAS_PID" 2>/dev/null && { [ "$STEP_CREATED" -ge "$3" ] ||
      [ "$(echo "$STEP_WALL >= $3 / $2" | bc -l)" = 1 ]; }; then
      return 0
    fi
    echo "  (step at $2 cps interrupted after $STEP_CREATED of $3 calls; running it again)"
  done
}

run_uac_once() {
  local target=$1 rate=$2 calls=$3 spid=$4 port dir csv t0 t1 s0 s1 line
  port=$(free_port)
  dir="$WORK/uac-$port"
  mkdir -p "$dir"
  csv="$dir/stat.csv"
  t0=0; [ "$spid" != 0 ] && t0=$(cpu_ticks "$spid")
  d0=$(kernel_drops)
  s0=$(date +%s.%N)
  # -trace_rtt writes every response time (-rtt_freq 1) to <scenario>_<pid>_rtt.csv in $dir.
  (cd "$dir" && "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$UAC_XML" -s bench \
    -i 127.0.0.1 -p "$port" "127.0.0.1:$target" \
    -m "$calls" -r "$rate" -l $((rate * 5)) -recv_timeout 5000 \
    -timeout "$((calls / rate + 40))s" -nostdin -trace_stat -stf "$csv" -fd 1 \
    -trace_rtt -rtt_freq 1 >"$dir/out" 2>&1) || true
  s1=$(date +%s.%N)
  t1=0; [ "$spid" != 0 ] && t1=$(cpu_ticks "$spid")
  STEP_MEM="0 0"; [ "$spid" != 0 ] && STEP_MEM=$(mem_kib "$spid")
  STEP_DROPS=$(($(kernel_drops) - d0))
  line=$(tail -n 1 "$csv" 2>/dev/null || true)
  # CSV columns: 8 CallRate(C), 12 OutgoingCall(C), 16 SuccessfulCall(C), 58 Retransmissions(C)
  STEP_RATE=$(echo "$line" | awk -F';' '{printf "%.0f", $8}')
  STEP_CREATED=$(echo "$line" | awk -F';' '{print $12+0}')
  STEP_OK=$(echo "$line" | awk -F';' '{print $16+0}')
  STEP_RETRANS=$(echo "$line" | awk -F';' '{print $58+0}')
  STEP_FAILED=$((calls - STEP_OK))
  STEP_WALL=$(echo "$s1 - $s0" | bc -l)
  STEP_TICKS=$((t1 - t0))
  STEP_US_PER_CALL=$(echo "$STEP_TICKS * 1000000 / $HZ / $calls" | bc -l)
  STEP_BUSY=$(echo "100 * $STEP_TICKS / $HZ / $STEP_WALL" | bc -l)
  STEP_RTT=$(rtt_percentiles "$dir")
  STEP_HOLDS=no
  if [ $((STEP_FAILED * 1000)) -lt "$calls" ] && [ "${STEP_RATE:-0}" -ge $((rate * 90 / 100)) ]; then
    STEP_HOLDS=yes
  fi
}

# "p50/p99/mean of rtd 1 (INVITE -> 200)" and the same for rtd 2 (BYE -> 200) in ms, from the
# -trace_rtt files in $1 (lines "date_ms;response_time_ms;rtd_no"). SIPp stamps messages with a
# clock it updates once per pass of its event loop, so the samples come in steps of a few ms;
# the mean of many samples is finer than the percentiles.
rtt_percentiles() {
  local n
  for n in 1 2; do
    cat "$1"/*_rtt.csv 2>/dev/null | awk -F';' -v n="$n" '$3+0 == n {print $2}' | sort -g |
      awk '{v[NR] = $1} END {
        if (NR == 0) { printf "-/-/- "; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        for (i = 1; i <= NR; i++) s += v[i]
        printf "%g/%g/%.2f ", v[i50], v[i99], s / NR }'
  done
}

# Datagrams the kernel dropped, machine-wide: UDP receive-buffer overflows plus the per-CPU
# backlog (loopback traffic queues there).
kernel_drops() {
  local udp softnet
  udp=$(awk '/^Udp:/ {if (h) print $6; else h=1}' /proc/net/snmp)
  softnet=0
  while read -r _ d _; do softnet=$((softnet + 16#$d)); done </proc/net/softnet_stat
  echo $((udp + softnet))
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure NAME WORKERS SERVER_PORT SERVER_PID
measure() {
  local name=$1 workers=$2 port=$3 spid=$4 r max=0 fixed mem rtt idle
  idle="0 0"; [ "$spid" != 0 ] && idle=$(mem_kib "$spid")
  run_uac "$port" 200 1000 "$spid"   # warm-up
  run_uac "$port" "$FIXED_RATE" "$FIXED_CALLS" "$spid"
  fixed=$(printf '%.1f' "$STEP_US_PER_CALL")
  mem=$STEP_MEM
  rtt=$STEP_RTT
  printf '  %-16s w=%s fixed %s cps: %s failed, %s retrans, %s dropped, %s ticks, %s us/call, core %.0f%% busy, rss/pss KiB idle %s after %s, rtt p50/p99/mean ms inv %s bye %s\n' \
    "$name" "$workers" "$FIXED_RATE" "$STEP_FAILED" "$STEP_RETRANS" "$STEP_DROPS" "$STEP_TICKS" "$fixed" "$STEP_BUSY" "$idle" "$mem" $rtt
  [ "$STEP_HOLDS" = yes ] || fixed="$fixed (failures: $STEP_FAILED)"
  local first_fail="-"
  for r in $RATES; do
    run_uac "$port" "$r" "$CALLS_PER_STEP" "$spid"
    if [ "$STEP_HOLDS" = no ]; then
      printf '  %-16s %5s cps asked: %5s reached, %4s failed, %5s dropped -> trying the step again\n' \
        "$name" "$r" "$STEP_RATE" "$STEP_FAILED" "$STEP_DROPS"
      run_uac "$port" "$r" "$CALLS_PER_STEP" "$spid"
    fi
    printf '  %-16s w=%s %5s cps asked: %5s reached, %4s failed, %5s retrans, %5s dropped, core %3.0f%% busy, %6.1f us/call, rtt p50/p99/mean ms inv %s bye %s -> %s\n' \
      "$name" "$workers" "$r" "$STEP_RATE" "$STEP_FAILED" "$STEP_RETRANS" "$STEP_DROPS" "$STEP_BUSY" "$STEP_US_PER_CALL" $STEP_RTT "$STEP_HOLDS"
    if [ "$STEP_HOLDS" = yes ]; then
      max=$r
    else
      first_fail="$r (${STEP_RATE} reached, ${STEP_FAILED} failed, ${STEP_DROPS} dropped)"
      break
    fi
  done
  [ "$spid" = 0 ] && fixed="-" && mem="-"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$workers" "$fixed" "$max" "$first_fail" \
    "$(echo "$mem" | awk '$1 == "-" {print "-"; next} {printf "%.1f / %.1f", $1 / 1024, $2 / 1024}')" \
    "$(echo "$rtt" | awk '{print $1}')" "$(echo "$rtt" | awk '{print $2}')" >>"$RESULTS"
}

# measure_rsips NAME WORKERS: the rsips row ($RSIPS_BIN).
measure_rsips() {
  local name=$1 workers=$2
  start_uas
  PORT=$(free_port)
  sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$workers/" \
    -e "s/@FR@/30/" -e "s/@MI_PORT@/$(free_port)/" "$HERE/rsips-$VARIANT.cfg" >"$WORK/rsips.cfg"
  start_rsips "$WORK/rsips.cfg" "$SERVER_CPU" "$WORK/$name-w$workers.log"
  wait_listen udp "$PORT"
  measure "$name" "$workers" "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  log_problems "$name" "$WORK/$name-w$workers.log"
  kill "$UAS_PID" 2>/dev/null || true
}

for workers in $WORKERS_LIST; do
  # --- rsips (and RSIPS_B, a second build to compare, when given)
  if runs rsips; then
    measure_rsips rsips "$workers"
    if [ -n "${RSIPS_B:-}" ]; then
      main_bin=$RSIPS_BIN
      RSIPS_BIN=$RSIPS_B
      measure_rsips "rsips-B" "$workers"
      RSIPS_BIN=$main_bin
    fi
  fi

  # --- Kamailio, per allocator
  runs kamailio || KAMAILIO_ALLOCATORS=""
  for alloc in $KAMAILIO_ALLOCATORS; do
    start_uas
    PORT=$(free_port)
    sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$workers/" \
      -e "s/@FR_MS@/30000/" -e "s|@CTL@|unix:$WORK/kamailio-ctl-$PORT|" \
      "$HERE/kamailio-$VARIANT.cfg" >"$WORK/kamailio.cfg"
    start_kamailio "$WORK/kamailio.cfg" "$SERVER_CPU" "$WORK/kamailio-$alloc-w$workers.log" "$alloc" "$KAMAILIO_SHM"
    wait_listen udp "$PORT"
    measure "kamailio -x $alloc" "$workers" "$PORT" "$SERVER_PID"
    stop_server "$SERVER_PID"
    log_problems "kamailio -x $alloc" "$WORK/kamailio-$alloc-w$workers.log"
    kill "$UAS_PID" 2>/dev/null || true
  done
done

# --- the kernel floor: the same calls through a relay that does no SIP work (SERVERS without floor skips);
# it sends no 100 Trying and adds no Record-Route, so it moves one datagram fewer per call.
if runs floor; then
  start_uas
  PORT=$(free_port)
  start_floor "$PORT" "$UAS_PORT" "$SERVER_CPU" "$WORK/floor.log"
  wait_listen udp "$PORT"
  measure "bare relay" 1 "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  kill "$UAS_PID" 2>/dev/null || true
fi

# --- the load generator alone (uac -> uas, no proxy): its own ceiling on this machine
if runs direct; then
  start_uas
  measure "SIPp direct" - "$UAS_PORT" 0
  kill "$UAS_PID" 2>/dev/null || true
fi

echo
echo "| peer | workers | CPU µs/call at $FIXED_RATE cps | max calls/s (<0.1 % failed) | first step that failed | RSS / PSS MiB after the fixed run | INVITE→200 p50/p99/mean ms | BYE→200 p50/p99/mean ms |"
echo "|---|---|---|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8}' "$RESULTS"
awk -F'\t' '$1 == "rsips" {rs[$2] = $3 + 0; rm[$2] = $4 + 0}
  $1 == "bare relay" {fl = $3 + 0}
  $1 ~ /^kamailio/ && rs[$2] > 0 {printf "workers %s: rsips / %s: CPU per call %.2f (target <= 0.5), max calls/s %.2f (target >= 1)\n", $2, $1, rs[$2] / ($3 + 0), rm[$2] / (($4 + 0) ? $4 : 1); kam[$2] = $3 + 0}
  END {if (fl > 0 && kam[1] > 0) printf "bare relay / kamailio (1 worker, last allocator): %.2f\n", fl / kam[1]}' "$RESULTS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
