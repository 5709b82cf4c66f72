//! Writes samples/users.xlsx: the sample people on a `Users` sheet, the way an admin builds a
//! migration workbook (a title row, then the header, GUID columns formatted as Text).
//!
//!     cargo run --example make_xlsx_sample

use rust_xlsxwriter::{Format, Workbook, XlsxError};

const PEOPLE: [(&str, &str, &str, &str); 21] = [
    (
        "alice.adams@contoso.com",
        "f7cc07d7-7c15-447d-876d-c01b0e5a9e38",
        "",
        "Alice Adams",
    ),
    (
        "bob.brown@contoso.com",
        "3ab39606-c642-489b-84b6-58c038d3ef39",
        "",
        "Bob Brown",
    ),
    (
        "carol.clark@contoso.com",
        "8c4ac332-975f-4717-ad7b-ba4a4e968fff",
        "",
        "Carol Clark",
    ),
    (
        "dave.dunn@contoso.com",
        "a1d2c3d4-b5f6-4f90-abcd-ef1234567890",
        "",
        "Dave Dunn",
    ),
    (
        "erin.evans@contoso.com",
        "35918bc9-196d-40ea-9779-889d79b753f0",
        "",
        "Erin Evans",
    ),
    (
        "gina.gray@contoso.com",
        "122dd560-3175-4c9a-a060-b81498537656",
        "",
        "Gina Gray",
    ),
    (
        "hank.hill@contoso.com",
        "50db76c0-d8ea-4e97-b9d0-94ef5d837d54",
        "",
        "Hank Hill",
    ),
    (
        "ivan.ito@fed.contoso.com",
        "0b2eb44f-f814-4ecd-b96e-27dca997244d",
        "",
        "Ivan Ito",
    ),
    (
        "jose.jonsson@contoso.com",
        "cac6776f-b741-4679-9bef-7021201df91a",
        "",
        "José Jönsson",
    ),
    (
        "kate.o'brien@contoso.com",
        "cdd1e80f-e37d-4264-807e-ec0b2b2f4d7b",
        "",
        "Kate O'Brien",
    ),
    (
        "lena.lopez@contoso.com",
        "f6f1ab9e-7f13-40d3-b9fc-5b20485a80a6",
        "",
        "Lena López",
    ),
    (
        "mike.miller@contoso.com",
        "a77ea8a8-dd59-4569-83c0-b85936637567",
        "",
        "Mike Miller",
    ),
    (
        "nina.nash@contoso.com",
        "7a58197e-29da-44ee-a1f1-b328058c2587",
        "5d14e11f-c385-43ca-98b4-68af11fb3b8f",
        "Nina Nash",
    ),
    ("", "", "", "Olga Owens"),
    // What the next sync cycle would refuse or change (samples/README.md, rows 15-21).
    (
        "pete.price@contoso.com",
        "4d2c1b0a-9e8f-4a7b-8c6d-5e4f3a2b1c0d",
        "",
        "Pete Price",
    ),
    (
        "quinn.quigley@contoso.com",
        "5e3d2c1b-0a9f-4b8c-9d7e-6f5a4b3c2d1e",
        "",
        "Quinn Quigley",
    ),
    (
        "rosa.reyes@contoso.com",
        "6f4e3d2c-1b0a-4c9d-8e8f-7a6b5c4d3e2f",
        "",
        "Rosa Reyes",
    ),
    (
        "sam.stone@contoso.com",
        "7a5f4e3d-2c1b-4d0e-9f9a-8b7c6d5e4f3a",
        "",
        "Sam Stone",
    ),
    (
        "tara.tate@contoso.local",
        "8b6a5f4e-3d2c-4e1f-8a0b-9c8d7e6f5a4b",
        "",
        "Tara Tate",
    ),
    (
        "uma.ueda@contoso.com",
        "9c7b6a5f-4e3d-4f2a-9b1c-0d9e8f7a6b5c",
        "",
        "Uma Ueda",
    ),
    (
        "vic.vance@contoso.com",
        "d3b07384-d113-4ec6-a8a4-5b1e0c2f6a7e",
        "",
        "Vic Vance",
    ),
];

fn main() -> Result<(), XlsxError> {
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Users")?;
    let bold = Format::new().set_bold();
    let text = Format::new().set_num_format("@");
    sheet.write_string_with_format(0, 0, "Wave 1: Sales and IT", &bold)?;
    let headers = [
        "UserPrincipalName",
        "ObjectGUID",
        "mS-DS-ConsistencyGuid",
        "DisplayName",
    ];
    for (col, header) in headers.iter().enumerate() {
        sheet.write_string_with_format(2, col as u16, *header, &bold)?;
    }
    for (i, (upn, guid, consistency, name)) in PEOPLE.iter().enumerate() {
        let row = 3 + i as u32;
        for (col, value) in [upn, guid, consistency, name].into_iter().enumerate() {
            if !value.is_empty() {
                sheet.write_string_with_format(row, col as u16, *value, &text)?;
            }
        }
    }
    sheet.autofit();
    workbook.save("samples/users.xlsx")
}
