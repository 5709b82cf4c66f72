#!/usr/bin/env bash
# The Windows build, run: hardmatch.exe (x86_64-pc-windows-gnu) under Wine on the quick start,
# given Windows paths (a drive letter and backslashes), must write what the Linux binary writes.
#   - `ids` on every sample export: the same file, and the same exit status;
#   - `apply --emulate samples/tenant.json --yes` on the PowerShell sample: the same report,
#     timestamps and request ids aside (they differ between any two runs), and the same exit
#     status (1: some rows need attention); the report and journal let in their owner only;
#   - text beyond ASCII (accented and Chinese names, in a folder with an accented name) from
#     `ids -o -` and in an error message, through pipes and on a terminal (a Windows console);
#   - Ctrl-C during `apply`: exit 130, the rows left `not-attempted` in the report;
#   - `ids` and `plan` with `-o NUL`: the null device is written to as on Linux.
# "The same" once each binary's spelling of the input's path (which messages quote) is mapped
# to the other's. Needs wine, the mingw-w64 C compiler (Debian: wine, wine64,
# gcc-mingw-w64-x86-64; .ci/run installs them), python3 and `script` (bsdutils, in every Debian).
#
# Usage: scripts/windows-check.sh WINDOWS_EXE LINUX_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/windows-check.sh WINDOWS_EXE LINUX_BINARY"
exe=${1:?$usage}
linux=$(realpath "${2:?$usage}")

work=$(mktemp -d "${TMPDIR:-/tmp}/hardmatch-wine.XXXXXX")
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
# Wine turns arguments and console text to and from the locale's encoding: UTF-8. New files
# get mode 0644 but for what hardmatch does to them (the owner-only check below).
export LC_ALL=C.UTF-8
umask 022
trap 'wineserver -k >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/windows" "$work/linux"
cp "$exe" "$work/bin/hardmatch.exe"
# Debian's Wine 8 lacks bcryptprimitives.dll, which Rust's std imports: the test-only stand-in
# goes beside the .exe here, and nowhere else (scripts/wine/bcryptprimitives.c).
x86_64-w64-mingw32-gcc -shared -O2 -o "$work/bin/bcryptprimitives.dll" \
  scripts/wine/bcryptprimitives.c -ladvapi32
# A prefix of its own; no display, no Mono or Gecko installer, no Wine debug output.
wineboot -i >/dev/null 2>&1

# Wine maps drive Z: to /: /tmp/x/y.csv is Z:\tmp\x\y.csv.
windows_path() { printf 'Z:%s' "${1//\//\\}"; }

checks=0 failed=0
fail() {
  echo "windows-check: $*" >&2
  failed=$((failed + 1))
}

# run NAME [--report | --text | --console] ARG...: runs both binaries with the ARGs (absolute
# paths given the Linux way, turned into Windows paths for hardmatch.exe; `{out}` is the
# output file, one per binary), then compares what they wrote: the output file (`--report`
# leaves the varying columns out), or with `--text` what they printed on stdout and stderr,
# through pipes, or with `--console` on a terminal (a pseudo-terminal from `script`: Wine
# gives hardmatch.exe a console there, which Rust's std writes UTF-16 to). Returns 1 when
# they differ.
run() {
  local name=$1 compare=exact
  shift
  case $1 in
    --report | --text | --console) compare=${1#--} && shift ;;
  esac
  local args_windows=() args_linux=() arg
  for arg in "$@"; do
    case $arg in
      '{out}') args_windows+=("$(windows_path "$work/windows/$name")") args_linux+=("$work/linux/$name") ;;
      /*) args_windows+=("$(windows_path "$arg")") args_linux+=("$arg") ;;
      *) args_windows+=("$arg") args_linux+=("$arg") ;;
    esac
  done
  checks=$((checks + 1))
  local code_windows=0 code_linux=0
  if [[ $compare == console ]]; then
    # Both on a terminal, stdout and stderr as it shows them; `script -e` passes the status on.
    on_terminal wine "$work/bin/hardmatch.exe" "${args_windows[@]}" >"$work/windows/$name.out" || code_windows=$?
    # Wine's processes hung up with the terminal must be gone before the next run, which
    # would otherwise print "wine client error" now and then.
    wineserver -w
    on_terminal "$linux" "${args_linux[@]}" >"$work/linux/$name.out" || code_linux=$?
    : >"$work/windows/$name.err" && : >"$work/linux/$name.err"
  else
    wine "$work/bin/hardmatch.exe" "${args_windows[@]}" >"$work/windows/$name.out" 2>"$work/windows/$name.err" || code_windows=$?
    "$linux" "${args_linux[@]}" >"$work/linux/$name.out" 2>"$work/linux/$name.err" || code_linux=$?
  fi
  if [[ $code_windows != "$code_linux" ]]; then
    fail "$name: hardmatch.exe exits $code_windows, the Linux binary $code_linux"
    sed 's/^/  hardmatch.exe: /' "$work/windows/$name.err" "$work/windows/$name.out" | head -20 >&2
    sed 's/^/  Linux: /' "$work/linux/$name.err" "$work/linux/$name.out" | head -20 >&2
    return 1
  fi
  local file
  case $compare in
    exact | report) same "$compare" "$name" || return 1 ;;
    *) for file in "$name.out" "$name.err"; do same text "$file" || return 1; done ;;
  esac
}

# same MODE FILE: hardmatch.exe's FILE and the Linux binary's are alike (scripts/wine/compare.py).
same() {
  python3 scripts/wine/compare.py "$1" "$work/windows/$2" "$work/linux/$2" "${dirs[@]}" || {
    fail "$2: hardmatch.exe writes another text than the Linux binary"
    return 1
  }
}

# on_terminal COMMAND ARG...: runs it on a pseudo-terminal, printing what the terminal shows;
# one wide enough that Wine's console wraps no line.
on_terminal() {
  local command
  printf -v command '%q ' "$@"
  script -qec "stty cols 2000 rows 50; $command" /dev/null </dev/null
}

# Inputs are quoted in messages by the path given: each binary's spelling of these folders.
unicode=$work/Ünïcödé
dirs=("$PWD/samples" "$(windows_path "$PWD/samples")" "$unicode" "$(windows_path "$unicode")")

for input in "$PWD"/samples/*; do
  case $input in *.json | *.md) continue ;; esac
  run "ids-$(basename "$input").csv" ids "$input" -o '{out}' || true
done
# The report and its journal are the user's alone: a protected ACL with one entry
# (src/private.rs); see owner_only below.
run apply-report.csv --report apply "$PWD/samples/getaduser-ps51.csv" \
  --emulate "$PWD/samples/tenant.json" --yes -o '{out}' || true

# null_device NAME ARG...: both binaries write their output to the null device (NUL there,
# /dev/null here) and exit alike; ARGs are paths relative to the checkout, which both read.
# A device has no file metadata on Windows (src/private.rs on_disk, report::replace_whole).
null_device() {
  local name=$1 code_windows=0 code_linux=0
  shift
  checks=$((checks + 1))
  wine "$work/bin/hardmatch.exe" "$@" -o NUL >/dev/null 2>"$work/windows/$name.err" || code_windows=$?
  "$linux" "$@" -o /dev/null >/dev/null 2>"$work/linux/$name.err" || code_linux=$?
  [[ $code_windows == "$code_linux" ]] ||
    fail "$name: hardmatch.exe exits $code_windows, the Linux binary $code_linux: $(head -c 300 "$work/windows/$name.err")"
}
null_device ids-to-nul ids samples/getaduser-ps51.csv
null_device plan-to-nul plan samples/getaduser-ps51.csv --snapshot samples/tenant.json

# owner_only FILE...: the files hardmatch.exe wrote let nobody else in. Wine keeps no ACL here
# (no xattr): it maps the DACL to the file's mode, an entry for the owner to the user and group
# bits (Wine's group is the user's own) and any other entry, such as one inherited from the
# folder (mode 0755 here), to the other bits. Files are created 0644 without the ACL.
owner_only() {
  checks=$((checks + 1))
  local file mode
  for file in "$@"; do
    mode=$(stat -c %a "$file")
    [[ $mode == *0 ]] || fail "$(basename "$file"): mode $mode under Wine: its ACL lets in others"
  done
}
owner_only "$work/windows/apply-report.csv" "$work/windows/apply-report.csv.journal"

# Text beyond ASCII: `ids -o -` on an export with accented and Chinese names, in a folder with
# an accented name, and the error naming a file there; through pipes (UTF-8 bytes) and on a
# terminal (UTF-16 to the console, which Wine shows the terminal in UTF-8).
mkdir "$unicode"
printf '%s\n' 'UserPrincipalName,ObjectGUID,DisplayName' \
  'jörg.müller@contoso.com,f7cc07d7-7c15-447d-876d-c01b0e5a9e38,Jörg Müller' \
  'zoë.ødegård@contoso.com,größe-ünd-€,Zoë Ødegård' \
  '李雷@contoso.com,3ab39606-c642-489b-84b6-58c038d3ef39,李雷' >"$unicode/Müller.csv"
printf '%s\n' 'Name,Straße' 'Jörg,Müllerweg' >"$unicode/Jörg.csv"
run ids-unicode-piped --text ids "$unicode/Müller.csv" -o - || true
run ids-unicode-console --console ids "$unicode/Müller.csv" -o - || true
run error-unicode-piped --text ids "$unicode/Jörg.csv" -o - || true
run error-unicode-console --console ids "$unicode/Jörg.csv" -o - || true

# Ctrl-C: Wine's handler for a SIGINT sent to the process runs the console control handlers
# with CTRL_C_EVENT, which is how Windows delivers Ctrl-C and what tokio::signal::ctrl_c
# listens for (SetConsoleCtrlHandler). `apply` at one write a second is interrupted once its
# journal shows writes: like the Linux binary, hardmatch.exe must send nothing more, mark the
# rows left `not-attempted` in its report, and exit 130. Without a handler (interrupted before
# the writes start, when none listens yet) Wine ends the process at once: no report, no
# message, and status 0 under Wine 8 (Windows: 0xc000013a).
interrupt() {
  local side=$1 report=$2
  shift 2
  "$@" apply "$(spell "$side" "$PWD/samples/getaduser-ps51.csv")" --emulate \
    "$(spell "$side" "$PWD/samples/tenant.json")" --yes --write-rate 1 \
    -o "$(spell "$side" "$report")" >"$report.out" 2>"$report.err" &
  local pid=$! waited=0 code=0
  until [[ -s $report.journal && $(wc -l <"$report.journal") -ge 2 ]] || ((waited > 600)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  sleep 0.5
  kill -INT "$pid"
  wait "$pid" || code=$?
  echo "$code"
}

# spell SIDE PATH: PATH as the binary on SIDE (windows or linux) is given it.
spell() {
  if [[ $1 == windows ]]; then windows_path "$2"; else printf '%s' "$2"; fi
}

for side in windows linux; do
  checks=$((checks + 1))
  report=$work/$side/interrupted.csv
  if [[ $side == windows ]]; then
    code=$(interrupt windows "$report" wine "$work/bin/hardmatch.exe")
  else
    code=$(interrupt linux "$report" "$linux")
  fi
  left=$(grep -c ',not-attempted,' "$report" 2>/dev/null || true)
  if [[ $code != 130 || ${left:-0} == 0 ]] || ! grep -q 'interrupted' "$report.err"; then
    fail "Ctrl-C: $side binary exits $code, with ${left:-no} rows not-attempted (130 and some expected)"
    sed "s/^/  $side: /" "$report.err" | tail -5 >&2
  fi
done

echo "windows-check: $((checks - failed)) of $checks checks pass, hardmatch.exe under $(wine --version)"
[[ $failed == 0 ]]
