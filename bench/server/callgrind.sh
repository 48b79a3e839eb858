#!/usr/bin/env bash
# rsips' user-space work per call, counted by valgrind's callgrind (instructions, not time: the
# count barely moves between runs on a noisy machine, so it shows what a change saves).
# SIPp runs CALLS calls at RATE calls/s through rsips under callgrind, on the stateless or the
# stateful bench config (the same configs as stateless.sh / stateful.sh); the script prints the
# instructions of the whole process and of the message handler per call, and keeps the profile
# for `callgrind_annotate` (its path is printed).
#
# SERVER=kamailio counts Kamailio the same way, on the equivalent kamailio-*.cfg: every process
# it forks is followed and their instructions summed (its timers and other helper processes
# included, as rsips' helper threads are).
#
# Usage: bench/server/callgrind.sh stateless|stateful|dialog
#        (env: CALLS=2000 RATE=100 RSIPS=path SERVER=rsips|kamailio KAMAILIO_ALLOCATOR=tlsf)
source "$(dirname "$0")/lib.sh"

MODE=${1:-stateful}
CALLS=${CALLS:-2000}
RATE=${RATE:-100}
SERVER=${SERVER:-rsips}
need sipp:sip-tester valgrind:valgrind
[ "$SERVER" = rsips ] && RSIPS_BIN=$(rsips_bin)
OUT="${OUT:-/tmp/$SERVER-callgrind-$MODE.out}"

PORT=$(free_port)
UAS_PORT=$(free_port)
MI_PORT=$(free_port)
case "$MODE" in
  stateless)
    UAC=(-sn uac)
    UAS=(-sn uas)
    ;;
  stateful | dialog)
    UAC=(-sf "$HERE/sipp-uac-call.xml")
    UAS=(-sf "$HERE/sipp-uas-answer.xml")
    ;;
  *) echo "usage: $0 stateless|stateful|dialog" >&2; exit 2 ;;
esac
sed -e "s/@PORT@/$PORT/g" -e "s/@UAS_PORT@/$UAS_PORT/g" -e "s/@WORKERS@/1/g" \
  -e "s/@FR@/5/g" -e "s/@FR_MS@/30000/g" -e "s/@MI_PORT@/$MI_PORT/g" \
  -e "s|@CTL@|unix:$WORK/kamailio-ctl-$PORT|" "$HERE/$SERVER-$MODE.cfg" >"$WORK/server.cfg"

sipp "${UAS[@]}" -i 127.0.0.1 -p "$UAS_PORT" -nostdin >"$WORK/uas.out" 2>&1 &
PIDS+=($!)
rm -f "$OUT" "$OUT".*
if [ "$SERVER" = kamailio ]; then
  need kamailio:kamailio
  mkdir -p "$WORK/run"
  valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT.%p" \
    kamailio -f "$WORK/server.cfg" -DD -E -x "${KAMAILIO_ALLOCATOR:-tlsf}" -m 1024 -M 16 \
    -Y "$WORK/run" -w "$WORK/run" >"$WORK/server.out" 2>&1 &
else
  valgrind --tool=callgrind --callgrind-out-file="$OUT" "$RSIPS_BIN" -F -f "$WORK/server.cfg" \
    >"$WORK/server.out" 2>&1 &
fi
RSIPS_PID=$!
PIDS+=("$RSIPS_PID")
for _ in $(seq 1 300); do
  ss -Hlun "sport = :$PORT" | grep -q . && break
  sleep 0.1
done
sipp 127.0.0.1:"$PORT" "${UAC[@]}" -i 127.0.0.1 -p "$(free_port)" -r "$RATE" -m "$CALLS" \
  -nostdin -timeout 120 >"$WORK/uac.out" 2>&1 || true
failed=$(grep -o 'Failed call[^|]*|[^|]*|[ ]*[0-9]*' "$WORK/uac.out" | tail -1 | grep -o '[0-9]*$' || echo "?")
kill -TERM "$RSIPS_PID"
wait "$RSIPS_PID" 2>/dev/null || true
# Forked children write their profiles as they exit.
for _ in $(seq 1 100); do
  pgrep -f "callgrind.*$WORK/server.cfg" >/dev/null || break
  sleep 0.1
done

if [ "$SERVER" = kamailio ]; then
  total=0
  for f in "$OUT".*; do
    n=$(grep -m1 '^totals:\|^summary:' "$f" | grep -o '[0-9]*$' || echo 0)
    total=$((total + n))
  done
  echo "# $MODE: $CALLS calls at $RATE/s, failed: $failed; kamailio $(kamailio_version) -x ${KAMAILIO_ALLOCATOR:-tlsf}, $(ls "$OUT".* | wc -l) processes"
  echo "total instructions per call:    $((total / CALLS))"
  echo "profiles: $OUT.*"
  exit 0
fi
callgrind_annotate --inclusive=yes "$OUT" >"$WORK/inclusive.txt" 2>/dev/null
total=$(grep -m1 'PROGRAM TOTALS' "$WORK/inclusive.txt" | grep -o '^[0-9,]*' | tr -d ,)
handle=$(grep -m1 'rsips::server::timed_handle ' "$WORK/inclusive.txt" | grep -o '^ *[0-9,]*' | tr -d ', ' || true)
echo "# $MODE: $CALLS calls at $RATE/s, failed: $failed; rsips $(rsips_commit)"
echo "total instructions per call:    $((total / CALLS))"
[ -n "$handle" ] && echo "message handling per call:      $((handle / CALLS))"
echo "profile: $OUT"
