# shellcheck shell=bash
# patchtwin snapshot: the twin's system state in one exec, one record per line (TAB-separated).
# Arguments: max-files, then "root:PATH", "extra:PATH" and "svc:NAME:MANAGER" items.
PT_SCRATCH=/nonexistent
pt_snapshot_main() {
  local max=$1 item roots="" extras="" declared=" " p comm scratch
  shift
  printf 'began\t%s\n' "$(date +%s%N)"
  for item in "$@"; do
    case $item in
      root:*) roots="$roots ${item#root:}" ;;
      extra:*) extras="$extras ${item#extra:}" ;;
      svc:*) declared="$declared${item#svc:} " ;;
    esac
  done
  # processes first, while nothing of the snapshot's own runs beside this shell
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = "$$" ] && continue
    read -r comm < "$p/comm" 2>/dev/null && printf 'proc\t%s\n' "$comm"
  done
  # the other sections side by side (each in its own file, printed in order): about half the
  # time of one after another on two cores, and the snapshot after the patch is on every run's path
  if scratch=$(mktemp -d /tmp/.patchtwin-snapshot.XXXXXX 2>/dev/null); then
    PT_SCRATCH=$scratch  # never hashed, should a root hold /tmp
    pt_snap_services "$declared" > "$scratch/services" &
    pt_snap_packages_sockets > "$scratch/packages" &
    pt_snap_files "$max" "$roots" "$extras" > "$scratch/files" &
    pt_snap_sysctls > "$scratch/sysctls"
    wait
    cat "$scratch/services" "$scratch/packages" "$scratch/files" "$scratch/sysctls"
    rm -rf "$scratch"
  else  # no writable /tmp: one after another
    pt_snap_services "$declared"; pt_snap_packages_sockets; pt_snap_files "$max" "$roots" "$extras"; pt_snap_sysctls
  fi
  printf 'ended\t%s\n' "$(date +%s%N)"
}

pt_snap_services() { # " name:manager ... " declared -> their states, then every other service's
  local declared=$1 item f names=" "
  for item in $declared; do names="$names${item%%:*} "; pt_status "${item%%:*}" "${item#*:}"; done
  if ! pt_systemd && [ -d /etc/init.d ]; then
    for f in /etc/init.d/*; do
      # shellcheck disable=SC2015 # either test failing skips the script
      [ -x "$f" ] && grep -q 'status' "$f" 2>/dev/null || continue
      case ${f##*/} in rc|rcS|skeleton|README|*.sh) continue ;; esac
      case $names in *" ${f##*/} "*) continue ;; esac  # already recorded, with its declared manager
      pt_status "${f##*/}" sysv
    done
  elif pt_systemd; then
    systemctl list-units --type=service --all --no-legend --plain 2>/dev/null | while read -r f _; do
      case $names in *" ${f%.service} "*) continue ;; esac
      pt_status "${f%.service}" systemd
    done
  fi
}

pt_snap_packages_sockets() {
  local f laddr state
  PT_PACKAGES
  for f in tcp tcp6 udp udp6; do
    [ -r "/proc/net/$f" ] || continue
    while read -r _ laddr _ state _; do
      case $f:$state in tcp*:0A|udp*:07) printf 'sock\t%s\t%s\n' "$f" "$laddr" ;; esac
    done < "/proc/net/$f"
  done
}

pt_snap_files() { # max roots extras -> hashes of regular files, links, users, groups
  local max=$1 roots=$2 extras=$3 item f total
  # shellcheck disable=SC2086
  total=$(find $roots -xdev -path "$PT_SCRATCH" -prune -o -type f -print 2>/dev/null | wc -l)
  [ "$total" -gt "$max" ] && printf 'trunc\t%s\n' "$total"
  for item in $roots; do printf 'root\t%s\n' "$item"; done
  # shellcheck disable=SC2086
  { find $roots -xdev -path "$PT_SCRATCH" -prune -o -type f -print0 2>/dev/null | head -z -n "$max"
    for f in $extras; do [ -f "$f" ] && printf '%s\0' "$f"; done; } |
    xargs -0 -r sha256sum 2>/dev/null | sed -n 's/^\([0-9a-f]\{64\}\)  /file\t\1\t/p'
  # shellcheck disable=SC2086
  find $roots -xdev -path "$PT_SCRATCH" -prune -o -type l -printf 'file\tlink:%l\t%p\n' 2>/dev/null | head -n "$max"
  cut -d: -f1 /etc/passwd 2>/dev/null | sed 's/^/user\t/'
  cut -d: -f1 /etc/group 2>/dev/null | sed 's/^/group\t/'
}

pt_snap_sysctls() {
  # sysctls (at most 3000): the first line of each, trimmed as `read` trims it. One grep reads
  # them all: a shell loop reading each file took 3-5 s of a twin's half CPU, twice a run.
  find /proc/sys -type f -perm -u+r -print0 2>/dev/null | head -z -n 3000 |
    xargs -0 -r grep -a -s -m1 -H '' 2>/dev/null |
    awk '{ i = index($0, ":"); k = substr($0, 11, i - 11); v = substr($0, i + 1); gsub("/", ".", k)
           sub(/^[ \t]+/, "", v); sub(/[ \t]+$/, "", v); printf "sysctl\t%s\t%s\n", k, v }'
}
