"""What hardmatch.exe wrote against what the Linux binary wrote, for scripts/windows-check.sh.

Usage: compare.py MODE WINDOWS_FILE LINUX_FILE [LINUX_DIR WINDOWS_DIR]...

MODE is `exact` (the same CSV rows), `report` (the same CSV rows, the columns that differ
between any two runs aside) or `text` (the same lines of text, as a terminal shows them: line
ends, the escape sequences Wine's console adds and Wine's own diagnostics aside). Every WINDOWS_DIR followed by a
backslash, as a message quotes an input's path, is read as LINUX_DIR followed by a slash.
Exits 1, showing the first difference, when they differ.
"""

import csv
import re
import sys

# Columns that differ between any two runs, on one system too.
VARYING = {"timestamp", "request_id"}
# Wine's console draws a space as "cursor forward"; other escape sequences (CSI: cursor,
# colour; OSC: window title) show nothing.
FORWARD = re.compile(r"\x1b\[([0-9]*)C")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")
# Wine's own diagnostics on the .exe's stderr, never hardmatch's: "wine client error:108:
# sendmsg: ..." when its server is busy with a process just ended (seen in CI between two runs
# despite `wineserver -w`), and debug channels such as "0024:fixme:...".
WINE_NOISE = re.compile(r"^(wine client error:|wine: |[0-9a-f]{4}:(fixme|err|warn|trace):)")


def shown(line):
    line = FORWARD.sub(lambda m: " " * int(m.group(1) or 1), line)
    return ESCAPES.sub("", line)


def read(path, dirs):
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    for linux_dir, windows_dir in dirs:
        text = text.replace(windows_dir + "\\", linux_dir + "/")
    return text


def rows(mode, text):
    if mode == "text":
        return [shown(line) for line in text.replace("\r", "").split("\n")]
    table = list(csv.reader(text.splitlines()))
    if mode == "report":
        keep = [i for i, name in enumerate(table[0]) if name not in VARYING]
        table = [[row[i] for i in keep] for row in table]
    return table


def main():
    mode, windows_file, linux_file, *dirs = sys.argv[1:]
    pairs = list(zip(dirs[::2], dirs[1::2]))
    windows = rows(mode, read(windows_file, pairs))
    if mode == "text":
        windows = [line for line in windows if not WINE_NOISE.match(line)]
    linux = rows(mode, read(linux_file, []))
    for number, (w, l) in enumerate(zip(windows, linux), 1):
        if w != l:
            print(f"  line {number}\n  hardmatch.exe: {w!r}\n  Linux:         {l!r}", file=sys.stderr)
            sys.exit(1)
    if len(windows) != len(linux):
        print(f"  {len(windows)} lines against {len(linux)}", file=sys.stderr)
        sys.exit(1)


main()
