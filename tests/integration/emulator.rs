//! The Graph emulator over real HTTP on 127.0.0.1: each behaviour docs/graph.md documents.

use hardmatch::emulator::throttle::Quotas;
use hardmatch::emulator::{self, Config, Running};
use hardmatch::tenant::{Tenant, User};
use serde_json::{json, Value};

use crate::util::sample;

const TOKEN: &str = "test-token";

fn sample_tenant() -> Tenant {
    Tenant::load(&sample("tenant.json")).unwrap()
}

/// A fast emulator: no latency, a fixed token.
fn config() -> Config {
    Config {
        latency_ms: (0, 0),
        access_token: Some(TOKEN.into()),
        ..Config::default()
    }
}

async fn start(tenant: Tenant, config: Config) -> Running {
    emulator::spawn(tenant, config).await.unwrap()
}

struct Call {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn call(method: &str, url: &str, body: Option<Value>, eventual: bool) -> Call {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method.parse().unwrap(), url)
        .bearer_auth(TOKEN)
        .header("client-request-id", "c-1");
    if eventual {
        request = request.header("ConsistencyLevel", "eventual");
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Call {
        status,
        headers,
        body,
    }
}

async fn get(url: &str) -> Call {
    call("GET", url, None, false).await
}

fn many_users(n: usize) -> Tenant {
    let users = (0..n)
        .map(|i| User {
            id: format!("00000000-0000-0000-0000-{i:012}"),
            user_principal_name: format!("user{i}@contoso.com"),
            ..User::default()
        })
        .collect();
    Tenant {
        tenant_id: "t".into(),
        users,
        ..Tenant::default()
    }
}

#[tokio::test]
async fn pages_through_2500_users_with_absolute_next_links() {
    let emu = start(many_users(2500), config()).await;
    let mut url = format!(
        "{}/v1.0/users?$select=id,userPrincipalName&$top=999",
        emu.url
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = get(&url).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for user in page.body["value"].as_array().unwrap() {
            seen.push(user["userPrincipalName"].as_str().unwrap().to_string());
        }
        match page.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&emu.url), "absolute: {next}");
                assert!(next.contains("$skiptoken="), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 2500));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2500, "no user twice");
    let stats = emu.emulator.stats();
    assert_eq!(stats.requests["GET /users"], 3);
}

#[tokio::test]
async fn select_only_properties_and_filters() {
    let emu = start(sample_tenant(), config()).await;
    let plain = get(&format!("{}/v1.0/users/bob.brown@contoso.com", emu.url)).await;
    assert!(
        plain.body.get("onPremisesImmutableId").is_none(),
        "only on $select: {}",
        plain.body
    );
    let selected = get(&format!(
        "{}/v1.0/users/bob.brown@contoso.com?$select=id,onPremisesImmutableId",
        emu.url
    ))
    .await;
    assert_eq!(
        selected.body["onPremisesImmutableId"],
        "BpazOkLGm0iEtljAONPvOQ=="
    );

    let by_upn = get(&format!(
        "{}/v1.0/users?$filter={}",
        emu.url,
        urlencode("userPrincipalName eq 'kate.o''brien@contoso.com'")
    ))
    .await;
    assert_eq!(by_upn.body["value"][0]["displayName"], "Kate O'Brien");
    let by_proxy = get(&format!(
        "{}/v1.0/users?$filter={}",
        emu.url,
        urlencode("proxyAddresses/any(x:x eq 'smtp:sales@contoso.com')")
    ))
    .await;
    assert_eq!(by_proxy.body["value"].as_array().unwrap().len(), 2);
    let by_anchor = get(&format!(
        "{}/v1.0/users?$filter={}&$select=userPrincipalName",
        emu.url,
        urlencode("onPremisesImmutableId in ('yYuRNW0Z6kCXeYidebdT8A==', 'nope')")
    ))
    .await;
    assert_eq!(
        by_anchor.body["value"][0]["userPrincipalName"],
        "frank.old@contoso.com"
    );

    let ne = format!(
        "{}/v1.0/users?$filter={}",
        emu.url,
        urlencode("mail ne 'x@y.com'")
    );
    let refused = get(&ne).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (400, Some("Request_UnsupportedQuery"))
    );
    let allowed = call("GET", &format!("{ne}&$count=true"), None, true).await;
    assert_eq!(allowed.status, 200);
    assert!(allowed.body["@odata.count"].as_u64().unwrap() > 10);
    let count = call("GET", &format!("{}/v1.0/users/$count", emu.url), None, true).await;
    assert_eq!(count.headers["content-type"], "text/plain");
    assert_eq!(count.body, json!(24));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn odd_upns_and_the_exact_404() {
    let emu = start(sample_tenant(), config()).await;
    let dollar = get(&format!(
        "{}/v1.0/users('$svc-backup@contoso.com')",
        emu.url
    ))
    .await;
    assert_eq!(dollar.body["displayName"], "Backup service account");
    let guest = get(&format!(
        "{}/v1.0/users/partner_fabrikam.com%23EXT%23@contoso.onmicrosoft.com",
        emu.url
    ))
    .await;
    assert_eq!(guest.status, 200);
    let missing = get(&format!("{}/v1.0/users/hank.hill@contoso.com", emu.url)).await;
    assert_eq!(missing.status, 404);
    let error = &missing.body["error"];
    assert_eq!(error["code"], "Request_ResourceNotFound");
    assert_eq!(
        error["message"],
        "Resource 'hank.hill@contoso.com' does not exist or one of its queried reference-property objects are not present."
    );
    assert_eq!(error["innerError"]["client-request-id"], "c-1");
    assert!(
        error["innerError"]["request-id"].is_string() && error["innerError"]["date"].is_string()
    );
    assert_eq!(missing.headers["client-request-id"], "c-1");
    assert!(missing.headers.contains_key("request-id"));
}

#[tokio::test]
// Longer than 80 lines on purpose: one scenario against one emulator, each step checked in turn
async fn patch_rules() {
    let emu = start(sample_tenant(), config()).await;
    let patch = |who: &str, value: Value| {
        let url = format!("{}/v1.0/users/{who}", emu.url);
        async move {
            call(
                "PATCH",
                &url,
                Some(json!({"onPremisesImmutableId": value})),
                false,
            )
            .await
        }
    };
    assert_eq!(
        patch("alice.adams@contoso.com", json!("1wfM9xV8fUSHbcAbDlqeOA=="))
            .await
            .status,
        204
    );
    let held = patch("erin.evans@contoso.com", json!("yYuRNW0Z6kCXeYidebdT8A==")).await;
    assert_eq!(held.status, 400);
    let frank = emu
        .emulator
        .tenant()
        .users
        .iter()
        .find(|u| u.user_principal_name == "frank.old@contoso.com")
        .unwrap()
        .id
        .clone();
    let error = &held.body["error"];
    assert_eq!(error["code"], "Request_BadRequest");
    assert_eq!(
        error["message"],
        "Another object with the same value for property onPremisesImmutableId already exists."
    );
    assert_eq!(error["details"][0]["code"], "ObjectConflict");
    assert_eq!(error["details"][1]["code"], "ConflictingObjects");
    assert_eq!(error["details"][1]["target"], format!("User_{frank}"));
    let deleted_holder = patch("gina.gray@contoso.com", json!("YNUtEnUxmkygYLgUmFN2Vg==")).await;
    assert_eq!(
        deleted_holder.status, 400,
        "deleted users reserve anchors by default"
    );
    let synced = patch("carol.clark@contoso.com", json!("MsNKjF+XF0ete7pKTpaP/w==")).await;
    assert!(synced.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Unable to update the specified properties for on-premises mastered"));
    let federated = patch(
        "ivan.ito@fed.contoso.com",
        json!("T7QuCxT4zU65bifcqZckTQ=="),
    )
    .await;
    assert!(federated.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("federated domain"));
    for bad in ["a$b", "a_b", &"x".repeat(60)] {
        assert_eq!(
            patch("mike.miller@contoso.com", json!(bad)).await.status,
            400,
            "{bad}"
        );
    }
    assert_eq!(
        patch("bob.brown@contoso.com", Value::Null).await.status,
        204
    );
    assert_eq!(
        patch("dave.dunn@contoso.com", json!("")).await.status,
        204,
        "the SDK's empty string clears"
    );
    let state = get(&format!("{}/_emulator/state", emu.url)).await.body;
    let anchor_of = |upn: &str| {
        state["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["userPrincipalName"] == upn)
            .unwrap()["onPremisesImmutableId"]
            .clone()
    };
    assert_eq!(
        anchor_of("alice.adams@contoso.com"),
        "1wfM9xV8fUSHbcAbDlqeOA=="
    );
    assert_eq!(anchor_of("bob.brown@contoso.com"), Value::Null);
    let stats = get(&format!("{}/_emulator/stats", emu.url)).await.body;
    assert_eq!(stats["writesApplied"].as_object().unwrap().len(), 3);
}

#[tokio::test]
async fn deleted_users_purge_and_restore() {
    let emu = start(
        sample_tenant(),
        Config {
            deleted_users_reserve_anchors: true,
            ..config()
        },
    )
    .await;
    let cast = get(&format!("{}/v1.0/directory/deletedItems/microsoft.graph.user?$select=id,userPrincipalName,onPremisesImmutableId,deletedDateTime", emu.url)).await;
    let deleted = cast.body["value"].as_array().unwrap().clone();
    assert_eq!(deleted.len(), 2);
    assert_eq!(
        get(&format!("{}/v1.0/directory/deletedItems", emu.url))
            .await
            .status,
        400,
        "the cast is required"
    );
    let gina_old = deleted
        .iter()
        .find(|d| d["onPremisesImmutableId"] == "YNUtEnUxmkygYLgUmFN2Vg==")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let purge = call(
        "DELETE",
        &format!("{}/v1.0/directory/deletedItems/{gina_old}", emu.url),
        None,
        false,
    )
    .await;
    assert_eq!(purge.status, 204);
    let stamp = call(
        "PATCH",
        &format!("{}/v1.0/users/gina.gray@contoso.com", emu.url),
        Some(json!({"onPremisesImmutableId": "YNUtEnUxmkygYLgUmFN2Vg=="})),
        false,
    )
    .await;
    assert_eq!(
        stamp.status, 204,
        "the purged holder no longer reserves the anchor"
    );
    let lena = deleted
        .iter()
        .find(|d| d["onPremisesImmutableId"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let restore = call(
        "POST",
        &format!("{}/v1.0/directory/deletedItems/{lena}/restore", emu.url),
        None,
        false,
    )
    .await;
    assert_eq!(restore.status, 200);
    let domains = get(&format!("{}/v1.0/domains", emu.url)).await;
    assert_eq!(domains.body["value"][2]["authenticationType"], "Federated");
}

#[tokio::test]
async fn write_quota_and_retry_after() {
    let quotas = Quotas {
        app_writes_per_150s: 3.0,
        ..Quotas::default()
    };
    let emu = start(
        sample_tenant(),
        Config {
            quotas,
            // Slow enough that a loaded machine's four requests never outlast a token's
            // refill (0.5 s at 100x did, now and then).
            time_scale: 10.0,
            ..config()
        },
    )
    .await;
    let url = format!("{}/v1.0/users/alice.adams@contoso.com", emu.url);
    let body = json!({"onPremisesImmutableId": "1wfM9xV8fUSHbcAbDlqeOA=="});
    for _ in 0..3 {
        assert_eq!(
            call("PATCH", &url, Some(body.clone()), false).await.status,
            204
        );
    }
    let throttled = call("PATCH", &url, Some(body.clone()), false).await;
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.body["error"]["code"], "TooManyRequests");
    let retry_after: f64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // 3 writes per 150 s: one every 50 emulated s, 5 real s at 10x.
    assert!(retry_after > 0.0 && retry_after <= 5.0, "{retry_after}");
    assert_eq!(
        throttled.headers["x-ms-throttle-information"],
        "WriteLimitExceeded"
    );
    assert!(throttled.headers["x-ms-throttle-scope"]
        .to_str()
        .unwrap()
        .starts_with("Tenant_Application/Write/fixed-token-app/"));
    let again = call("PATCH", &url, Some(body.clone()), false).await;
    assert_eq!(again.status, 429, "too early: throttled again");
    tokio::time::sleep(std::time::Duration::from_secs_f64(retry_after + 0.05)).await;
    assert_eq!(call("PATCH", &url, Some(body), false).await.status, 204);
    let reads = get(&format!("{}/v1.0/users/bob.brown@contoso.com", emu.url)).await;
    assert_eq!(reads.headers["x-ms-resource-unit"], "1");
}

#[tokio::test]
async fn batch_rules() {
    let quotas = Quotas {
        app_writes_per_150s: 1.0,
        ..Quotas::default()
    };
    let emu = start(sample_tenant(), Config { quotas, ..config() }).await;
    let url = format!("{}/v1.0/$batch", emu.url);
    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/domains"}))
        .collect();
    assert_eq!(
        call("POST", &url, Some(json!({"requests": too_many})), false)
            .await
            .status,
        400
    );
    let patch = |id: &str, who: &str| json!({"id": id, "method": "PATCH", "url": format!("/users/{who}"), "headers": {"Content-Type": "application/json"}, "body": {"onPremisesImmutableId": "D+jRzX3jZEKAfuwLKy9New=="}});
    let requests = json!({"requests": [
        patch("1", "kate.o'brien@contoso.com"),
        patch("2", "mike.miller@contoso.com"),
        {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com"},
        {"id": "4", "method": "GET", "url": "/domains", "dependsOn": ["3"]},
    ]});
    let batch = call("POST", &url, Some(requests), false).await;
    assert_eq!(batch.status, 200);
    let by_id = |id: &str| {
        batch.body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("1")["status"], 204);
    let throttled = by_id("2");
    assert_eq!(
        throttled["status"], 429,
        "each inner request is throttled on its own"
    );
    assert!(
        throttled["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert_eq!(by_id("3")["status"], 404);
    assert_eq!(by_id("4")["status"], 424);
    assert_eq!(
        batch.body["responses"][0]["id"], "4",
        "answers come in the emulator's own order"
    );
}

#[tokio::test]
async fn client_credentials_and_token_expiry() {
    let config = Config {
        clients: vec![("app-1".into(), "emulator-secret".into())],
        access_token: None,
        token_lifetime_secs: 60.0,
        time_scale: 200.0,
        ..config()
    };
    let emu = start(sample_tenant(), config).await;
    let tenant_id = emu.emulator.tenant().tenant_id;
    let token_url = format!("{}/{tenant_id}/oauth2/v2.0/token", emu.url);
    let client = reqwest::Client::new();
    let sign_in = |secret: &'static str, id: &'static str| {
        let client = client.clone();
        let url = token_url.clone();
        async move {
            let form = [
                ("client_id", id),
                ("client_secret", secret),
                ("scope", "https://graph.microsoft.com/.default"),
                ("grant_type", "client_credentials"),
            ];
            let response = client.post(&url).form(&form).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, wrong) = sign_in("nope", "app-1").await;
    assert_eq!(status, 401);
    assert_eq!(wrong["error"], "invalid_client");
    assert!(wrong["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215: Invalid client secret provided."));
    assert!(
        !wrong.to_string().contains("nope"),
        "the secret is never echoed"
    );
    let (_, unknown) = sign_in("x", "app-2").await;
    assert_eq!(unknown["error_codes"][0], 700016);
    let (status, ok) = sign_in("emulator-secret", "app-1").await;
    assert_eq!(status, 200);
    assert_eq!(ok["token_type"], "Bearer");
    let token = ok["access_token"].as_str().unwrap().to_string();
    let users = format!("{}/v1.0/domains", emu.url);
    let fine = client.get(&users).bearer_auth(&token).send().await.unwrap();
    assert_eq!(fine.status().as_u16(), 200);
    let none = client.get(&users).send().await.unwrap();
    assert_eq!(none.status().as_u16(), 401);
    // 60 emulated seconds at 200x: 0.3 s.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let expired = client.get(&users).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status().as_u16(), 401);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn tls_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("emulator.pem");
    let emu = start(
        sample_tenant(),
        Config {
            tls_cert_out: Some(cert.clone()),
            ..config()
        },
    )
    .await;
    assert!(emu.url.starts_with("https://127.0.0.1:"));
    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/v1.0/domains", emu.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn the_command_prints_its_url_and_serves() {
    let (mut child, url) = crate::util::emulator_command(TOKEN, &[]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let domains = runtime.block_on(get(&format!("{url}/v1.0/domains")));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(domains.status, 200);
}

/// `--state FILE`: the tenant a rehearsal changed is saved when the emulator stops (Ctrl-C)
/// and served again by the next emulator given the same file.
#[test]
fn the_command_keeps_its_tenant_in_a_state_file_across_runs() {
    let dir = crate::util::Dir::new();
    let state = dir.join("state.json");
    let state_arg = ["--state", state.to_str().unwrap()];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let user = |url: &str| {
        runtime.block_on(get(&format!(
            "{url}/v1.0/users/alice.adams@contoso.com?$select=onPremisesImmutableId"
        )))
    };

    let (mut child, url) = crate::util::emulator_command(TOKEN, &state_arg);
    let patched = runtime.block_on(call(
        "PATCH",
        &format!("{url}/v1.0/users/alice.adams@contoso.com"),
        Some(json!({"onPremisesImmutableId": "1wfM9xV8fUSHbcAbDlqeOA=="})),
        false,
    ));
    assert_eq!(patched.status, 204, "{:?}", patched.body);
    // SAFETY: kill with a child's own pid has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    let saved = Tenant::load(&state).unwrap();
    let alice = saved
        .users
        .iter()
        .find(|u| u.user_principal_name == "alice.adams@contoso.com")
        .unwrap();
    assert_eq!(
        alice.on_premises_immutable_id.as_deref(),
        Some("1wfM9xV8fUSHbcAbDlqeOA==")
    );

    let (mut again, url) = crate::util::emulator_command(TOKEN, &state_arg);
    let read = user(&url);
    again.kill().unwrap();
    again.wait().unwrap();
    assert_eq!(
        read.body["onPremisesImmutableId"],
        "1wfM9xV8fUSHbcAbDlqeOA=="
    );

    let (mut fresh, url) = crate::util::emulator_command(TOKEN, &[]);
    let read = user(&url);
    fresh.kill().unwrap();
    fresh.wait().unwrap();
    assert_eq!(
        read.body["onPremisesImmutableId"],
        Value::Null,
        "without --state, the tenant file"
    );
}

#[tokio::test]
// Longer than 80 lines on purpose: one scenario against one emulator, each step checked in turn
async fn every_fault_kind_over_http() {
    let fault = |spec: &str| Config {
        faults: spec.parse().unwrap(),
        ..config()
    };
    let domains = |emu: &Running| format!("{}/v1.0/domains", emu.url);

    let emu = start(sample_tenant(), fault("500=1")).await;
    assert_eq!(get(&domains(&emu)).await.status, 500);
    let emu = start(sample_tenant(), fault("504=1")).await;
    assert_eq!(get(&domains(&emu)).await.status, 504);

    // A 429 below every limit, as Graph sends when it is loaded.
    let emu = start(sample_tenant(), fault("429=1")).await;
    let throttled = get(&domains(&emu)).await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.headers.contains_key("retry-after"));

    // A reset mid-response: the client sees a broken body, not an answer.
    let emu = start(sample_tenant(), fault("reset=1")).await;
    let broken = reqwest::Client::new()
        .get(domains(&emu))
        .bearer_auth(TOKEN)
        .send()
        .await;
    let failed = match broken {
        Err(_) => true,
        Ok(response) => response.bytes().await.is_err(),
    };
    assert!(failed, "the connection was cut mid-response");

    // Slow: 2,000 emulated ms at 10x is 200 real ms.
    let emu = start(
        sample_tenant(),
        Config {
            time_scale: 10.0,
            ..fault("slow=1,slow-ms=2000")
        },
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(get(&domains(&emu)).await.status, 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );

    // Early expiry: issued tokens stop working at once.
    let config = Config {
        clients: vec![("app".into(), "s".into())],
        access_token: None,
        ..fault("expire=1")
    };
    let emu = start(sample_tenant(), config).await;
    let form = [
        ("client_id", "app"),
        ("client_secret", "s"),
        ("scope", "https://graph.microsoft.com/.default"),
        ("grant_type", "client_credentials"),
    ];
    let token: Value = reqwest::Client::new()
        .post(format!(
            "{}/72f988bf-0000-4000-8000-00000000c0a7/oauth2/v2.0/token",
            emu.url
        ))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = reqwest::Client::new()
        .get(domains(&emu))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(emu.emulator.stats().faults, 1);
}

#[tokio::test]
async fn a_storm_answers_every_request_429_until_it_passes() {
    let running = start(
        sample_tenant(),
        Config {
            time_scale: 100.0,
            ..config()
        },
    )
    .await;
    let users = format!("{}/v1.0/users?$top=5", running.url);
    let started = call(
        "POST",
        &format!("{}/_emulator/storm?seconds=30", running.url),
        None,
        false,
    )
    .await;
    assert_eq!(started.status, 200);
    let stormed = call("GET", &users, None, false).await;
    assert_eq!(stormed.status, 429);
    let retry_after: f64 = stormed.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (0.1..=0.3).contains(&retry_after),
        "30 emulated seconds at 100x: {retry_after}"
    );
    // Inside $batch too.
    let batch = json!({"requests": [{"id": "1", "method": "GET", "url": "/users?$top=1"}]});
    let answer = call(
        "POST",
        &format!("{}/v1.0/$batch", running.url),
        Some(batch),
        false,
    )
    .await;
    assert_eq!(answer.body["responses"][0]["status"], 429);
    tokio::time::sleep(std::time::Duration::from_secs_f64(retry_after + 0.05)).await;
    assert_eq!(call("GET", &users, None, false).await.status, 200);
    running.stop().await;
}

#[tokio::test]
async fn expire_tokens_makes_every_issued_token_fail_with_401() {
    let running = start(
        sample_tenant(),
        Config {
            clients: vec![("app-1".into(), "emulator-only-secret".into())],
            ..config()
        },
    )
    .await;
    let tenant = sample_tenant().tenant_id;
    let issued: Value = reqwest::Client::new()
        .post(format!("{}/{tenant}/oauth2/v2.0/token", running.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "app-1"),
            ("client_secret", "emulator-only-secret"),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = issued["access_token"].as_str().unwrap();
    let users = |token: String| {
        let url = format!("{}/v1.0/users?$top=1", running.url);
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(users(token.to_string()).await, 200);
    let expired = call(
        "POST",
        &format!("{}/_emulator/expire-tokens", running.url),
        None,
        false,
    )
    .await;
    assert_eq!(expired.status, 200);
    assert_eq!(users(token.to_string()).await, 401);
    running.stop().await;
}

#[tokio::test]
// Longer than 80 lines on purpose: one scenario against one emulator, each step checked in turn
async fn beta_serves_object_identifiers_and_privileged_roles_that_v1_refuses() {
    let emu = start(sample_tenant(), config()).await;
    let select = "$select=id,onPremisesObjectIdentifier";
    let refused = get(&format!("{}/v1.0/users?{select}", emu.url)).await;
    assert_eq!(
        (refused.status, refused.body["error"]["code"].as_str()),
        (400, Some("Request_BadRequest"))
    );
    let vic = "35d1d69f-1af7-5c4f-9bd0-48a16a0b060c";
    let one = get(&format!("{}/beta/users/{vic}?{select}", emu.url)).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        one.body["onPremisesObjectIdentifier"],
        "d3b07384-d113-4ec6-a8a4-5b1e0c2f6a7e"
    );
    let filtered = get(&format!(
        "{}/beta/users?$filter={}&{select}",
        emu.url,
        urlencode(&format!("id in ('{vic}')"))
    ))
    .await;
    assert_eq!(filtered.body["value"].as_array().unwrap().len(), 1);

    let privileged = urlencode("isPrivileged eq true");
    let definitions = get(&format!(
        "{}/beta/roleManagement/directory/roleDefinitions?$filter={privileged}",
        emu.url
    ))
    .await;
    let names: Vec<&str> = definitions.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Global Administrator", "Privileged Role Administrator"]
    );
    let on_v1 = get(&format!(
        "{}/v1.0/roleManagement/directory/roleDefinitions?$filter={privileged}",
        emu.url
    ))
    .await;
    assert_eq!(on_v1.status, 400, "isPrivileged is beta only");

    let eligible = get(&format!(
        "{}/v1.0/roleManagement/directory/roleEligibilitySchedules",
        emu.url
    ))
    .await;
    let group = eligible.body["value"][0]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let members = get(&format!(
        "{}/v1.0/groups/{group}/transitiveMembers?$select=id",
        emu.url
    ))
    .await;
    assert_eq!(members.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(
        get(&format!("{}/v1.0/groups/{vic}/transitiveMembers", emu.url))
            .await
            .status,
        404,
        "a user is no group"
    );
    emu.stop().await;

    // The switches: no RoleManagement.Read.Directory, and a tenant without P2.
    for (config, path) in [
        (
            Config {
                forbid_role_reads: true,
                ..config()
            },
            "/v1.0/roleManagement/directory/roleAssignments",
        ),
        (
            Config {
                refuse_role_eligibility: true,
                ..config()
            },
            "/v1.0/roleManagement/directory/roleEligibilitySchedules",
        ),
    ] {
        let emu = start(sample_tenant(), config).await;
        assert_eq!(
            get(&format!("{}{path}", emu.url)).await.status,
            403,
            "{path}"
        );
        emu.stop().await;
    }
}

/// The role-assignable groups as Graph serves them: `isAssignableToRole eq` is a plain filter
/// (no ConsistencyLevel needed), `$count` needs it, other filters are refused; each group's
/// members and owners; all refused for an app without GroupMember.Read.All.
#[tokio::test]
async fn role_assignable_groups_are_listed_with_their_members_and_owners() {
    let mut tenant = hardmatch::emulator::synthetic::tenant(4);
    hardmatch::emulator::synthetic::add_role_assignable_group(&mut tenant, "Desk", &[0], &[1, 2]);
    let emu = start(tenant.clone(), config()).await;
    let groups = format!("{}/v1.0/groups", emu.url);
    let filter = "$filter=isAssignableToRole%20eq%20true&$select=id,displayName";
    let listed = get(&format!("{groups}?{filter}")).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["value"][0]["displayName"], "Desk");
    let id = listed.body["value"][0]["id"].as_str().unwrap().to_string();
    let counted = format!("{groups}?{filter}&$count=true");
    assert_eq!(
        get(&counted).await.status,
        400,
        "$count without ConsistencyLevel"
    );
    let counted = call("GET", &counted, None, true).await;
    assert_eq!(counted.status, 200, "{}", counted.body);
    assert_eq!(counted.body["@odata.count"], 1, "{}", counted.body);
    assert_eq!(
        get(&format!("{groups}?$filter=isAssignableToRole%20ne%20true"))
            .await
            .status,
        400
    );
    let ids = |call: Call| -> Vec<String> {
        call.body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect()
    };
    let members = get(&format!("{groups}/{id}/members?$select=id")).await;
    assert_eq!(ids(members), [hardmatch::emulator::synthetic::cloud_id(0)]);
    let owners = get(&format!("{groups}/{id}/owners?$select=id")).await;
    assert_eq!(
        owners.body["value"][0]["@odata.type"],
        "#microsoft.graph.user"
    );
    assert_eq!(
        ids(owners),
        [1, 2].map(hardmatch::emulator::synthetic::cloud_id)
    );
    assert_eq!(get(&format!("{groups}/nobody/owners")).await.status, 404);
    emu.stop().await;

    let emu = start(
        tenant,
        Config {
            forbid_group_reads: true,
            ..config()
        },
    )
    .await;
    let groups = format!("{}/v1.0/groups", emu.url);
    for path in [
        format!("{groups}?{filter}"),
        format!("{groups}/{id}/owners"),
        format!("{groups}/{id}/transitiveMembers"),
    ] {
        assert_eq!(get(&path).await.status, 403, "{path}");
    }
    emu.stop().await;
}

/// Sensitive attributes (docs/graph.md): the anchor and UPN of a user who holds a privileged
/// role (Pete, Global Administrator) or is eligible for one through a role-assignable group
/// (Quinn, Tier 0 Admins) are the app's to change only when it holds a privileged role itself.
#[tokio::test]
async fn privileged_users_sensitive_attributes_need_a_privileged_app() {
    let write =
        |url: String, body: Value| async move { call("PATCH", &url, Some(body), false).await };
    let anchor = json!({"onPremisesImmutableId": "D+jRzX3jZEKAfuwLKy9New=="});
    let emu = start(sample_tenant(), config()).await;
    let users = format!("{}/v1.0/users", emu.url);
    let denied = write(format!("{users}/pete.price@contoso.com"), anchor.clone()).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(
        denied.body["error"]["message"],
        "Insufficient privileges to complete the operation."
    );
    let upn = json!({"userPrincipalName": "quinn.q@contoso.com"});
    let through_group = write(format!("{users}/quinn.quigley@contoso.com"), upn.clone()).await;
    assert_eq!(
        through_group.status, 403,
        "eligible through a role-assignable group"
    );
    let helpdesk = write(format!("{users}/alice.adams@contoso.com"), anchor.clone()).await;
    assert_eq!(
        helpdesk.status, 204,
        "Helpdesk Administrator is not privileged"
    );
    let stats = get(&format!("{}/_emulator/stats", emu.url)).await.body;
    assert_eq!(stats["writesTotal"], 1, "nothing refused was written");
    emu.stop().await;

    let emu = start(
        sample_tenant(),
        Config {
            app_privileged: true,
            ..config()
        },
    )
    .await;
    let users = format!("{}/v1.0/users", emu.url);
    let pete = write(format!("{users}/pete.price@contoso.com"), anchor).await;
    assert_eq!(pete.status, 204, "{:?}", pete.body);
    assert_eq!(
        write(format!("{users}/quinn.quigley@contoso.com"), upn)
            .await
            .status,
        204
    );
}

/// A user in a federated domain keeps its anchor: a new value and null are both refused in
/// place; the same value again changes nothing and is not.
#[tokio::test]
async fn a_federated_users_anchor_is_neither_changed_nor_cleared_in_place() {
    let emu = start(sample_tenant(), config()).await;
    emu.emulator.edit_tenant(|t| {
        let ivan = t
            .users
            .iter_mut()
            .find(|u| u.user_principal_name == "ivan.ito@fed.contoso.com");
        ivan.unwrap().on_premises_immutable_id = Some("T7QuCxT4zU65bifcqZckTQ==".into());
    });
    let url = format!("{}/v1.0/users/ivan.ito@fed.contoso.com", emu.url);
    let set = |value: Value| {
        let url = url.clone();
        async move {
            call(
                "PATCH",
                &url,
                Some(json!({"onPremisesImmutableId": value})),
                false,
            )
            .await
        }
    };
    for refused in [json!("D+jRzX3jZEKAfuwLKy9New=="), Value::Null, json!("")] {
        let answer = set(refused.clone()).await;
        assert_eq!(answer.status, 400, "{refused}");
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("federated domain"),
            "{refused}: {:?}",
            answer.body
        );
    }
    assert_eq!(set(json!("T7QuCxT4zU65bifcqZckTQ==")).await.status, 204);
    let ivan = emu
        .emulator
        .tenant()
        .users
        .into_iter()
        .find(|u| u.user_principal_name == "ivan.ito@fed.contoso.com");
    assert_eq!(
        ivan.unwrap().on_premises_immutable_id.as_deref(),
        Some("T7QuCxT4zU65bifcqZckTQ==")
    );
}

/// `read_lag_ms`: for that long after a write or a purge, every read (by id, by `$filter`,
/// inside `$batch`, of deleted items) sees the state before it, and a purged holder still
/// holds its anchor; then the latest state shows.
#[tokio::test]
async fn reads_lag_behind_writes_and_purges_for_the_read_lag() {
    // Long enough for a loaded machine to make every read inside it.
    let emu = start(
        sample_tenant(),
        Config {
            read_lag_ms: 3000,
            ..config()
        },
    )
    .await;
    let alice = format!("{}/v1.0/users/alice.adams@contoso.com", emu.url);
    let new = "D+jRzX3jZEKAfuwLKy9New==";
    let written = call(
        "PATCH",
        &alice,
        Some(json!({"onPremisesImmutableId": new})),
        false,
    )
    .await;
    assert_eq!(written.status, 204);
    let by_id = || async {
        get(&format!("{alice}?$select=id,onPremisesImmutableId"))
            .await
            .body["onPremisesImmutableId"]
            .clone()
    };
    let by_filter = || async {
        let url = format!(
            "{}/v1.0/users?$filter=onPremisesImmutableId%20eq%20'{}'",
            emu.url,
            urlencode(new)
        );
        get(&url).await.body["value"].as_array().unwrap().len()
    };
    let in_batch = || async {
        let requests = json!({"requests": [{"id": "1", "method": "GET", "url": "/users/alice.adams@contoso.com?$select=onPremisesImmutableId"}]});
        let batch = call(
            "POST",
            &format!("{}/v1.0/$batch", emu.url),
            Some(requests),
            false,
        )
        .await;
        batch.body["responses"][0]["body"]["onPremisesImmutableId"].clone()
    };
    let holder = "2228d96a-405f-5f98-8eaa-682c88d302df";
    let deleted = format!("{}/v1.0/directory/deletedItems/{holder}", emu.url);
    assert_eq!(call("DELETE", &deleted, None, false).await.status, 204);
    let gina = format!("{}/v1.0/users/gina.gray@contoso.com", emu.url);
    let stamp_gina = || {
        call(
            "PATCH",
            &gina,
            Some(json!({"onPremisesImmutableId": "YNUtEnUxmkygYLgUmFN2Vg=="})),
            false,
        )
    };

    assert_eq!(by_id().await, Value::Null, "the value before the write");
    assert_eq!(by_filter().await, 0);
    assert_eq!(in_batch().await, Value::Null);
    assert_eq!(
        get(&deleted).await.status,
        200,
        "the purged user still shows"
    );
    let held = stamp_gina().await;
    assert_eq!(held.status, 400, "the purged holder still holds the anchor");
    assert_eq!(
        held.body["error"]["details"][1]["target"],
        format!("User_{holder}")
    );

    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(by_id().await, new);
    assert_eq!(by_filter().await, 1);
    assert_eq!(in_batch().await, new);
    assert_eq!(get(&deleted).await.status, 404);
    assert_eq!(stamp_gina().await.status, 204);
}
