# patchtwin probe library: evaluated inside the twin, once per round, by bash.
# Each check prints one line: @@PT <index> <status> <base64 message> [key=<base64 value>]...
set +e
export LC_ALL=C
PT_TMP=$(mktemp -d 2>/dev/null || echo /tmp)
pt_b64() { printf '%s' "$1" | base64 -w0; }
pt_d() { printf '%s' "$1" | base64 -d; }
pt_emit() {
  local idx=$1 st=$2 msg=$3 line
  shift 3
  line="@@PT $idx $st $(pt_b64 "$msg")"
  while [ $# -ge 2 ]; do line="$line $1=$(pt_b64 "$2")"; shift 2; done
  printf '%s\n' "$line"
}
pt_ms() { echo $(( $(date +%s%N) / 1000000 )); }

pt_port() { # idx port proto family
  local idx=$1 port=$2 proto=$3 fam=$4 hex want files f found="" sl local rem state rest
  hex=$(printf '%04X' "$port"); want=0A; [ "$proto" = udp ] && want=07
  case $fam in ipv4) files="$proto" ;; ipv6) files="${proto}6" ;; *) files="$proto ${proto}6" ;; esac
  for f in $files; do
    [ -r "/proc/net/$f" ] || continue
    while read -r sl local rem state rest; do
      if [ "${local##*:}" = "$hex" ] && [ "$state" = "$want" ]; then found="$found $f:$local"; fi
    done < "/proc/net/$f"
  done
  if [ -n "$found" ]; then
    pt_emit "$idx" passed "$proto port $port is listening" sockets "${found# }" family "$fam"
  else
    pt_emit "$idx" failed "nothing listens on $proto port $port (family $fam)" sockets "" family "$fam"
  fi
}

pt_service() { # idx name want
  local idx=$1 name=$2 want=$3 out rc mgr state st
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    mgr=systemd; out=$(systemctl is-active "$name" 2>&1); rc=$?
  elif command -v service >/dev/null 2>&1; then
    mgr=sysv; out=$(service "$name" status 2>&1); rc=$?
  elif [ -x "/etc/init.d/$name" ]; then
    mgr=sysv; out=$("/etc/init.d/$name" status 2>&1); rc=$?
  else
    mgr=none; out="no service manager in the twin"; rc=4
  fi
  case $rc in 0) state=running ;; 1|2|3) state=stopped ;; *) state=unknown ;; esac
  if [ "$state" = "$want" ]; then st=passed; else st=failed; fi
  pt_emit "$idx" $st "service $name is $state (expected $want)" manager "$mgr" state "$state" \
    exit_code "$rc" output "$(printf '%s' "$out" | head -c 2000)"
}

pt_http() { # idx method url expected_statuses needle timeout
  local idx=$1 method=$2 url=$3 expect=$4 needle=$5 tmo=$6 t0 t1 code="" rc rest hostport path host port resp client
  t0=$(pt_ms)
  if command -v curl >/dev/null 2>&1; then
    client=curl
    code=$(curl -sS -k -X "$method" -m "$tmo" -o "$PT_TMP/body" -w '%{http_code}' "$url" 2>"$PT_TMP/err"); rc=$?
  else
    client=bash
    case $url in https://*) pt_emit "$idx" error "https needs curl in the twin" url "$url"; return ;; esac
    rest=${url#http://}; hostport=${rest%%/*}
    if [ "$rest" = "$hostport" ]; then path=/; else path=/${rest#*/}; fi
    case $hostport in
      \[*\]:*) host=${hostport%]:*}; host=${host#[}; port=${hostport##*]:} ;;
      \[*\]) host=${hostport#[}; host=${host%]}; port=80 ;;
      *:*) host=${hostport%:*}; port=${hostport##*:} ;;
      *) host=$hostport; port=80 ;;
    esac
    timeout "$tmo" bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 7
      printf "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: patchtwin-probe\r\nConnection: close\r\n\r\n" "$2" "$3" "$0" >&3
      cat <&3' "$host" "$port" "$method" "$path" >"$PT_TMP/resp" 2>"$PT_TMP/err"; rc=$?
    read -r _ code _ < "$PT_TMP/resp"
    sed '1,/^\r\{0,1\}$/d' "$PT_TMP/resp" > "$PT_TMP/body"
  fi
  t1=$(pt_ms)
  case $code in ''|000) pt_emit "$idx" failed "no HTTP answer from $url" url "$url" client "$client" \
      error "$(head -c 500 "$PT_TMP/err")" latency_ms $((t1 - t0)); return ;; esac
  local ok=0 s
  for s in $expect; do [ "$code" = "$s" ] && ok=1; done
  if [ $ok = 1 ] && [ -n "$needle" ] && ! grep -qF -- "$needle" "$PT_TMP/body"; then
    pt_emit "$idx" failed "status $code but the body lacks the expected text" status "$code" \
      latency_ms $((t1 - t0)) client "$client" body "$(head -c 500 "$PT_TMP/body")"; return
  fi
  if [ $ok = 1 ]; then
    pt_emit "$idx" passed "status $code" status "$code" latency_ms $((t1 - t0)) client "$client"
  else
    pt_emit "$idx" failed "status $code, expected one of: $expect" status "$code" \
      latency_ms $((t1 - t0)) client "$client" body "$(head -c 500 "$PT_TMP/body")"
  fi
}

pt_process() { # idx name min_count
  local idx=$1 name=$2 min=$3 n=0 pids="" p c short
  short=$(printf '%s' "$name" | head -c 15)
  for p in /proc/[0-9]*; do
    c=$(cat "$p/comm" 2>/dev/null) || continue
    if [ "$c" = "$short" ]; then n=$((n + 1)); pids="$pids ${p#/proc/}"; fi
  done
  if [ "$n" -ge "$min" ] && [ "$n" -gt 0 -o "$min" -eq 0 ]; then
    pt_emit "$idx" passed "$n process(es) named $name" count "$n" pids "${pids# }"
  else
    pt_emit "$idx" failed "$n process(es) named $name, expected at least $min" count "$n" pids ""
  fi
}

pt_package() { # idx name version want_installed(1|0)
  local idx=$1 name=$2 want_ver=$3 want=$4 out status ver="" installed=0 mgr
  if command -v dpkg-query >/dev/null 2>&1; then
    mgr=dpkg
    out=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$name" 2>/dev/null)
    status=${out%%|*}; ver=${out#*|}
    [ "${status:1:1}" = i ] && installed=1
  elif command -v rpm >/dev/null 2>&1; then
    mgr=rpm
    ver=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$name" 2>/dev/null) && installed=1
  elif command -v apk >/dev/null 2>&1; then
    mgr=apk
    ver=$(apk info -e -v "$name" 2>/dev/null) && [ -n "$ver" ] && installed=1 && ver=${ver#"$name"-}
  else
    pt_emit "$idx" error "no package manager found in the twin"; return
  fi
  [ $installed = 1 ] || ver=""
  if [ "$want" = 0 ]; then
    if [ $installed = 0 ]; then pt_emit "$idx" passed "$name is not installed" manager "$mgr" installed false
    else pt_emit "$idx" failed "$name $ver is installed" manager "$mgr" installed true version "$ver"; fi
  elif [ $installed = 0 ]; then
    pt_emit "$idx" failed "$name is not installed" manager "$mgr" installed false
  elif [ -n "$want_ver" ] && [ "$ver" != "$want_ver" ]; then
    pt_emit "$idx" failed "$name is $ver, expected $want_ver" manager "$mgr" installed true version "$ver"
  else
    pt_emit "$idx" passed "$name $ver is installed" manager "$mgr" installed true version "$ver"
  fi
}

pt_log() { # idx path pattern from_line
  local idx=$1 path=$2 pat=$3 off=$4 total count rc lines
  if [ ! -e "$path" ]; then
    pt_emit "$idx" passed "no log file at $path" lines 0 from_line "$off" matches 0; return
  fi
  total=$(wc -l < "$path")
  [ "$off" -gt "$total" ] && off=0
  count=$(tail -n +"$((off + 1))" "$path" | grep -E -c -- "$pat"); rc=$?
  if [ $rc -gt 1 ]; then pt_emit "$idx" error "cannot scan $path with pattern $pat"; return; fi
  lines=$(tail -n +"$((off + 1))" "$path" | grep -E -m 5 -- "$pat" | head -c 2000)
  if [ "$count" -eq 0 ]; then
    pt_emit "$idx" passed "no new line of $path matches" lines "$total" from_line "$off" matches 0
  else
    pt_emit "$idx" failed "$count new line(s) of $path match" lines "$total" from_line "$off" \
      matches "$count" matched "$lines"
  fi
}

pt_command() { # idx command expect_exit timeout
  local idx=$1 cmd=$2 want=$3 tmo=$4 rc
  timeout -s KILL "$tmo" sh -c "$cmd" >"$PT_TMP/cout" 2>"$PT_TMP/cerr" </dev/null; rc=$?
  if [ "$rc" = "$want" ]; then
    pt_emit "$idx" passed "exit $rc" exit_code "$rc" stdout "$(head -c 1000 "$PT_TMP/cout")" \
      stderr "$(head -c 1000 "$PT_TMP/cerr")"
  else
    pt_emit "$idx" failed "exit $rc, expected $want" exit_code "$rc" \
      stdout "$(head -c 1000 "$PT_TMP/cout")" stderr "$(head -c 1000 "$PT_TMP/cerr")"
  fi
}
