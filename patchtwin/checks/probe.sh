# shellcheck shell=bash
# The inner `bash -c` programs are single-quoted on purpose (their arguments arrive as $0..$5), and
# each check set aside runs in a subshell with a PT_TMP of its own on purpose:
# shellcheck disable=SC2016,SC2030,SC2031
# patchtwin probe library: evaluated inside the twin by bash, one exec per probe round.
# Each check prints one JSON line: {"i": <index>, "s": "passed|failed|error", "m": <message>,
# "e": {<evidence>}}. Arguments arrive single-quoted by the engine: bash never parses them.
# Few forks: JSON, timing (EPOCHREALTIME) and regex matching ([[ =~ ]], POSIX ERE) are builtins.
set +e +o pipefail
set -f
export LC_ALL=C
PT_TMP=$(mktemp -d 2>/dev/null) || { PT_TMP=/tmp/patchtwin-probe.$$; mkdir -p "$PT_TMP"; }
PT_CTRL=()
PT_ASIDE=()
for __c in 01 02 03 04 05 06 07 08 0b 0c 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f; do
  # shellcheck disable=SC2059 # the format is the escape that makes the control character
  printf -v __ch "\\x$__c"; PT_CTRL+=("$__c:$__ch")
done

pt_j() { # $1 → PT_J, a JSON string literal
  local s=$1 pair
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\r'/\\r}; s=${s//$'\t'/\\t}
  if [[ $s == *[$'\x01'-$'\x1f']* ]]; then
    for pair in "${PT_CTRL[@]}"; do s=${s//"${pair#*:}"/\\u00${pair%%:*}}; done
  fi
  PT_J="\"$s\""
}

pt_emit() { # idx status message [key value]...; key `#k`: a number or boolean, `@k`: newline-separated list
  local line k v item first=1 items
  pt_j "$3"; line="{\"i\":$1,\"s\":\"$2\",\"m\":$PT_J,\"e\":{"
  shift 3
  while [ $# -ge 2 ]; do
    k=$1; v=$2; shift 2
    [ $first = 1 ] || line+=","
    first=0
    case $k in
      \#*) k=${k#\#}
        if [[ $v =~ ^(-?(0|[1-9][0-9]*)(\.[0-9]+)?|true|false)$ ]]; then line+="\"$k\":$v"; else pt_j "$v"; line+="\"$k\":$PT_J"; fi ;;
      @*) k=${k#@}; line+="\"$k\":["; items=""
        if [ -n "$v" ]; then
          while IFS= read -r item; do pt_j "$item"; items+="${items:+,}$PT_J"; done <<< "$v"
        fi
        line+="$items]" ;;
      *) pt_j "$v"; line+="\"$k\":$PT_J" ;;
    esac
  done
  printf '%s}}\n' "$line"
}

pt_us() { PT_US=${EPOCHREALTIME/./}; }

pt_aside() { # idx check-function args...: the check in the background, with scratch files of its own
  local out="$PT_TMP/aside.$1.out" own="$PT_TMP/aside.$1"
  shift
  PT_ASIDE+=("$out")
  ( PT_TMP=$own; mkdir -p "$PT_TMP" && "$@" > "$out" ) &
}

pt_gather() { # waits for the checks set aside and prints their lines
  wait
  cat "${PT_ASIDE[@]}" 2>/dev/null
  PT_ASIDE=()
}
pt_head() { # file bytes → PT_H (at most that many bytes, NULs dropped)
  PT_H=""
  [ -r "$1" ] && IFS= read -r -d '' -N "$2" PT_H < "$1" 2>/dev/null
  return 0
}
pt_decode_v4() { # 0100007F → 127.0.0.1
  local h=$1
  PT_A="$((16#${h:6:2})).$((16#${h:4:2})).$((16#${h:2:2})).$((16#${h:0:2}))"
}
pt_decode_v6() { # /proc/net/tcp6 address: four little-endian 32-bit words
  local h=$1 w out="" i
  case $h in
    00000000000000000000000000000000) PT_A="::"; return ;;
    00000000000000000000000001000000) PT_A="::1"; return ;;
    0000000000000000FFFF0000*) pt_decode_v4 "${h:24:8}"; PT_A="::ffff:$PT_A"; return ;;
  esac
  for i in 0 8 16 24; do
    w=${h:$i:8}
    out+="${w:6:2}${w:4:2}:${w:2:2}${w:0:2}:"
  done
  PT_A=${out%:}
}

pt_port() { # idx port proto family listening(1|0) connect(1|0)
  local idx=$1 port=$2 proto=$3 fam=$4 listening=$5 connect=$6 hex want files f laddr state
  local sockets="" host="" addr
  printf -v hex '%04X' "$port"; want=0A; [ "$proto" = udp ] && want=07
  case $fam in ipv4) files="$proto" ;; ipv6) files="${proto}6" ;; *) files="$proto ${proto}6" ;; esac
  for f in $files; do
    [ -r "/proc/net/$f" ] || continue
    while read -r _ laddr _ state _; do
      # shellcheck disable=SC2015 # either test failing skips the line
      [ "${laddr##*:}" = "$hex" ] && [ "$state" = "$want" ] || continue
      if [ "$f" = "$proto" ]; then
        pt_decode_v4 "${laddr%:*}"; addr="$PT_A:$port"
        [ -z "$host" ] && { [ "$PT_A" = 0.0.0.0 ] && host=127.0.0.1 || host=$PT_A; }
      else
        pt_decode_v6 "${laddr%:*}"; addr="[$PT_A]:$port"
        [ -z "$host" ] && { [ "$PT_A" = :: ] && host=::1 || host=$PT_A; }
      fi
      sockets+="${sockets:+$'\n'}$f $addr"
    done < "/proc/net/$f"
  done
  local what="$proto port $port" fams="${fam/either/any}"
  [ "$fams" = any ] || what+=" ($fams)"
  if [ "$listening" = 0 ]; then
    if [ -z "$sockets" ]; then pt_emit "$idx" passed "nothing listens on $what" @sockets "" family "$fams"
    else pt_emit "$idx" failed "something listens on $what" @sockets "$sockets" family "$fams"; fi
    return
  fi
  if [ -z "$sockets" ]; then
    pt_emit "$idx" failed "nothing listens on $what" @sockets "" family "$fams"; return
  fi
  if [ "$connect" = 1 ]; then
    local t0 rc
    pt_us; t0=$PT_US
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>"$PT_TMP/cerr"; rc=$?
    pt_us
    if [ $rc != 0 ]; then
      pt_head "$PT_TMP/cerr" 300
      case $PT_H in *"Cannot assign requested address"*)
        pt_emit "$idx" error "$what listens, but the twin has no address $host to connect from" \
          @sockets "$sockets" family "$fams" "#connected" false address "$host" error "$PT_H"
        return ;;
      esac
      pt_emit "$idx" failed "$what listens but a connection to $host was refused or timed out" \
        @sockets "$sockets" family "$fams" "#connected" false address "$host" error "$PT_H"
      return
    fi
    pt_emit "$idx" passed "$what listens and accepts connections" @sockets "$sockets" family "$fams" \
      "#connected" true address "$host" "#connect_us" $((PT_US - t0))
    return
  fi
  pt_emit "$idx" passed "$what is listening" @sockets "$sockets" family "$fams"
}

pt_service_manager() { # name wanted → PT_MGR
  local name=$1
  if [ "$2" != auto ]; then PT_MGR=$2; return; fi
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then PT_MGR=systemd
  elif command -v supervisorctl >/dev/null 2>&1 && timeout 10 supervisorctl status "$name" 2>/dev/null \
      | grep -q "^${name}[[:space:]]"; then PT_MGR=supervisor
  elif command -v sv >/dev/null 2>&1 && { [ -d "/etc/service/$name" ] || [ -d "/etc/sv/$name" ]; }; then PT_MGR=runit
  elif command -v rc-service >/dev/null 2>&1 && [ -d /run/openrc ]; then PT_MGR=openrc
  elif [ -x "/etc/init.d/$name" ]; then PT_MGR=sysv
  else PT_MGR=none
  fi
}

pt_service() { # idx name want_state(running|stopped|-) want_enabled(1|0|-) manager
  local idx=$1 name=$2 want=$3 want_en=$4 out="" rc=4 state=unknown enabled=unknown f
  pt_service_manager "$name" "$5"
  case $PT_MGR in
    systemd)
      out=$(timeout 10 systemctl is-active "$name" 2>&1); rc=$?
      [ $rc = 0 ] && state=running || state=stopped
      case $(timeout 10 systemctl is-enabled "$name" 2>/dev/null) in
        enabled|enabled-runtime|static|alias|indirect|generated) enabled=true ;; *) enabled=false ;;
      esac ;;
    supervisor)
      out=$(timeout 10 supervisorctl status "$name" 2>&1); rc=$?
      case $out in *RUNNING*) state=running ;; *) state=stopped ;; esac
      enabled=true
      grep -rqsE "^\s*autostart\s*=\s*false" /etc/supervisor/conf.d/"$name".conf && enabled=false ;;
    runit)
      out=$(timeout 10 sv status "$name" 2>&1); rc=$?
      case $out in run:*) state=running ;; *) state=stopped ;; esac
      [ -e "/etc/service/$name" ] && enabled=true || enabled=false ;;
    openrc)
      out=$(timeout 10 rc-service "$name" status 2>&1); rc=$?
      [ $rc = 0 ] && state=running || state=stopped
      set +f
      [ -n "$(ls /etc/runlevels/*/"$name" 2>/dev/null)" ] && enabled=true || enabled=false
      set -f ;;
    sysv)
      out=$(timeout 10 "/etc/init.d/$name" status 2>&1 </dev/null); rc=$?
      case $rc in 0) state=running ;; 1|2|3) state=stopped ;; *) state=unknown ;; esac
      enabled=false
      set +f
      for f in /etc/rc[2345].d/S[0-9][0-9]"$name"; do [ -e "$f" ] && enabled=true; done
      set -f ;;
    none) out="no service manager in the twin knows $name" ;;
  esac
  local st=passed msg="service $name is $state"
  if [ "$want" != - ] && [ "$state" != "$want" ]; then st=failed; msg+=" (expected $want)"; fi
  if [ "$want_en" != - ]; then
    local wanted=false; [ "$want_en" = 1 ] && wanted=true
    msg+=", enabled: $enabled"
    [ "$enabled" = "$wanted" ] || { st=failed; msg+=" (expected $wanted)"; }
  fi
  printf '%s' "$out" > "$PT_TMP/sout"; pt_head "$PT_TMP/sout" 1000
  pt_emit "$idx" $st "$msg" manager "$PT_MGR" state "$state" "#enabled" "$enabled" "#exit_code" "$rc" output "$PT_H"
}

# pt_fetch method url headers(\n-separated "K: v") bodyfile(or "") timeout
#   → PT_CODE (status, or "" for no answer), PT_FETCH_US (the exchange, as the client timed it),
#     PT_CLIENT; the body in $PT_TMP/body, errors in $PT_TMP/err
pt_fetch() {
  local method=$1 url=$2 headers=$3 bodyfile=$4 tmo=$5 rest hostport path host port h
  PT_CODE=""; PT_FETCH_US=0
  : > "$PT_TMP/body"
  if command -v curl >/dev/null 2>&1; then
    PT_CLIENT=curl
    local out args=(-sS -k -X "$method" -m "$tmo" -o "$PT_TMP/body" -w '%{http_code} %{time_total}')
    [ "$method" = HEAD ] && args=(-sS -k -I -m "$tmo" -o "$PT_TMP/body" -w '%{http_code} %{time_total}')
    if [ -n "$headers" ]; then
      while IFS= read -r h; do args+=(-H "$h"); done <<< "$headers"
    fi
    [ -n "$bodyfile" ] && args+=(--data-binary "@$bodyfile")
    out=$(curl "${args[@]}" "$url" 2>"$PT_TMP/err")
    PT_CODE=${out%% *}; out=${out#* }
    [ "$PT_CODE" = 000 ] && PT_CODE=""
    local sec=${out%%.*} frac=${out#*.}000000
    PT_FETCH_US=$((10#$sec * 1000000 + 10#${frac:0:6}))
    return
  fi
  PT_CLIENT=bash
  case $url in https://*) echo "https needs curl in the twin" > "$PT_TMP/err"; return ;; esac
  rest=${url#http://}; hostport=${rest%%/*}
  if [ "$rest" = "$hostport" ]; then path=/; else path=/${rest#*/}; fi
  case $hostport in
    \[*\]:*) host=${hostport%]:*}; host=${host#[}; port=${hostport##*]:} ;;
    \[*\]) host=${hostport#[}; host=${host%]}; port=80 ;;
    *:*) host=${hostport%:*}; port=${hostport##*:} ;;
    *) host=$hostport; port=80 ;;
  esac
  local head
  printf -v head '%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: patchtwin-probe\r\nConnection: close\r\n' \
    "$method" "$path" "$hostport"
  if [ -n "$headers" ]; then
    while IFS= read -r h; do head+="$h"$'\r\n'; done <<< "$headers"
  fi
  [ -n "$bodyfile" ] && head+="Content-Length: $(stat -c %s "$bodyfile")"$'\r\n'
  head+=$'\r\n'
  # the inner bash times connect + request + response (not its own start-up), and splits the
  # answer: status line and elapsed microseconds to one file, the body to another
  timeout "$tmo" bash -c 't0=${EPOCHREALTIME/./}; exec 3<>"/dev/tcp/$0/$1" || exit 7
    printf "%s" "$2" >&3; [ -n "$4" ] && cat "$4" >&3
    IFS= read -r status <&3
    while IFS= read -r h <&3; do [ -z "${h%$'"'"'\r'"'"'}" ] && break; done
    cat <&3 > "$5"; t1=${EPOCHREALTIME/./}
    printf "%s\n%s\n" $((t1 - t0)) "$status" > "$3"' \
    "$host" "$port" "$head" "$PT_TMP/us" "$bodyfile" "$PT_TMP/body" 2>"$PT_TMP/err"
  local proto="" code
  { read -r PT_FETCH_US; read -r proto code _; } < "$PT_TMP/us" 2>/dev/null
  : > "$PT_TMP/us"
  case $proto in HTTP/*) PT_CODE=$code ;; *) PT_CODE=""; PT_FETCH_US=0 ;; esac
  return 0
}

pt_http() { # idx method url headers body(-: none) statuses needle regex timeout
  local idx=$1 method=$2 url=$3 headers=$4 body=$5 expect=$6 needle=$7 re=$8 tmo=$9 bodyfile="" us
  if [ "$body" != - ]; then printf '%s' "$body" > "$PT_TMP/rbody"; bodyfile=$PT_TMP/rbody; fi
  pt_fetch "$method" "$url" "$headers" "$bodyfile" "$tmo"
  us=$PT_FETCH_US
  if [ -z "$PT_CODE" ]; then
    pt_head "$PT_TMP/err" 500
    pt_emit "$idx" failed "no HTTP answer from $url" url "$url" client "$PT_CLIENT" error "$PT_H" "#latency_us" "$us"
    return
  fi
  local ok=0 s problems=""
  for s in $expect; do [ "$PT_CODE" = "$s" ] && ok=1; done
  [ $ok = 1 ] || problems="status $PT_CODE, expected one of: $expect"
  if [ -n "$needle" ] && ! grep -qaF -- "$needle" "$PT_TMP/body"; then
    problems+="${problems:+; }the body lacks the expected text"
  fi
  if [ -n "$re" ] && ! grep -qaE -- "$re" "$PT_TMP/body"; then
    problems+="${problems:+; }no line of the body matches the regex"
  fi
  pt_head "$PT_TMP/body" 500
  local size
  size=$(stat -c %s "$PT_TMP/body" 2>/dev/null)
  if [ -z "$problems" ]; then
    pt_emit "$idx" passed "status $PT_CODE" "#status" "$PT_CODE" "#latency_us" "$us" client "$PT_CLIENT" \
      "#body_bytes" "${size:-0}"
  else
    pt_emit "$idx" failed "$problems" "#status" "$PT_CODE" "#latency_us" "$us" client "$PT_CLIENT" \
      "#body_bytes" "${size:-0}" body "$PT_H"
  fi
}

pt_uid_name() { # uid → PT_UN (name, or the uid when no name is known)
  local line
  PT_UN=$1
  line=$(getent passwd "$1" 2>/dev/null) && PT_UN=${line%%:*}
}

pt_process() { # idx name(-: any) cmdline_regex(empty: any) min max(-: none) user(empty: any)
  local idx=$1 name=$2 re=$3 min=$4 max=$5 user=$6 n=0 pids="" users="" p c short args uid owner
  local -A names=()
  short=${name:0:15}
  local self=$$ me=$BASHPID procs
  set +f; procs=(/proc/[0-9]*); set -f
  for p in "${procs[@]}"; do
    c=${p#/proc/}
    [ "$c" = "$self" ] || [ "$c" = "$me" ] || [ "$c" = "$PPID" ] && continue
    if [ "$name" != - ]; then
      IFS= read -r c < "$p/comm" 2>/dev/null || continue
      [ "$c" = "$short" ] || continue
    fi
    if [ -n "$re" ]; then
      mapfile -d '' -t args < "$p/cmdline" 2>/dev/null || continue
      [ ${#args[@]} -gt 0 ] || continue
      [ "${args[-1]}" = patchtwin-probe ] && continue  # ourselves (and our subshells)
      [[ "${args[*]}" =~ $re ]] || continue
    fi
    uid=""
    while read -r c rest; do [ "$c" = Uid: ] && { uid=${rest%%[[:space:]]*}; break; }; done < "$p/status" 2>/dev/null
    [ -n "$uid" ] || continue
    if [ -z "${names[$uid]+x}" ]; then pt_uid_name "$uid"; names[$uid]=$PT_UN; fi
    owner=${names[$uid]}
    if [ -n "$user" ] && [ "$user" != "$owner" ] && [ "$user" != "$uid" ]; then continue; fi
    n=$((n + 1))
    [ $n -le 20 ] && pids+="${pids:+$'\n'}${p#/proc/}"
    case $'\n'"$users"$'\n' in *$'\n'"$owner"$'\n'*) ;; *) users+="${users:+$'\n'}$owner" ;; esac
  done
  local what
  if [ "$name" != - ]; then what="named $name"; else what="matching the command line regex"; fi
  [ -n "$user" ] && what+=" owned by $user"
  local bound="at least $min"
  [ "$max" != - ] && bound="between $min and $max"
  if [ "$n" -ge "$min" ] && { [ "$max" = - ] || [ "$n" -le "$max" ]; }; then
    pt_emit "$idx" passed "$n process(es) $what" "#count" "$n" @pids "$pids" @users "$users"
  else
    pt_emit "$idx" failed "$n process(es) $what, expected $bound" "#count" "$n" @pids "$pids" @users "$users"
  fi
}

pt_package() { # idx name want_installed(1|0); versions are compared by the engine, outside
  local idx=$1 name=$2 want=$3 out status ver="" installed=0 mgr
  if command -v dpkg-query >/dev/null 2>&1; then
    mgr=dpkg
    out=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$name" 2>/dev/null)
    status=${out%%|*}; ver=${out#*|}
    [ "${status:1:1}" = i ] && installed=1
  elif command -v rpm >/dev/null 2>&1; then
    mgr=rpm
    ver=$(rpm -q --qf '%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\n' "$name" 2>/dev/null | head -n1) \
      && installed=1
  elif command -v apk >/dev/null 2>&1; then
    mgr=apk
    ver=$(apk info -e -v "$name" 2>/dev/null) && [ -n "$ver" ] && installed=1 && ver=${ver#"$name"-}
  else
    pt_emit "$idx" error "no package manager (dpkg, rpm, apk) in the twin"; return
  fi
  [ $installed = 1 ] || ver=""
  if [ "$want" = 0 ]; then
    if [ $installed = 0 ]; then pt_emit "$idx" passed "$name is not installed" manager "$mgr" "#installed" false
    else pt_emit "$idx" failed "$name $ver is installed" manager "$mgr" "#installed" true version "$ver"; fi
  elif [ $installed = 0 ]; then
    pt_emit "$idx" failed "$name is not installed" manager "$mgr" "#installed" false
  else
    pt_emit "$idx" passed "$name $ver is installed" manager "$mgr" "#installed" true version "$ver"
  fi
}

pt_log() { # idx glob pattern max_count marks("inode size path" lines; "-": none: mark only)
  local idx=$1 glob=$2 re=$3 max=$4 marks=$5 f ino size from total=0 count files="" matched="" line mi ms mp
  local IFS=$'\n'
  set +f
  # shellcheck disable=SC2206 # the glob is expanded on purpose (IFS is a newline, set +f)
  local paths=($glob)
  set -f
  unset IFS
  for f in "${paths[@]}"; do
    [ -f "$f" ] || continue
    read -r ino size < <(stat -c '%i %s' -- "$f" 2>/dev/null)
    [ -n "$size" ] || continue
    from=0
    if [ "$marks" = - ]; then
      from=$size
    else
      while IFS=' ' read -r mi ms mp; do
        if [ "$mp" = "$f" ] && [ "$mi" = "$ino" ] && [ "$ms" -le "$size" ]; then from=$ms; fi
      done <<< "$marks"
    fi
    count=0
    if [ "$from" -lt "$size" ]; then
      count=$(tail -c +"$((from + 1))" -- "$f" | grep -caE -- "$re"); [ $? -gt 1 ] && count=0
      if [ "$count" -gt 0 ] && [ ${#matched} -lt 2000 ]; then
        line=$(tail -c +"$((from + 1))" -- "$f" | grep -aE -m 5 -- "$re" | head -c 2000)
        matched+="${matched:+$'\n'}$line"
      fi
    fi
    total=$((total + count))
    files+="${files:+$'\n'}$ino $size $from $f"
  done
  if [ "$marks" = - ]; then
    pt_emit "$idx" passed "baseline marks taken: only lines added from now on count" "#matches" 0 @files "$files"
  elif [ "$total" -le "$max" ]; then
    pt_emit "$idx" passed "$total new line(s) match (at most $max allowed)" "#matches" "$total" @files "$files" \
      @matched "$matched"
  else
    pt_emit "$idx" failed "$total new line(s) match, at most $max allowed" "#matches" "$total" @files "$files" \
      @matched "$matched"
  fi
}

pt_command() { # idx command expect_exit timeout stdout_contains stdout_regex stderr_contains stderr_regex
  local idx=$1 cmd=$2 want=$3 tmo=$4 oc=$5 ore=$6 ec=$7 ere=$8 rc problems="" t0
  pt_us; t0=$PT_US
  timeout -s KILL "$tmo" sh -c "$cmd" >"$PT_TMP/cout" 2>"$PT_TMP/cerr" </dev/null; rc=$?
  pt_us
  [ "$rc" = "$want" ] || problems="exit $rc, expected $want"
  [ -n "$oc" ] && ! grep -qaF -- "$oc" "$PT_TMP/cout" && problems+="${problems:+; }stdout lacks the expected text"
  [ -n "$ore" ] && ! grep -qaE -- "$ore" "$PT_TMP/cout" && problems+="${problems:+; }no stdout line matches the regex"
  [ -n "$ec" ] && ! grep -qaF -- "$ec" "$PT_TMP/cerr" && problems+="${problems:+; }stderr lacks the expected text"
  [ -n "$ere" ] && ! grep -qaE -- "$ere" "$PT_TMP/cerr" && problems+="${problems:+; }no stderr line matches the regex"
  local out err
  pt_head "$PT_TMP/cout" 2000; out=$PT_H
  pt_head "$PT_TMP/cerr" 2000; err=$PT_H
  if [ -z "$problems" ]; then
    pt_emit "$idx" passed "exit $rc" "#exit_code" "$rc" stdout "$out" stderr "$err" "#duration_us" $((PT_US - t0))
  else
    pt_emit "$idx" failed "$problems" "#exit_code" "$rc" stdout "$out" stderr "$err" "#duration_us" $((PT_US - t0))
  fi
}

pt_file() { # idx path exists(1|0) kind mode owner group contains regex sha256
  local idx=$1 path=$2 want=$3 kind=$4 mode=$5 owner=$6 group=$7 needle=$8 re=$9 sha=${10}
  if [ ! -e "$path" ] && [ ! -L "$path" ]; then
    if [ "$want" = 0 ]; then pt_emit "$idx" passed "$path does not exist" "#exists" false
    else pt_emit "$idx" failed "$path does not exist" "#exists" false; fi
    return
  fi
  if [ "$want" = 0 ]; then pt_emit "$idx" failed "$path exists" "#exists" true; return; fi
  local info ftype fmode fowner fgroup fsize problems="" actual=""
  info=$(stat -c '%F|%a|%U|%G|%s' -- "$path" 2>/dev/null)
  IFS='|' read -r ftype fmode fowner fgroup fsize <<< "$info"
  case $ftype in "regular file"|"regular empty file") ftype="file" ;; "symbolic link") ftype="symlink" ;; esac
  [ "$kind" != any ] && [ "$ftype" != "$kind" ] && problems+="${problems:+; }a $ftype, expected a $kind"
  [ -n "$mode" ] && [ "$fmode" != "$mode" ] && problems+="${problems:+; }mode $fmode, expected $mode"
  [ -n "$owner" ] && [ "$fowner" != "$owner" ] && problems+="${problems:+; }owner $fowner, expected $owner"
  [ -n "$group" ] && [ "$fgroup" != "$group" ] && problems+="${problems:+; }group $fgroup, expected $group"
  [ -n "$needle" ] && ! grep -qaF -- "$needle" "$path" 2>/dev/null && problems+="${problems:+; }the content lacks the expected text"
  [ -n "$re" ] && ! grep -qaE -- "$re" "$path" 2>/dev/null && problems+="${problems:+; }no line matches the regex"
  if [ -n "$sha" ]; then
    actual=$(sha256sum -- "$path" 2>/dev/null); actual=${actual%% *}
    [ "$actual" = "$sha" ] || problems+="${problems:+; }sha256 differs"
  fi
  if [ -z "$problems" ]; then
    pt_emit "$idx" passed "$path: $ftype, mode $fmode, $fowner:$fgroup" "#exists" true kind "$ftype" mode "$fmode" \
      owner "$fowner" group "$fgroup" "#size" "$fsize" sha256 "$actual"
  else
    pt_emit "$idx" failed "$path: $problems" "#exists" true kind "$ftype" mode "$fmode" owner "$fowner" \
      group "$fgroup" "#size" "$fsize" sha256 "$actual"
  fi
}

pt_perf() { # idx kind(http|command) samples timeout method url command
  local idx=$1 kind=$2 n=$3 tmo=$4 method=$5 url=$6 cmd=$7 i t0 samples="" errors=0 rc last=""
  for ((i = 0; i < n; i++)); do
    if [ "$kind" = http ]; then
      pt_fetch "$method" "$url" "" "" "$tmo"
      # shellcheck disable=SC2015 # no status or a server error both count as an error
      [ -n "$PT_CODE" ] && [ "$PT_CODE" -lt 500 ] || { errors=$((errors + 1)); last="status ${PT_CODE:-none}"; }
      samples+="${samples:+ }$PT_FETCH_US"
    else
      pt_us; t0=$PT_US
      timeout -s KILL "$tmo" sh -c "$cmd" >/dev/null 2>&1 </dev/null; rc=$?
      pt_us
      [ $rc = 0 ] || { errors=$((errors + 1)); last="exit $rc"; }
      samples+="${samples:+ }$((PT_US - t0))"
    fi
  done
  if [ $errors = 0 ]; then
    pt_emit "$idx" passed "$n samples taken" samples_us "$samples" "#errors" 0
  else
    pt_emit "$idx" failed "$errors of $n samples failed (last: $last)" samples_us "$samples" "#errors" "$errors"
  fi
}
