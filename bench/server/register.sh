#!/usr/bin/env bash
# Registrar: SIPp sends REGISTERs, each for its own user, to the server under test over UDP on
# 127.0.0.1; rsips (usrloc + registrar, in memory) and Kamailio (usrloc db_mode 0 + registrar)
# in the same run with the same worker count; servers pinned to CPU 0, SIPp to CPU 1.
# Reports, per server: CPU per REGISTER and the growth of RSS/PSS per registered user over
# REGS registrations at RATE/s (each a new user: the table ends with REGS users), and whether
# any REGISTER failed.
#
# Usage: bench/server/register.sh   (env: WORKERS=1 RATE=1000 REGS=20000 NICE=-19
#        KAMAILIO_ALLOCATORS="tlsf qm" RSIPS=path SERVERS="rsips kamailio")
source "$(dirname "$0")/lib.sh"

WORKERS=${WORKERS:-1}
RATE=${RATE:-1000}
REGS=${REGS:-20000}
KAMAILIO_ALLOCATORS=${KAMAILIO_ALLOCATORS:-"tlsf qm"}
SERVER_CPU=0
SIPP_CPU=1

need sipp:sip-tester kamailio:kamailio ss:iproute2 bc:bc
RSIPS_BIN=$(rsips_bin)
HZ=$(getconf CLK_TCK)

echo "# registrar: $(machine); rsips $(rsips_commit); kamailio $(kamailio_version); SIPp $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
echo "# workers=$WORKERS, $REGS REGISTERs (one user each) at $RATE/s, server on CPU $SERVER_CPU, SIPp on CPU $SIPP_CPU, nice $NICE"

# One SIPp run of $2 REGISTERs at $3/s to port $1; sets OK (200s received).
register() {
  local port=$1 n=$2 rate=$3 me csv
  me=$(free_port)
  csv="$WORK/reg-$me.csv"
  "${PRIO[@]}" taskset -c "$SIPP_CPU" sipp -sf "$HERE/sipp-uac-register.xml" -i 127.0.0.1 \
    -p "$me" "127.0.0.1:$port" -m "$n" -r "$rate" -l $((rate * 5)) -recv_timeout 5000 \
    -timeout "$((n / rate + 40))s" -nostdin -trace_stat -stf "$csv" -fd 1 \
    >"$WORK/reg-$me.out" 2>&1 || true
  OK=$(tail -n 1 "$csv" 2>/dev/null | awk -F';' '{print $16+0}')
}

# measure NAME PORT PID: a warm-up of 1,000, then REGS fresh users; prints the row.
measure() {
  local name=$1 port=$2 pid=$3 t0 t1 m0 m1
  register "$port" 1000 500
  sleep 1
  read -r rss0 pss0 <<<"$(mem_kib "$pid")"
  t0=$(cpu_ticks "$pid")
  register "$port" "$REGS" "$RATE"
  t1=$(cpu_ticks "$pid")
  sleep 1
  read -r rss1 pss1 <<<"$(mem_kib "$pid")"
  printf '%-18s %6s of %6s answered 200   %7.1f us CPU per REGISTER   RSS +%6.0f bytes/user   PSS +%6.0f bytes/user\n' \
    "$name" "$OK" "$REGS" "$(echo "($t1 - $t0) * 1000000 / $HZ / $REGS" | bc -l)" \
    "$(echo "($rss1 - $rss0) * 1024 / $REGS" | bc -l)" "$(echo "($pss1 - $pss0) * 1024 / $REGS" | bc -l)"
}

if runs rsips; then
  PORT=$(free_port)
  sed -e "s/@PORT@/$PORT/" -e "s/@WORKERS@/$WORKERS/" "$HERE/rsips-register.cfg" >"$WORK/rsips.cfg"
  start_rsips "$WORK/rsips.cfg" "$SERVER_CPU" "$WORK/rsips.log"
  wait_listen udp "$PORT"
  measure rsips "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  log_problems rsips "$WORK/rsips.log"
fi

runs kamailio || KAMAILIO_ALLOCATORS=""
for alloc in $KAMAILIO_ALLOCATORS; do
  PORT=$(free_port)
  sed -e "s/@PORT@/$PORT/" -e "s/@WORKERS@/$WORKERS/" "$HERE/kamailio-register.cfg" >"$WORK/kamailio.cfg"
  start_kamailio "$WORK/kamailio.cfg" "$SERVER_CPU" "$WORK/kamailio-$alloc.log" "$alloc" 1024
  wait_listen udp "$PORT"
  sleep 1
  measure "kamailio -x $alloc" "$PORT" "$SERVER_PID"
  stop_server "$SERVER_PID"
  log_problems "kamailio-$alloc" "$WORK/kamailio-$alloc.log"
done
