#!/usr/bin/env python3
"""Writes the text samples in samples/ (see samples/README.md) from one list of people, so
that every export holds the same users byte for byte as each tool would write them.
users.xlsx comes from `cargo run --example make_xlsx_sample`.
"""
import base64
import os
import uuid

OUT = os.path.join(os.path.dirname(__file__), "..", "samples")

# sam, upn, given, surname, display, guid, consistency guid, mail
PEOPLE = [
    ("aadams", "alice.adams@contoso.com", "Alice", "Adams", "Alice Adams", "f7cc07d7-7c15-447d-876d-c01b0e5a9e38", None),
    ("bbrown", "bob.brown@contoso.com", "Bob", "Brown", "Bob Brown", "3ab39606-c642-489b-84b6-58c038d3ef39", None),
    ("cclark", "carol.clark@contoso.com", "Carol", "Clark", "Carol Clark", "8c4ac332-975f-4717-ad7b-ba4a4e968fff", None),
    ("ddunn", "dave.dunn@contoso.com", "Dave", "Dunn", "Dave Dunn", "a1d2c3d4-b5f6-4f90-abcd-ef1234567890", None),
    ("eevans", "erin.evans@contoso.com", "Erin", "Evans", "Erin Evans", "35918bc9-196d-40ea-9779-889d79b753f0", None),
    ("ggray", "gina.gray@contoso.com", "Gina", "Gray", "Gina Gray", "122dd560-3175-4c9a-a060-b81498537656", None),
    ("hhill", "hank.hill@contoso.com", "Hank", "Hill", "Hank Hill", "50db76c0-d8ea-4e97-b9d0-94ef5d837d54", None),
    ("iito", "ivan.ito@fed.contoso.com", "Ivan", "Ito", "Ivan Ito", "0b2eb44f-f814-4ecd-b96e-27dca997244d", None),
    ("jjonsson", "jose.jonsson@contoso.com", "José", "Jönsson", "José Jönsson", "cac6776f-b741-4679-9bef-7021201df91a", None),
    ("kobrien", "kate.o'brien@contoso.com", "Kate", "O'Brien", "Kate O'Brien", "cdd1e80f-e37d-4264-807e-ec0b2b2f4d7b", None),
    ("llopez", "lena.lopez@contoso.com", "Lena", "López", "Lena López", "f6f1ab9e-7f13-40d3-b9fc-5b20485a80a6", None),
    ("mmiller", "mike.miller@contoso.com", "Mike", "Miller", "Mike Miller", "a77ea8a8-dd59-4569-83c0-b85936637567", "a77ea8a8-dd59-4569-83c0-b85936637567"),
    ("nnash", "nina.nash@contoso.com", "Nina", "Nash", "Nina Nash", "7a58197e-29da-44ee-a1f1-b328058c2587", "5d14e11f-c385-43ca-98b4-68af11fb3b8f"),
    ("oowens", None, "Olga", "Owens", "Olga Owens", "6c5e4f0a-3b1d-4e8f-9a7b-2c1d0e9f8a7b", None),
    # What the next sync cycle would refuse or change (samples/README.md, rows 15-21).
    ("pprice", "pete.price@contoso.com", "Pete", "Price", "Pete Price", "4d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d", None),
    ("qquigley", "quinn.quigley@contoso.com", "Quinn", "Quigley", "Quinn Quigley", "5e3d2c1b-0a9f-4b8c-9d7e-6f5a4b3c2d1e", None),
    ("rreyes", "rosa.reyes@contoso.com", "Rosa", "Reyes", "Rosa Reyes", "6f4e3d2c-1b0a-4c9d-8e8f-7a6b5c4d3e2f", None),
    ("sstone", "sam.stone@contoso.com", "Sam", "Stone", "Sam Stone", "7a5f4e3d-2c1b-4d0e-9f9a-8b7c6d5e4f3a", None),
    ("ttate", "tara.tate@contoso.local", "Tara", "Tate", "Tara Tate", "8b6a5f4e-3d2c-4e1f-8a0b-9c8d7e6f5a4b", None),
    ("uueda", "uma.ueda@contoso.com", "Uma", "Ueda", "Uma Ueda", "9c7b6a5f-4e3d-4f2a-9b1c-0d9e8f7a6b5c", None),
    ("vvance", "vic.vance@contoso.com", "Vic", "Vance", "Vic Vance", "d3b07384-d113-4ec6-a8a4-5b1e0c2f6a7e", None),
]
# Where mail is not the UPN: Tara's AD UPN is in the unverified contoso.local.
MAIL = {"ttate": "tara.tate@contoso.com"}
SID_BASE = "S-1-5-21-3623811015-3361044348-30300820-"


def dn(p):
    return f"CN={p[4]},OU=Staff,DC=contoso,DC=com"


def mail(p):
    return MAIL.get(p[0], p[1])


def ad_bytes(guid):
    return uuid.UUID(guid).bytes_le


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def powershell_export(ascii_only):
    """Get-ADUser -Filter * -Properties mail,mS-DS-ConsistencyGuid | Export-Csv users.csv"""
    header = ["DistinguishedName", "Enabled", "GivenName", "mail", "mS-DS-ConsistencyGuid", "Name",
              "ObjectClass", "ObjectGUID", "SamAccountName", "SID", "Surname", "UserPrincipalName"]
    lines = ["#TYPE Microsoft.ActiveDirectory.Management.ADUser", ",".join(f'"{h}"' for h in header)]
    for i, p in enumerate(PEOPLE):
        fields = [dn(p), "True", p[2], mail(p) or "", "System.Byte[]" if p[6] else "", p[4], "user",
                  p[5], p[0], SID_BASE + str(1104 + i), p[3], p[1] or ""]
        lines.append(",".join('"' + f.replace('"', '""') + '"' for f in fields))
    text = "\r\n".join(lines) + "\r\n"
    if ascii_only:
        # Windows PowerShell 5.1's Export-Csv default is ASCII: anything else becomes '?'.
        return text.encode("ascii", errors="replace")
    return b"\xff\xfe" + text.encode("utf-16-le")


def excel_de():
    """A migration sheet saved by Excel on a de-DE machine as "CSV UTF-8 (durch Trennzeichen getrennt)"."""
    lines = ["UserPrincipalName;ObjectGUID;mS-DS-ConsistencyGuid;DisplayName;Abteilung"]
    for p in PEOPLE:
        lines.append(";".join([p[1] or "", p[5] if p[1] else "", p[6] or "", p[4], "Vertrieb; Süd" if p[0] == "jjonsson" else "IT"]).replace("Vertrieb; Süd", '"Vertrieb; Süd"'))
    return b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n").encode("utf-8")


def csvde_value(text):
    if all(ord(c) < 128 for c in text):
        return text
    return "X'" + text.encode("utf-8").hex() + "'"


def csvde():
    """csvde -f users.csv -r "(objectCategory=person)" -l "objectClass,userPrincipalName,objectGUID,mS-DS-ConsistencyGuid,mail,displayName,proxyAddresses" """
    lines = ["DN,objectClass,userPrincipalName,objectGUID,mS-DS-ConsistencyGuid,mail,displayName,proxyAddresses"]
    for p in PEOPLE:
        guid = "X'" + ad_bytes(p[5]).hex() + "'" if p[1] else ""
        cg = "X'" + ad_bytes(p[6]).hex() + "'" if p[6] else ""
        proxies = ("SMTP:" + mail(p)) if p[1] else ""
        lines.append(",".join(['"' + csvde_value(dn(p)) + '"', "top;person;organizationalPerson;user", p[1] or "",
                               guid, cg, mail(p) or "", csvde_value(p[4]), proxies]))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def fold(line, width=78):
    """ldifde folds at 78 columns; a continuation line starts with one space."""
    out = [line[:width]]
    rest = line[width:]
    while rest:
        out.append(" " + rest[:width - 1])
        rest = rest[width - 1:]
    return out


def ldifde():
    """ldifde -f users.ldf -r "(objectClass=*)" -l "objectClass,userPrincipalName,objectGUID,mS-DS-ConsistencyGuid,mail,displayName,sAMAccountName" """
    lines = []
    for p in PEOPLE:
        d = dn(p)
        if any(ord(c) > 127 for c in d):
            lines += fold("dn:: " + base64.b64encode(d.encode()).decode())
        else:
            lines += fold("dn: " + d)
        lines.append("changetype: add")
        lines += ["objectClass: top", "objectClass: person", "objectClass: organizationalPerson", "objectClass: user"]
        b64 = base64.b64encode(ad_bytes(p[5])).decode()
        if p[0] == "aadams":
            # ldifde habit: the fold comes right after "attr:: ", the value wholly on the next line.
            lines += ["objectGUID:: ", " " + b64]
        elif p[0] == "bbrown":
            # and mid-base64.
            lines += ["objectGUID:: " + b64[:10], " " + b64[10:]]
        else:
            lines.append("objectGUID:: " + b64)
        if p[6]:
            lines.append("mS-DS-ConsistencyGuid:: " + base64.b64encode(ad_bytes(p[6])).decode())
        if p[1]:
            lines.append("userPrincipalName: " + p[1])
            lines.append("mail:" + mail(p))  # attr:value without a space is legal too
        if any(ord(c) > 127 for c in p[4]):
            lines.append("displayName:: " + base64.b64encode(p[4].encode()).decode())
        else:
            lines.append("displayName: " + p[4])
        lines.append("sAMAccountName: " + p[0])
        lines.append("")
    lines += fold("dn: CN=WS-0042,OU=Workstations,DC=contoso,DC=com")
    lines += ["changetype: add", "objectClass: top", "objectClass: person", "objectClass: organizationalPerson",
              "objectClass: user", "objectClass: computer",
              "objectGUID:: " + base64.b64encode(uuid.UUID("9d6b4c2a-1e3f-4a5b-8c7d-6e5f4a3b2c1d").bytes_le).decode(),
              "sAMAccountName: WS-0042$", ""]
    lines += ["dn: CN=Sales Team,OU=Groups,DC=contoso,DC=com", "changetype: add", "objectClass: top",
              "objectClass: group",
              "objectGUID:: " + base64.b64encode(uuid.UUID("4f3e2d1c-0b9a-4877-a665-544332211000").bytes_le).decode(),
              "sAMAccountName: Sales Team", ""]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


if __name__ == "__main__":
    write("getaduser-ps51.csv", powershell_export(ascii_only=True))
    write("getaduser-utf16.csv", powershell_export(ascii_only=False))
    write("excel-de.csv", excel_de())
    write("csvde.csv", csvde())
    write("ldifde.ldf", ldifde())
