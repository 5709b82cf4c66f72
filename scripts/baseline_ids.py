#!/usr/bin/env python3
"""The plain-Python way to do what `hardmatch ids` does, as a yardstick for bench-ids.sh.

Reads a Get-ADUser export (Windows PowerShell 5.1 Export-Csv: a #TYPE line, then a header),
computes base64(uuid.bytes_le) of each ObjectGUID, and writes line,upn,object_guid,immutable_id.
"""
import base64
import csv
import sys
import uuid


def main(src, dst):
    with open(src, newline="", encoding="utf-8-sig") as f, open(dst, "w", newline="") as out:
        first = f.readline()
        if not first.startswith("#TYPE"):
            f.seek(0)
        reader = csv.DictReader(f)
        writer = csv.writer(out)
        writer.writerow(["line", "upn", "object_guid", "immutable_id"])
        for n, row in enumerate(reader, start=3):
            guid = row.get("ObjectGUID", "")
            try:
                iid = base64.b64encode(uuid.UUID(guid).bytes_le).decode()
            except ValueError:
                iid = ""
            writer.writerow([n, row.get("UserPrincipalName", ""), guid, iid])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
