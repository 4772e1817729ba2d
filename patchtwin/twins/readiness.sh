# shellcheck shell=bash
# patchtwin readiness: start the services, then poll until every condition holds or the deadline.
# Arguments: deadline-seconds, then conditions:
#   svc:NAME:MANAGER:COMMAND-B64   port:PORT:PROTO   http:URL-B64:STATUS
# Prints "mgr<TAB>name<TAB>manager" per service, then "ready<TAB>ms" or "missing<TAB>b64(list)",
# then the services' status lines as the last poll saw them.
pt_ready_main() {
  local deadline t0 c kind a b d name mgr missing code url svcs="" line statuses
  t0=$(date +%s%N); deadline=$(( $(date +%s) + $1 )); shift
  for c in "$@"; do
    IFS=: read -r kind a b d <<<"$c"
    if [ "$kind" = svc ]; then
      mgr=$(pt_manager "$a" "$b"); svcs="$svcs $a:$mgr"
      printf 'mgr\t%s\t%s\n' "$a" "$mgr"
      pt_start "$a" "$mgr" "$d"
    fi
  done
  while :; do
    missing="" statuses=""
    for c in "$@"; do
      IFS=: read -r kind a b d <<<"$c"
      case $kind in
        svc) name=$a; mgr=${svcs#* "$a":}; mgr=${mgr%% *}; line=$(pt_status "$name" "$mgr"); statuses="$statuses$line
"
             [ "$(printf '%s' "$line" | cut -f4)" = 0 ] || missing="$missing; service $name not running ($mgr)" ;;
        port) pt_listening "$a" "$b" || missing="$missing; nothing listens on $b port $a" ;;
        http) url=$(printf '%s' "$a" | base64 -d); code=$(pt_http_code "$url" 2)
              [ "$code" = "$b" ] || missing="$missing; $url answered ${code:-nothing} (expected $b)" ;;
      esac
    done
    if [ -z "$missing" ]; then
      printf 'ready\t%s\n' $(( ($(date +%s%N) - t0) / 1000000 )); break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      printf 'missing\t%s\n' "$(printf '%s' "${missing#; }" | base64 -w0)"; break
    fi
    sleep 0.2
  done
  printf '%s' "$statuses"  # the services' status lines of the last poll: the state readiness saw
}
