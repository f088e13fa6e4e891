#!/usr/bin/env bash
# A throwaway PostgreSQL for `tuma bench --baseline postgres`, with default durability
# (fsync and synchronous_commit on), on a loopback port; or, for `--baseline
# postgres-replicated`, a primary and two streaming standbys of which one must have flushed a
# commit before it returns (`synchronous_standby_names = 'ANY 1 (standby1, standby2)'`: a quorum
# of copies, like Raft's).
#
#   scripts/postgres-baseline.sh start DIR PORT      install if missing, initdb DIR, start on PORT
#   scripts/postgres-baseline.sh start-replicated DIR PORT PORT1 PORT2
#                                                    the same, plus standbys on PORT1 and PORT2,
#                                                    returning once both stream as quorum standbys
#   scripts/postgres-baseline.sh stop DIR            stop it, or all three (the caller removes DIR)
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}

bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

install_if_missing() {
  if [ -z "$(bin_dir)" ]; then
    echo "installing PostgreSQL from the Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
  fi
}

# initdb refuses to run as root; the package creates the postgres user.
run_as=()
if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi

start_primary() { # DIR PORT [a postgresql.conf line]
  local dir=$1 port=$2 setting=${3:-}
  local bin
  bin=$(bin_dir)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
  "${run_as[@]}" "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
  if [ -n "$setting" ]; then
    echo "$setting" | "${run_as[@]}" tee -a "$dir/data/postgresql.conf" >/dev/null
  fi
  "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}

case "$cmd" in
  start)
    port=${3:?port}
    install_if_missing
    start_primary "$dir" "$port"
    echo "postgres running on 127.0.0.1:$port (data $dir/data, fsync on, synchronous_commit on)"
    ;;
  start-replicated)
    port=${3:?port} port1=${4:?standby1 port} port2=${5:?standby2 port}
    install_if_missing
    bin=$(bin_dir)
    start_primary "$dir" "$port" "synchronous_standby_names = 'ANY 1 (standby1, standby2)'"
    n=1
    for standby_port in "$port1" "$port2"; do
      name=standby$n
      "${run_as[@]}" "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres \
        -D "$dir/$name" -X stream -R >/dev/null
      echo "primary_conninfo = 'host=127.0.0.1 port=$port user=postgres application_name=$name'" |
        "${run_as[@]}" tee -a "$dir/$name/postgresql.auto.conf" >/dev/null
      "${run_as[@]}" "$bin/pg_ctl" -D "$dir/$name" -l "$dir/$name.log" -w \
        -o "-p $standby_port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
      n=$((n + 1))
    done
    for _ in $(seq 1 100); do
      quorum=$("${run_as[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc \
        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum' AND state = 'streaming'")
      [ "$quorum" = 2 ] && break
      sleep 0.1
    done
    if [ "$quorum" != 2 ]; then
      echo "the standbys never streamed as quorum standbys ($quorum of 2)" >&2
      exit 1
    fi
    echo "postgres primary on 127.0.0.1:$port, quorum standbys on $port1 and $port2 (ANY 1, fsync on)"
    ;;
  stop)
    bin=$(bin_dir)
    for data in "$dir/data" "$dir/standby1" "$dir/standby2"; do
      [ -d "$data" ] && "${run_as[@]}" "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null || true
    done
    ;;
  *)
    echo "usage: $0 start DIR PORT | start-replicated DIR PORT PORT1 PORT2 | stop DIR" >&2
    exit 2
    ;;
esac
