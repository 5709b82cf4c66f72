#!/usr/bin/env python3
"""The `pub(crate)` sweep: every item of the library is `pub(crate)` unless a caller outside
it (src/main.rs, tests/, benches/, fuzz/) needs it.

The idea: make every `pub` item, field and module in src/ (but main.rs) `pub(crate)`, then let
the compiler say what the outside needs. Build every target and the fuzz crate; each privacy
error names an item (and, for most, where it is defined); turn that one definition back into
`pub`, and build again until nothing is refused. What stays `pub(crate)` without a caller in the
crate then shows up as dead code: delete it, or keep it where a test needs it.

    python3 scripts/pub-crate-sweep.py            # sweep, then build until clean
    python3 scripts/pub-crate-sweep.py --no-sweep # only the build-and-reopen loop
"""
import json
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ITEM = re.compile(r'^(\s*)pub (?=(fn|async fn|unsafe fn|const fn|struct|enum|trait|type|const|static|mod|use)\b|[a-z_][a-z0-9_]*\s*:)')
BUILDS = [
    ["cargo", "build", "--keep-going", "--all-targets", "--message-format=json"],
    ["cargo", "build", "--keep-going", "--locked", "--manifest-path", "fuzz/Cargo.toml", "--bins",
     "--message-format=json"],
]


def sweep():
    for path in sorted((ROOT / "src").rglob("*.rs")):
        if path.name == "main.rs" and path.parent.name == "src":
            continue
        lines = path.read_text().splitlines(keepends=True)
        out = []
        for line in lines:
            if path.name == "lib.rs" and line.startswith("pub use "):
                out.append(line)  # the crate's Error and Result, for main.rs
                continue
            out.append(ITEM.sub(r"\1pub(crate) ", line))
        path.write_text("".join(out))


def reopen(file, line):
    """Turns the `pub(crate)` at `file:line` back into `pub`; False if there is none."""
    path = ROOT / file if not pathlib.Path(file).is_absolute() else pathlib.Path(file)
    lines = path.read_text().splitlines(keepends=True)
    # A definition's span may start at its attributes or doc comment: skip those, and only
    # those, so that no other item is reopened by mistake.
    i = line - 1
    while i < len(lines) and lines[i].lstrip().startswith(("#[", "///", "//!")):
        i += 1
    if i < len(lines) and "pub(crate) " in lines[i]:
        lines[i] = lines[i].replace("pub(crate) ", "pub ", 1)
        path.write_text("".join(lines))
        return True
    return False


def reopen_field(struct, field):
    """Finds `struct` in src/ and reopens its `field`."""
    for path in (ROOT / "src").rglob("*.rs"):
        text = path.read_text()
        m = re.search(r'\bstruct ' + re.escape(struct) + r'\b[^{;]*\{', text)
        if not m:
            continue
        rest = text[m.end():]
        f = re.search(r'pub\(crate\) ' + re.escape(field) + r'\s*:', rest[: rest.find("\n}")])
        if f:
            at = m.end() + f.start()
            path.write_text(text[:at] + "pub " + text[at + len("pub(crate) "):])
            return True
    return False


def reopen_named(name):
    """Reopens the item called `name` wherever src/ defines it (for errors that point only at
    the use: a re-export)."""
    kinds = r"(?:fn|async fn|struct|enum|trait|type|const|static|mod)"
    for path in sorted((ROOT / "src").rglob("*.rs")):
        text = path.read_text()
        m = re.search(r"^(\s*)pub\(crate\) (" + kinds + r" " + re.escape(name) + r")\b", text, re.M)
        if m:
            at = m.start() + len(m.group(1))
            path.write_text(text[:at] + "pub " + text[at + len("pub(crate) "):])
            return True
    return False


def spans(message):
    for child in [message] + message.get("children", []):
        for span in child.get("spans", []):
            yield child, span


def build_once():
    """One round of builds; returns how many definitions were reopened."""
    reopened = 0
    for cmd in BUILDS:
        # The fuzz crate shares the main target directory (its dependencies are built there).
        env = dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target"))
        run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        for line in run.stdout.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("reason") != "compiler-message":
                continue
            m = msg["message"]
            text = m.get("message", "")
            code = (m.get("code") or {}).get("code")
            done = False
            if code in ("E0603", "E0624") or "more private than" in text:
                # The definition: a note's span, or the error's own secondary span (its
                # primary span is the use; for "more private than", the item that uses it).
                for child, span in spans(m):
                    definition = child is not m or (
                        not span["is_primary"] and "more private than" not in text)
                    file = span["file_name"].removeprefix(str(ROOT) + "/")
                    if definition and file.startswith("src/"):
                        done = reopen(file, span["line_start"]) or done
            if code in ("E0364", "E0365", "E0603") and not done:
                n = re.search(r"`(\w+)`", text)
                if n:
                    done = reopen_named(n.group(1))
            if code in ("E0616", "E0451") or (not done and "field" in text and "private" in text):
                f = re.search(r"fields? (.*) of (?:struct|variant) `(?:[\w:]*::)?(\w+)`", text)
                if f:
                    for field in re.findall(r"`(\w+)`", f.group(1)):
                        done = reopen_field(f.group(2), field) or done
            if done:
                reopened += 1
            elif code in ("E0364", "E0365", "E0603", "E0624", "E0616", "E0451"):
                print("not reopened:", text, file=sys.stderr)
    return reopened


def main():
    if "--no-sweep" not in sys.argv:
        sweep()
    for round_ in range(1, 30):
        n = build_once()
        print(f"round {round_}: {n} definitions reopened", file=sys.stderr)
        if n == 0:
            break


if __name__ == "__main__":
    main()
