#!/usr/bin/env bash
# A throwaway Kannel (bearerbox + smsbox + fakesmsc) on loopback, for the SMS channel's
# end-to-end test. Runs as the calling user; everything lives in DIR (no /var writes).
# Needs the Debian packages: scripts/install-kannel.sh installs them.
#
#   kannel-local.sh start DIR GET_URL   fill kannel.conf.template into DIR/kannel.conf with
#                                       free ports, start the three processes, wait until
#                                       ready, write DIR/env (ports, URLs, pids)
#   kannel-local.sh mo DIR LINE         inject one inbound (MO) SMS through fakesmsc, e.g.
#                                       "255700000001 15555 text BAL 1234"
#   kannel-local.sh mt-log DIR          print what the fake SMSC received (the MT SMS)
#   kannel-local.sh stop DIR            shut everything down (the caller removes DIR)
#
# GET_URL is where smsbox sends each MO SMS, e.g.
#   'http://127.0.0.1:8080/sms/inbound?from=%p&to=%P&text=%b&id=%I'
# Overridable: KANNEL_USERNAME, KANNEL_PASSWORD, KANNEL_ADMIN_PASSWORD, and the ports
# KANNEL_ADMIN_PORT, KANNEL_SMSBOX_PORT, KANNEL_FAKESMSC_PORT, KANNEL_SENDSMS_PORT.
# See scripts/kannel/NOTES.md for what each piece does.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cmd=${1:?start|mo|mt-log|stop}
dir=${2:?directory}

BEARERBOX=${BEARERBOX:-/usr/sbin/bearerbox}
SMSBOX=${SMSBOX:-/usr/sbin/smsbox}
FAKESMSC=${FAKESMSC:-/usr/lib/kannel/test/fakesmsc}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sed replacement-side escaping for \ & and the | delimiter
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

# wait_for SECONDS COMMAND...: retries COMMAND every 0.1 s
wait_for() {
  local tries=$(( $1 * 10 )); shift
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    if [ "$tries" -le 0 ]; then return 1; fi
    sleep 0.1
  done
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

status_txt() { curl -sf "http://127.0.0.1:$ADMIN_PORT/status.txt?password=$ADMIN_PASSWORD"; }

case "$cmd" in
  start)
    get_url=${3:?GET_URL}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    ADMIN_PORT=${KANNEL_ADMIN_PORT:-$(free_port)}
    SMSBOX_PORT=${KANNEL_SMSBOX_PORT:-$(free_port)}
    FAKESMSC_PORT=${KANNEL_FAKESMSC_PORT:-$(free_port)}
    SENDSMS_PORT=${KANNEL_SENDSMS_PORT:-$(free_port)}
    USERNAME=${KANNEL_USERNAME:-tuma}
    PASSWORD=${KANNEL_PASSWORD:-tuma-secret}
    ADMIN_PASSWORD=${KANNEL_ADMIN_PASSWORD:-tuma-admin}
    sed -e "s|@DIR@|$(sed_escape "$dir")|g" \
        -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" -e "s|@SMSBOX_PORT@|$SMSBOX_PORT|g" \
        -e "s|@FAKESMSC_PORT@|$FAKESMSC_PORT|g" -e "s|@SENDSMS_PORT@|$SENDSMS_PORT|g" \
        -e "s|@USERNAME@|$(sed_escape "$USERNAME")|g" \
        -e "s|@PASSWORD@|$(sed_escape "$PASSWORD")|g" \
        -e "s|@ADMIN_PASSWORD@|$(sed_escape "$ADMIN_PASSWORD")|g" \
        -e "s|@GET_URL@|$(sed_escape "$get_url")|g" \
        "$here/kannel.conf.template" > "$dir/kannel.conf"

    # 1. bearerbox. Ready when its log says "Start-up done" (all listeners bound then;
    #    the admin port alone opens a little earlier).
    "$BEARERBOX" -v 1 "$dir/kannel.conf" >"$dir/bearerbox.stderr" 2>&1 &
    echo $! > "$dir/bearerbox.pid"
    if ! wait_for 20 grep -q 'MAIN: Start-up done' "$dir/bearerbox.log"; then
      echo "bearerbox did not start, see $dir/bearerbox.stderr" >&2; exit 1
    fi
    # 2. smsbox (panics at once if bearerbox is not there). Ready when connected.
    "$SMSBOX" -v 1 "$dir/kannel.conf" >"$dir/smsbox.stderr" 2>&1 &
    echo $! > "$dir/smsbox.pid"
    if ! wait_for 20 grep -q 'Connected to bearerbox' "$dir/smsbox.log"; then
      echo "smsbox did not start, see $dir/smsbox.stderr" >&2; exit 1
    fi
    # 3. fakesmsc in interactive mode: no <msg> argument, so it sends each line of
    #    its stdin as an MO SMS. stdin is a FIFO kept open by a sleeper process (EOF on
    #    stdin ends fakesmsc). It logs to stderr only; MT SMS show as "Got message N: <...>".
    rm -f "$dir/fakesmsc.in"; mkfifo "$dir/fakesmsc.in"
    sleep 2147483647 > "$dir/fakesmsc.in" &
    echo $! > "$dir/fifo-holder.pid"
    "$FAKESMSC" -H 127.0.0.1 -r "$FAKESMSC_PORT" -i 0 < "$dir/fakesmsc.in" \
      >"$dir/fakesmsc.stdout" 2>"$dir/fakesmsc.stderr" &
    echo $! > "$dir/fakesmsc.pid"
    if ! wait_for 20 sh -c "curl -sf 'http://127.0.0.1:$ADMIN_PORT/status.txt?password=$ADMIN_PASSWORD' | grep -q 'FAKE:$FAKESMSC_PORT (online'"; then
      echo "fakesmsc did not connect, see $dir/fakesmsc.stderr" >&2; exit 1
    fi
    cat > "$dir/env" <<EOF
KANNEL_DIR=$dir
KANNEL_ADMIN_PORT=$ADMIN_PORT
KANNEL_SMSBOX_PORT=$SMSBOX_PORT
KANNEL_FAKESMSC_PORT=$FAKESMSC_PORT
KANNEL_SENDSMS_PORT=$SENDSMS_PORT
KANNEL_SENDSMS_URL=http://127.0.0.1:$SENDSMS_PORT/cgi-bin/sendsms
KANNEL_USERNAME=$USERNAME
KANNEL_PASSWORD=$PASSWORD
KANNEL_ADMIN_PASSWORD=$ADMIN_PASSWORD
KANNEL_BEARERBOX_PID=$(cat "$dir/bearerbox.pid")
KANNEL_SMSBOX_PID=$(cat "$dir/smsbox.pid")
KANNEL_FAKESMSC_PID=$(cat "$dir/fakesmsc.pid")
EOF
    cat "$dir/env"
    ;;

  mo)
    line=${3:?LINE}
    # fakesmsc reads stdin with select()+fgets(): a second line that is already in its
    # stdio buffer is only sent when more input arrives. So: one line per call, and wait
    # until fakesmsc has logged it as sent before returning. Keep lines < 255 bytes.
    before=$(grep -c 'fakesmsc: sent message' "$dir/fakesmsc.stderr" || true)
    printf '%s\n' "$line" > "$dir/fakesmsc.in"
    if ! wait_for 10 sh -c "[ \$(grep -c 'fakesmsc: sent message' '$dir/fakesmsc.stderr') -gt $before ]"; then
      echo "fakesmsc did not send the line" >&2; exit 1
    fi
    ;;

  mt-log)
    sed -n 's/^.*Got message [0-9]*: <\(.*\)>$/\1/p' "$dir/fakesmsc.stderr"
    ;;

  stop)
    stages="TERM KILL"   # after a failed start (no env file): no admin shutdown
    if [ -f "$dir/env" ]; then
      stages="NONE TERM KILL"
      # shellcheck disable=SC1091
      . "$dir/env"
      # Orderly: bearerbox tells smsbox to die, and fakesmsc exits on the EOF.
      curl -sf "http://127.0.0.1:$KANNEL_ADMIN_PORT/shutdown?password=$KANNEL_ADMIN_PASSWORD" \
        >/dev/null 2>&1 || true
    fi
    pids=()
    for name in fakesmsc smsbox bearerbox; do
      if [ -f "$dir/$name.pid" ]; then pids+=("$(cat "$dir/$name.pid")"); fi
    done
    # Give the orderly shutdown up to 10 s (it takes about 2-3 s), then TERM, then KILL.
    for sig in $stages; do
      left=()
      for pid in "${pids[@]}"; do if alive "$pid"; then left+=("$pid"); fi; done
      [ "${#left[@]}" -gt 0 ] || break
      if [ "$sig" != NONE ]; then kill -"$sig" "${left[@]}" 2>/dev/null || true; fi
      for _ in $(seq 1 100); do
        any=0
        for pid in "${left[@]}"; do if alive "$pid"; then any=1; fi; done
        [ "$any" = 1 ] || break
        sleep 0.1
      done
    done
    if [ -f "$dir/fifo-holder.pid" ]; then
      kill "$(cat "$dir/fifo-holder.pid")" 2>/dev/null || true
    fi
    rm -f "$dir"/{fakesmsc,smsbox,bearerbox,fifo-holder}.pid
    ;;

  *)
    echo "usage: $0 start DIR GET_URL | mo DIR LINE | mt-log DIR | stop DIR" >&2
    exit 2
    ;;
esac
