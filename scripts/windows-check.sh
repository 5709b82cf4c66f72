#!/usr/bin/env bash
# The Windows build, run: hardmatch.exe (x86_64-pc-windows-gnu) under Wine on the quick start,
# given Windows paths (a drive letter and backslashes), must write what the Linux binary writes.
#   - `ids` on every sample export: the same file, and the same exit status;
#   - `apply --emulate samples/tenant.json --yes` on the PowerShell sample: the same report,
#     timestamps and request ids aside (they differ between any two runs), and the same exit
#     status (1: some rows need attention).
# "The same" once each binary's spelling of the input's path (which messages quote) is mapped
# to the other's. Needs wine, the mingw-w64 C compiler (Debian: wine, wine64,
# gcc-mingw-w64-x86-64; .ci/run installs them) and python3.
#
# Usage: scripts/windows-check.sh WINDOWS_EXE LINUX_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/windows-check.sh WINDOWS_EXE LINUX_BINARY"
exe=${1:?$usage}
linux=$(realpath "${2:?$usage}")

work=$(mktemp -d "${TMPDIR:-/tmp}/hardmatch-wine.XXXXXX")
export WINEPREFIX=$work/prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" DISPLAY=
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

# run NAME ARG...: runs both binaries with the ARGs (absolute paths given the Linux way, turned
# into Windows paths for hardmatch.exe; `{out}` is the output file, one per binary), then
# compares what they wrote (`--report` leaves the varying columns out). Returns 1 when they
# differ.
run() {
  local name=$1 compare=exact
  shift
  if [[ $1 == --report ]]; then
    compare=report
    shift
  fi
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
  wine "$work/bin/hardmatch.exe" "${args_windows[@]}" >"$work/windows/$name.out" 2>"$work/windows/$name.err" || code_windows=$?
  "$linux" "${args_linux[@]}" >"$work/linux/$name.out" 2>"$work/linux/$name.err" || code_linux=$?
  if [[ $code_windows != "$code_linux" ]]; then
    fail "$name: hardmatch.exe exits $code_windows, the Linux binary $code_linux"
    sed 's/^/  hardmatch.exe: /' "$work/windows/$name.err" | head -20 >&2
    sed 's/^/  Linux: /' "$work/linux/$name.err" | head -20 >&2
    return 1
  fi
  python3 - "$compare" "$work/windows/$name" "$work/linux/$name" "$PWD/samples" \
    "$(windows_path "$PWD/samples")" <<'EOF' || { fail "$name: hardmatch.exe writes another file than the Linux binary"; return 1; }
import csv, sys

compare, windows_file, linux_file, linux_dir, windows_dir = sys.argv[1:]
# Columns that differ between any two runs, on one system too.
VARYING = {"timestamp", "request_id"}

def table(path, spelled):
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    if spelled is not None:  # a message quotes the input's path as it was given
        head, sep = spelled
        text = text.replace(head + sep, linux_dir + "/")
    rows = list(csv.reader(text.splitlines()))
    if compare == "report":
        keep = [i for i, name in enumerate(rows[0]) if name not in VARYING]
        rows = [[row[i] for i in keep] for row in rows]
    return rows

windows = table(windows_file, (windows_dir, "\\"))
linux = table(linux_file, None)
for number, (w, l) in enumerate(zip(windows, linux), 1):
    if w != l:
        print(f"  line {number}\n  hardmatch.exe: {w}\n  Linux:         {l}", file=sys.stderr)
        sys.exit(1)
if len(windows) != len(linux):
    print(f"  {len(windows)} lines against {len(linux)}", file=sys.stderr)
    sys.exit(1)
EOF
}

for input in "$PWD"/samples/*; do
  case $input in *.json | *.md) continue ;; esac
  run "ids-$(basename "$input").csv" ids "$input" -o '{out}' || true
done
run apply-report.csv --report apply "$PWD/samples/getaduser-ps51.csv" \
  --emulate "$PWD/samples/tenant.json" --yes -o '{out}' || true

echo "windows-check: $((checks - failed)) of $checks alike, hardmatch.exe under $(wine --version)"
[[ $failed == 0 ]]
