//! `hardmatch convert` with the published test vectors and every rejection.

use crate::util::{assert_same, run, stdout, Dir};

#[test]
fn published_vector_in_every_form() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .args(["convert", "8c4ac332-975f-4717-ad7b-ba4a4e968fff"]));
    assert_eq!(out.status.code(), Some(0));
    assert_same(
        "input         8c4ac332-975f-4717-ad7b-ba4a4e968fff
form          guid
guid          8c4ac332-975f-4717-ad7b-ba4a4e968fff
immutable_id  MsNKjF+XF0ete7pKTpaP/w==
hex           32c34a8c5f971747ad7bba4a4e968fff
ldap_filter   \\32\\c3\\4a\\8c\\5f\\97\\17\\47\\ad\\7b\\ba\\4a\\4e\\96\\8f\\ff
dn            CN={4D734E4B6A462B58463065746537704B547061502F773D3D}
",
        &stdout(&out),
    );
}

#[test]
fn json_for_several_values_and_errors() {
    let dir = Dir::new();
    let out = run(dir.hardmatch().args([
        "convert",
        "--json",
        "BpazOkLGm0iEtljAONPvOQ==",
        "CN={514635484D4B376E38307176645973555049486139513D3D}",
        "System.Byte[]",
        "ZjdjYzA3ZDctN2MxNS00NDdkLTg3NmQtYzAxYjBlNWE5ZTM4",
    ]));
    assert_eq!(out.status.code(), Some(1), "a bad value makes exit 1");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["guid"], "3ab39606-c642-489b-84b6-58c038d3ef39");
    assert_eq!(json[1]["immutable_id"], "QF5HMK7n80qvdYsUPIHa9Q==");
    assert!(json[2]["error"]
        .as_str()
        .unwrap()
        .contains("the export lost the value"));
    let aadint = json[3]["error"].as_str().unwrap();
    assert!(
        aadint.contains("Get-AADIntImmutableID") && aadint.contains("1wfM9xV8fUSHbcAbDlqeOA=="),
        "{aadint}"
    );
}

#[test]
fn ambiguous_hex_shows_the_other_reading() {
    let dir = Dir::new();
    let out = run(dir
        .hardmatch()
        .args(["convert", "f7cc07d77c15447d876dc01b0e5a9e38"]));
    let text = stdout(&out);
    assert!(text.contains("form          hex"), "{text}");
    assert!(
        text.contains("the ImmutableId is 1wfM9xV8fUSHbcAbDlqeOA=="),
        "{text}"
    );
}
