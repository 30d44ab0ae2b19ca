#!/usr/bin/env bash
# LMTP intake and notifications with one sled daemon, then one and two
# daemons sharing one PostgreSQL, measured the same way in one run so the
# ratios mean something on a noisy machine (README "Measured performance"). Starts a throwaway cluster on
# 127.0.0.1 (Debian's postgresql; as root the server runs as `postgres`),
# release daemons on fixed loopback ports, and stops everything at the end.
#   scripts/pg-bench.sh [MESSAGES] [ORDERS]
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-3000}
ORDERS=${2:-3000}
cargo build --release --locked -q
E=$PWD/target/release/edesk
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
T=$(mktemp -d)
chmod 755 "$T"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$T"
PORT=55499
as_pg "$BIN/initdb" -A trust -U postgres -D "$T/pg" >/dev/null
as_pg "$BIN/pg_ctl" -w -D "$T/pg" -l "$T/pg.log" -o "-c listen_addresses=127.0.0.1 -p $PORT -k $T" start >/dev/null
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  as_pg "$BIN/pg_ctl" -w -m fast -D "$T/pg" stop >/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
db() { psql -q -h 127.0.0.1 -p $PORT -U postgres -c "CREATE DATABASE $1"; }
daemon() { # NAME DB N (DB "-": the embedded sled store)
  mkdir -p "$T/$1"
  local store=(EDESK_STORE__BACKEND=postgres EDESK_STORE__URL=postgres://postgres@127.0.0.1:$PORT/$2)
  [ "$2" = - ] && store=(EDESK_STORE__BACKEND=sled)
  env "${store[@]}" \
  EDESK_HTTP__BIND=127.0.0.1:$((7180 + $3)) EDESK_LMTP__BIND=127.0.0.1:$((2580 + $3)) \
  EDESK_LOG=warn "$E" --data-dir "$T/$1" serve >"$T/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf 127.0.0.1:$((7180 + $3))/readyz >/dev/null && return; sleep 0.1; done
  echo "daemon $1 did not start"; cat "$T/$1.log"; exit 1
}
intake() { # N_DAEMONS
  local per=$((MESSAGES / $1)) clients=$((8 / $1)) jobs=()
  for n in $(seq 1 "$1"); do
    "$E" bench intake --lmtp 127.0.0.1:$((2580 + n)) --http 127.0.0.1:$((7180 + n)) \
      --clients $clients --messages $per 2>&1 | grep "accepted messages/s" | sed "s/^/  daemon $n: /" &
    jobs+=($!)
  done
  wait "${jobs[@]}"
}
daemon s - 1
echo "sled, one daemon, intake ($MESSAGES messages, 8 clients):"; intake 1
echo "sled, one daemon, notifications:"; python3 scripts/post-orders.py 127.0.0.1:7181 "$ORDERS" 59000000
kill "${pids[0]}"; pids=(); sleep 1
db one; daemon a one 1
echo "one daemon, intake ($MESSAGES messages, 8 clients):"; intake 1
echo "one daemon, notifications:"; python3 scripts/post-orders.py 127.0.0.1:7181 "$ORDERS" 60000000
db two; kill "${pids[0]}"; pids=(); sleep 1
daemon a two 1; daemon b two 2
echo "two daemons, intake ($MESSAGES messages, 4 clients each):"; intake 2
echo "two daemons, notifications:"; python3 scripts/post-orders.py 127.0.0.1:7181,127.0.0.1:7182 "$ORDERS" 61000000
