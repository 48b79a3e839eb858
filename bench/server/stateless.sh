#!/usr/bin/env bash
# Stateless forwarding, issue #4: SIPp uac -> proxy -> SIPp uas over UDP on 127.0.0.1, rsips and
# Kamailio in the same run, each pinned to CPU 0 with the same UDP worker count, SIPp on CPU 1.
#
#   (a) max sustainable call rate: the SIPp rate is ramped (RATES, CALLS_PER_STEP calls per step,
#       a fresh uac per step); a step holds when < 0.1 % of its calls fail and SIPp reached
#       >= 95 % of the asked rate; a step that does not hold is run once more, and the ramp stops
#       at the first step that fails twice.
#   (b) server CPU per call at FIXED_RATE: utime+stime of the whole server (all threads; for
#       Kamailio all its processes) from /proc/PID/stat before and after FIXED_CALLS calls.
#
# The same ramp is run SIPp uac -> SIPp uas with no proxy: the load generator's own ceiling; and
# through a relay with no SIP work (bench/examples/udp_floor.rs): the kernel's floor.
# Kamailio runs with the TLSF allocator (-x tlsf, its fastest here) and, unless
# KAMAILIO_ALLOCATORS says otherwise, also with the Debian build's default (q_malloc).
#
# Usage: bench/server/stateless.sh     (env: WORKERS=1 RATES="..." CALLS_PER_STEP=10000
#        FIXED_RATE=1000 FIXED_CALLS=20000 NICE=-19 KAMAILIO_ALLOCATORS="tlsf qm" RSIPS=path
#        SERVERS="rsips kamailio floor direct" (the rows to run), FLOOR_ARGS=--batch)
source "$(dirname "$0")/lib.sh"

WORKERS=${WORKERS:-1}
RATES=${RATES:-"500 1000 1500 2000 2500 3000 3500 4000 5000 6000"}
CALLS_PER_STEP=${CALLS_PER_STEP:-10000}
FIXED_RATE=${FIXED_RATE:-1000}
FIXED_CALLS=${FIXED_CALLS:-20000}
KAMAILIO_ALLOCATORS=${KAMAILIO_ALLOCATORS:-"tlsf qm"}
SERVER_CPU=0
SIPP_CPU=1

need sipp:sip-tester kamailio:kamailio ss:iproute2 bc:bc
RSIPS_BIN=$(rsips_bin)
HZ=$(getconf CLK_TCK)

echo "# stateless forwarding: $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); SIPp $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
echo "# workers=$WORKERS, server on CPU $SERVER_CPU, SIPp on CPU $SIPP_CPU, nice $NICE, load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

start_uas() {
  UAS_PORT=$(free_port)
  restart_uas
}

restart_uas() {
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sn uas -i 127.0.0.1 -p "$UAS_PORT" -nostdin \
    >"$WORK/uas-$UAS_PORT.out" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
  wait_listen udp "$UAS_PORT"
}

# One uac run, repeated (up to twice) when SIPp stopped before creating all its calls (a signal
# from outside: this machine is shared) or the uas is gone: run_uac TARGET_PORT RATE CALLS
# SERVER_PID(or 0) -> sets STEP_* values.
run_uac() {
  local try
  for try in 1 2 3; do
    if ! kill -0 "$UAS_PID" 2>/dev/null; then
      echo "  (uas on $UAS_PORT is gone; restarting it)"
      restart_uas
    fi
    run_uac_once "$@"
    # Stopped short of its schedule (not by its own -timeout) means stopped from outside.
    if kill -0 "$UAS_PID" 2>/dev/null && { [ "$STEP_CREATED" -ge "$3" ] ||
      [ "$(echo "$STEP_WALL >= $3 / $2" | bc -l)" = 1 ]; }; then
      return 0
    fi
    echo "  (step at $2 cps interrupted after $STEP_CREATED of $3 calls; running it again)"
  done
}

run_uac_once() {
  local target=$1 rate=$2 calls=$3 spid=$4 port csv t0 t1 s0 s1 d0 sd0 line
  port=$(free_port)
  csv="$WORK/uac-$port.csv"
  t0=0; [ "$spid" != 0 ] && t0=$(cpu_ticks "$spid")
  d0=$(kernel_drops)
  sd0=$(sock_drops "$target")
  s0=$(date +%s.%N)
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sn uac -i 127.0.0.1 -p "$port" "127.0.0.1:$target" \
    -m "$calls" -r "$rate" -l $((rate * 5)) -recv_timeout 5000 \
    -timeout "$((calls / rate + 40))s" -nostdin -trace_stat -stf "$csv" -fd 1 \
    >"$WORK/uac-$port.out" 2>&1 || true
  s1=$(date +%s.%N)
  t1=0; [ "$spid" != 0 ] && t1=$(cpu_ticks "$spid")
  STEP_DROPS=$(($(kernel_drops) - d0))
  STEP_TARGET_DROPS=$(($(sock_drops "$target") - sd0))
  line=$(tail -n 1 "$csv" 2>/dev/null || true)
  # CSV columns: 8 CallRate(C), 12 OutgoingCall(C), 16 SuccessfulCall(C), 58 Retransmissions(C), 70 ResponseTime1(C)
  STEP_RATE=$(echo "$line" | awk -F';' '{printf "%.0f", $8}')
  STEP_CREATED=$(echo "$line" | awk -F';' '{print $12+0}')
  STEP_OK=$(echo "$line" | awk -F';' '{print $16+0}')
  STEP_RETRANS=$(echo "$line" | awk -F';' '{print $58+0}')
  STEP_FAILED=$((calls - STEP_OK))
  STEP_WALL=$(echo "$s1 - $s0" | bc -l)
  STEP_TICKS=$((t1 - t0))
  STEP_US_PER_CALL=$(echo "$STEP_TICKS * 1000000 / $HZ / $calls" | bc -l)
  STEP_BUSY=$(echo "100 * $STEP_TICKS / $HZ / $STEP_WALL" | bc -l)
  STEP_HOLDS=no
  if [ $((STEP_FAILED * 1000)) -lt "$calls" ] && [ "${STEP_RATE:-0}" -ge $((rate * 95 / 100)) ]; then
    STEP_HOLDS=yes
  fi
}

# Datagrams the kernel dropped, machine-wide: UDP receive-buffer overflows plus the per-CPU
# backlog (loopback traffic queues there; net.core.netdev_max_backlog).
kernel_drops() {
  local udp softnet
  udp=$(awk '/^Udp:/ {if (h) print $6; else h=1}' /proc/net/snmp)
  softnet=0
  while read -r _ d _; do softnet=$((softnet + 16#$d)); done </proc/net/softnet_stat
  echo $((udp + softnet))
}

# Datagrams dropped on the receive queues of the UDP sockets bound to 127.0.0.1:PORT.
sock_drops() {
  awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" {d += $NF} END {print d + 0}' /proc/net/udp
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"

# measure NAME SERVER_PORT SERVER_PID(0: SIPp direct)
measure() {
  local name=$1 port=$2 spid=$3 r max=0 fixed=""
  run_uac "$port" 200 1000 "$spid"   # warm-up
  if [ "$spid" != 0 ]; then
    run_uac "$port" "$FIXED_RATE" "$FIXED_CALLS" "$spid"
    fixed=$(printf '%.1f' "$STEP_US_PER_CALL")
    printf '  %-16s fixed %s cps: %s calls failed, %s retrans, %s dropped (%s at the target), %s ticks, %s us/call, core %.0f%% busy\n' \
      "$name" "$FIXED_RATE" "$STEP_FAILED" "$STEP_RETRANS" "$STEP_DROPS" "$STEP_TARGET_DROPS" "$STEP_TICKS" "$fixed" "$STEP_BUSY"
    [ "$STEP_HOLDS" = yes ] || fixed="$fixed (failures: $STEP_FAILED)"
  fi
  local busy_at_max="-" us_at_max="-" first_fail="-"
  for r in $RATES; do
    run_uac "$port" "$r" "$CALLS_PER_STEP" "$spid"
    if [ "$STEP_HOLDS" = no ]; then
      # One more try: losses on this shared machine come and go (see the drop counters).
      printf '  %-16s %5s cps asked: %5s reached, %4s failed, %5s dropped (%s at the target) -> trying the step again\n' \
        "$name" "$r" "$STEP_RATE" "$STEP_FAILED" "$STEP_DROPS" "$STEP_TARGET_DROPS"
      run_uac "$port" "$r" "$CALLS_PER_STEP" "$spid"
    fi
    printf '  %-16s %5s cps asked: %5s reached, %4s failed, %5s retrans, %5s dropped (%s at the target), server core %3.0f%% busy, %6.1f us/call -> %s\n' \
      "$name" "$r" "$STEP_RATE" "$STEP_FAILED" "$STEP_RETRANS" "$STEP_DROPS" "$STEP_TARGET_DROPS" "$STEP_BUSY" "$STEP_US_PER_CALL" "$STEP_HOLDS"
    if [ "$STEP_HOLDS" = yes ]; then
      max=$r
      busy_at_max=$(printf '%.0f%%' "$STEP_BUSY")
      us_at_max=$(printf '%.1f' "$STEP_US_PER_CALL")
    else
      first_fail="$r (${STEP_RATE} reached, ${STEP_FAILED} failed, ${STEP_DROPS} datagrams dropped, ${STEP_TARGET_DROPS} of them at the target)"
      break
    fi
  done
  [ "$spid" = 0 ] && busy_at_max="-" && us_at_max="-"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$max" "$first_fail" "$busy_at_max" "$us_at_max" "${fixed:--}" >>"$RESULTS"
}


# --- rsips
if runs rsips; then
start_uas
PORT=$(free_port)
sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$WORKERS/" \
  "$HERE/rsips-stateless.cfg" >"$WORK/rsips.cfg"

start_rsips "$WORK/rsips.cfg" "$SERVER_CPU" "$WORK/rsips.log"
wait_listen udp "$PORT"
measure rsips "$PORT" "$SERVER_PID"
stop_server "$SERVER_PID"
log_problems rsips "$WORK/rsips.log"
kill "$UAS_PID" 2>/dev/null || true
fi

# --- Kamailio, per allocator
runs kamailio || KAMAILIO_ALLOCATORS=""
for alloc in $KAMAILIO_ALLOCATORS; do
  start_uas
  PORT=$(free_port)
  sed -e "s/@PORT@/$PORT/" -e "s/@UAS_PORT@/$UAS_PORT/" -e "s/@WORKERS@/$WORKERS/" \
    "$HERE/kamailio-stateless.cfg" >"$WORK/kamailio.cfg"
  start_kamailio "$WORK/kamailio.cfg" "$SERVER_CPU" "$WORK/kamailio-$alloc.log" "$alloc" 256
  wait_listen udp "$PORT"
  measure "kamailio -x $alloc" "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  log_problems "kamailio -x $alloc" "$WORK/kamailio-$alloc.log"
  kill "$UAS_PID" 2>/dev/null || true
done

# --- the kernel floor: the same traffic through a relay that does no SIP work
if runs floor; then
  start_uas
  PORT=$(free_port)
  start_floor "$PORT" "$UAS_PORT" "$SERVER_CPU" "$WORK/floor.log"
  wait_listen udp "$PORT"
  measure "bare relay" "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  kill "$UAS_PID" 2>/dev/null || true
fi

# --- the load generator alone
if runs direct; then
start_uas
measure "SIPp direct" "$UAS_PORT" 0
kill "$UAS_PID" 2>/dev/null || true
fi

echo
echo "| peer | max calls/s (<0.1 % failed) | first step that failed | server CPU busy at max | CPU µs/call at max | CPU µs/call at $FIXED_RATE cps |"
echo "|---|---|---|---|---|---|"
awk -F'\t' '{printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6}' "$RESULTS"
rs=$(awk -F'\t' '$1=="rsips" {print $6+0}' "$RESULTS")
fl=$(awk -F'\t' '$1=="bare relay" {print $6+0}' "$RESULTS")
awk -F'\t' -v rs="$rs" -v fl="${fl:-0}" '$1 ~ /^kamailio/ && rs > 0 {printf "rsips CPU per call at the fixed rate / %s: %.2f (target <= 0.5)", $1, rs / ($6+0); if (fl > 0) printf "; bare relay / %s: %.2f", $1, fl / ($6+0); printf "\n"}' "$RESULTS"
echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
