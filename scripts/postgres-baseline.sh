#!/usr/bin/env bash
# A throwaway PostgreSQL for `tuma bench --baseline postgres`, with default durability
# (fsync and synchronous_commit on), on a loopback port.
#
#   scripts/postgres-baseline.sh start DIR PORT   install if missing, initdb DIR, start on PORT
#   scripts/postgres-baseline.sh stop DIR         stop it (the caller removes DIR)
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?data directory}

bin_dir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

case "$cmd" in
  start)
    port=${3:?port}
    if [ -z "$(bin_dir)" ]; then
      echo "installing PostgreSQL from the Debian packages" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2
      apt-get install -y -qq postgresql >&2
    fi
    bin=$(bin_dir)
    # initdb refuses to run as root; the package creates the postgres user.
    run_as=()
    if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    "${run_as[@]}" "$bin/initdb" -D "$dir/data" --auth=trust -U postgres >/dev/null
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    echo "postgres running on 127.0.0.1:$port (data $dir/data, fsync on, synchronous_commit on)"
    ;;
  stop)
    bin=$(bin_dir)
    run_as=()
    if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi
    "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
