# shellcheck shell=bash
# patchtwin service library: evaluated inside a twin by bash (readiness and snapshots).
# One state vocabulary whatever runs a service; Python maps (manager, exit code, output)
# to running / stopped / failed / unknown (patchtwin.twins.service_states.service_state).
set +e
export LC_ALL=C
pt_b64() { printf '%s' "$1" | head -c 500 | base64 -w0; }
pt_systemd() { [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null 2>&1; }

pt_manager() { # name declared-manager -> the manager that runs it here
  case $2 in
    auto) if pt_systemd; then echo systemd
          elif [ -x "/etc/init.d/$1" ]; then echo sysv
          else echo none; fi ;;
    *) echo "$2" ;;
  esac
}

pt_start() { # name manager command-b64
  local name=$1 mgr=$2 cmd pidf="/run/patchtwin/$1.pid"
  case $mgr in
    systemd) systemctl start "$name" >/dev/null 2>&1 ;;
    sysv) if command -v service >/dev/null 2>&1; then service "$name" start >/dev/null 2>&1
          else "/etc/init.d/$name" start >/dev/null 2>&1; fi ;;
    command)
      mkdir -p /run/patchtwin /var/log/patchtwin
      if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then return 0; fi
      cmd=$(printf '%s' "$3" | base64 -d)
      setsid sh -c "$cmd" </dev/null >>"/var/log/patchtwin/$name.log" 2>&1 &
      echo $! > "$pidf" ;;
    *) return 4 ;;
  esac
}

pt_status() { # name manager -> "svc<TAB>name<TAB>manager<TAB>rc<TAB>b64(output)"
  local name=$1 mgr=$2 out rc pid pidf="/run/patchtwin/$1.pid"
  case $mgr in
    systemd) out=$(systemctl is-active "$name" 2>&1); rc=$? ;;
    sysv) if command -v service >/dev/null 2>&1; then out=$(timeout 10 service "$name" status 2>&1); rc=$?
          else out=$(timeout 10 "/etc/init.d/$name" status 2>&1); rc=$?; fi ;;
    command)
      if [ -f "$pidf" ]; then
        pid=$(cat "$pidf")
        if kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
          rc=0; out="pid $pid"
        else rc=1; out="pid $pid exited; log: /var/log/patchtwin/$name.log"; fi
      else rc=3; out="not started"; fi ;;
    *) rc=4; out="no service manager runs $name here" ;;
  esac
  printf 'svc\t%s\t%s\t%s\t%s\n' "$name" "$mgr" "$rc" "$(pt_b64 "$out")"
}

pt_listening() { # port proto(tcp|udp) -> exit 0 when something listens (IPv4 or IPv6)
  local hex want f laddr state
  hex=$(printf '%04X' "$1"); want=0A; [ "$2" = udp ] && want=07
  for f in "/proc/net/$2" "/proc/net/${2}6"; do
    [ -r "$f" ] || continue
    while read -r _ laddr _ state _; do
      [ "${laddr##*:}" = "$hex" ] && [ "$state" = "$want" ] && return 0
    done < "$f"
  done
  return 1
}

pt_http_code() { # url timeout -> prints the HTTP status code (curl, else bash /dev/tcp)
  local url=$1 tmo=$2 rest hostport path host port
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -m "$tmo" -w '%{http_code}' "$url"; return
  fi
  rest=${url#http://}; hostport=${rest%%/*}
  if [ "$rest" = "$hostport" ]; then path=/; else path=/${rest#*/}; fi
  case $hostport in
    \[*\]:*) host=${hostport%]:*}; host=${host#[}; port=${hostport##*]:} ;;
    \[*\]) host=${hostport#[}; host=${host%]}; port=80 ;;
    *:*) host=${hostport%:*}; port=${hostport##*:} ;;
    *) host=$hostport; port=80 ;;
  esac
  # shellcheck disable=SC2016 # the inner program is single-quoted on purpose: its arguments are $0..$2
  timeout "$tmo" bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
    printf "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" "$0" >&3
    read -r _ code _ <&3; printf "%s" "$code"' "$host" "$port" "$path" 2>/dev/null
}
