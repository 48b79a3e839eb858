# Shared helpers for the server benchmarks (sourced, not run). Nothing here is part of `cargo test`.
# Every process a script starts is recorded in PIDS and stopped by PID on exit.

set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PIDS=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/rsips-bench-XXXXXX")"

cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Whether the row $1 is among $SERVERS (all rows when SERVERS is unset).
runs() {
  [ -z "${SERVERS:-}" ] && return 0
  case " $SERVERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac
}

# Installs the Debian packages whose commands are missing (`need cmd:package ...`).
need() {
  local missing="" pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
  done
  if [ -n "$missing" ]; then
    echo "installing:$missing" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
}

# The rsips binary: $RSIPS if given, else a release build of this checkout (CARGO_TARGET_DIR
# is honoured, so a separate target dir avoids lock waits on a shared workspace).
rsips_bin() {
  if [ -n "${RSIPS:-}" ]; then echo "$RSIPS"; return; fi
  (cd "$REPO" && cargo build --release -q -p rsips >&2)
  echo "${CARGO_TARGET_DIR:-$REPO/target}/release/rsips"
}

# A port free for both TCP and UDP on 127.0.0.1.
free_port() {
  python3 - <<'PY'
import socket
for _ in range(100):
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}

# PID and all its descendants (Kamailio forks its workers; rsips is one process with threads).
tree() {
  local p=$1 c
  echo "$p"
  for c in $(pgrep -P "$p" 2>/dev/null || true); do tree "$c"; done
}

# utime+stime in clock ticks, summed over the process tree (all threads of each process).
cpu_ticks() {
  local total=0 p f
  for p in $(tree "$1"); do
    f=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    f=${f##*) }           # fields after the command name; field 3 of stat is the first here
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# Memory of the process tree in KiB: "rss pss" (VmRSS summed, and PSS summed so that pages
# shared between processes, like Kamailio's shm, are counted once).
mem_kib() {
  local rss=0 pss=0 p r s
  for p in $(tree "$1"); do
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    s=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    rss=$((rss + ${r:-0})); pss=$((pss + ${s:-0}))
  done
  echo "$rss $pss"
}

# Waits until something listens on 127.0.0.1:PORT (tcp or udp), up to 15 s.
wait_listen() {
  local proto=$1 port=$2 i
  for i in $(seq 150); do
    if [ "$proto" = udp ]; then
      ss -Hlun "sport = :$port" | grep -q . && return 0
    else
      ss -Hltn "sport = :$port" | grep -q . && return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on $proto 127.0.0.1:$port" >&2
  return 1
}

kamailio_version() { kamailio -v 2>/dev/null | awk '/^version:/ {print $3; exit}'; }
rsips_commit() { git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown; }

machine() {
  echo "$(nproc) vCPU $(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(uname -r)"
}

# Everything a script starts runs reniced (NICE, default -19) so that other work on the machine
# (compilers) disturbs it less; CPU time is still charged to the process that uses it.
NICE=${NICE:--19}
PRIO=(nice -n "$NICE")

# Starts rsips ($RSIPS_BIN) with config file $1, pinned by taskset to CPU list $2, stderr to $3;
# sets SERVER_PID.
start_rsips() {
  local cfg=$1 cpus=$2 log=$3
  "${PRIO[@]}" taskset -c "$cpus" "$RSIPS_BIN" -F -f "$cfg" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# The kernel floor (bench/examples/udp_floor.rs): a relay that moves datagrams between a SIPp uac
# and uas with no SIP work at all, one recvfrom + one sendto each. Its CPU per call is what any
# proxy on per-datagram socket calls pays before doing anything. start_floor PORT UAS_PORT CPUS LOG
# sets SERVER_PID. FLOOR_ARGS=--batch for its recvfrom-drain + sendmmsg mode.
start_floor() {
  local port=$1 uas=$2 cpus=$3 log=$4
  if [ -z "${FLOOR_BIN:-}" ]; then
    (cd "$REPO" && cargo build --release -q -p rsips-bench --example udp_floor >&2)
    FLOOR_BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/udp_floor"
  fi
  "${PRIO[@]}" taskset -c "$cpus" "$FLOOR_BIN" "$port" "$uas" ${FLOOR_ARGS:-} >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# Starts Kamailio (main process in the foreground, workers forked) with config $1, pinned to $2,
# stderr to $3, memory allocator $4 (tlsf, qm, fm), shared memory $5 MiB; sets SERVER_PID.
start_kamailio() {
  local cfg=$1 cpus=$2 log=$3 alloc=$4 shm=$5
  local run="$WORK/kamailio-run-$RANDOM$RANDOM"
  mkdir -p "$run"
  "${PRIO[@]}" taskset -c "$cpus" kamailio -f "$cfg" -DD -E -x "$alloc" -m "$shm" -M 16 \
    -Y "$run" -w "$run" >"$log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
}

# Stops the server started last (and its children) and drops it from PIDS.
stop_server() {
  local pid=$1 kids
  kids=$(tree "$pid" | tail -n +2)
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" $kids 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# A test CA and an ECDSA P-256 server certificate for 127.0.0.1 in $1 (ca.pem, server.pem,
# server.key), made with openssl like the TLS tests of bin/rsips.
make_pki() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -nodes -days 2 -subj "/CN=rsips bench CA" -newkey ec \
      -pkeyopt ec_paramgen_curve:prime256v1 -keyout ca.key -out ca.pem 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >ext.cnf
    openssl req -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
      -subj "/CN=rsips bench server" -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile ext.cnf -out server.pem 2>/dev/null
  )
}

# Writes the TLS configs of both servers into $WORK for listener port $1 and worker count $2:
# $WORK/rsips-tls.cfg, $WORK/kamailio-tls.cfg (+ its tls domains file).
tls_configs() {
  local port=$1 workers=$2 pki="$WORK/pki"
  sed -e "s|@PORT@|$port|" -e "s|@WORKERS@|$workers|" -e "s|@CERT@|$pki/server.pem|" \
    -e "s|@KEY@|$pki/server.key|" "$HERE/rsips-tls.cfg" >"$WORK/rsips-tls.cfg"
  sed -e "s|@CERT@|$pki/server.pem|" -e "s|@KEY@|$pki/server.key|" \
    "$HERE/kamailio-tls-domains.cfg" >"$WORK/kamailio-tls-domains.cfg"
  sed -e "s|@PORT@|$port|" -e "s|@WORKERS@|$workers|" \
    -e "s|@TLS_CFG@|$WORK/kamailio-tls-domains.cfg|" "$HERE/kamailio-tls.cfg" >"$WORK/kamailio-tls.cfg"
}

# Starts the named TLS server (rsips | kamailio-tlsf | kamailio-qm) on port $2, CPU $3, waits
# until it listens; sets SERVER_PID and SERVER_LOG.
start_tls_server() {
  local name=$1 port=$2 cpu=$3
  tls_configs "$port" "$WORKERS"
  SERVER_LOG="$WORK/$name-$port.log"
  case $name in
    rsips) start_rsips "$WORK/rsips-tls.cfg" "$cpu" "$SERVER_LOG" ;;
    kamailio-*) start_kamailio "$WORK/kamailio-tls.cfg" "$cpu" "$SERVER_LOG" "${name#kamailio-}" 2048 ;;
  esac
  wait_listen tcp "$port" || { cat "$SERVER_LOG" >&2; return 1; }
  sleep 1
}

log_problems() {
  local name=$1 log=$2 n
  n=$(grep -ciE 'error|warn|crit|bug|panic' "$log" || true)
  if [ "$n" -gt 0 ]; then
    echo "  $name log: $n error/warning lines, the most frequent:"
    # Grouped with numbers (ids, ports, PIDs) blanked out, so that one kind of line counts once.
    grep -iE 'error|warn|crit|bug|panic' "$log" | sed -E 's/[0-9]+/N/g' |
      sort | uniq -c | sort -rn | head -5 | sed 's/^/    /' || true
  fi
}
