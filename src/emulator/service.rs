//! The Graph API itself: one request in, one reply out, independent of HTTP so that `$batch`
//! can run its inner requests through the very same code.
//!
//! Every behaviour here is written to docs/graph.md; where it says INFERRED, the behaviour is
//! a switch in [`Config`](super::Config).

use serde_json::{json, Map, Value};

use super::odata::{self, Filter};
use super::throttle::{self, Decision};
use super::Emulator;
use crate::tenant::{Group, User};

/// A request as the service sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    pub(crate) method: String,
    /// The path, still percent-encoded, e.g. `/v1.0/users/kate.o'brien%40contoso.com`.
    pub(crate) path: String,
    /// The raw query string, without `?`.
    pub(crate) query: String,
    pub(crate) authorization: Option<String>,
    pub(crate) client_request_id: Option<String>,
    pub(crate) consistency_eventual: bool,
    pub(crate) body: Vec<u8>,
    /// `http://127.0.0.1:port`, for `@odata.nextLink`.
    pub(crate) base_url: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Empty,
    Json(Value),
    Text(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl Reply {
    fn new(status: u16, body: Body) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub(super) fn json(status: u16, value: Value) -> Reply {
        Reply::new(status, Body::Json(value))
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// Graph's error body: `{"error":{"code","message","innerError":{...}}}`.
pub(crate) fn graph_error(status: u16, code: &str, message: &str) -> Reply {
    Reply::json(status, json!({"error": {"code": code, "message": message}}))
}

fn not_found(key: &str) -> Reply {
    graph_error(
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{key}' does not exist or one of its queried reference-property objects are not present."),
    )
}

fn bad_request(message: &str) -> Reply {
    graph_error(400, "Request_BadRequest", message)
}

/// Which Graph a path is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V1,
    Beta,
}

impl Version {
    fn prefix(self) -> &'static str {
        match self {
            Version::V1 => "/v1.0",
            Version::Beta => "/beta",
        }
    }
}

/// What a path names, after `/v1.0` or `/beta`.
#[derive(Debug, PartialEq)]
enum Route {
    Users,
    UsersCount,
    User(String),
    DeletedUsers,
    DeletedItemsWithoutCast,
    DeletedItem(String),
    RestoreDeleted(String),
    Domains,
    OnPremisesSync,
    Batch,
    RoleDefinitions,
    RoleAssignments,
    RoleEligibilitySchedules,
    Groups,
    Group(String),
    GroupMembers(String),
    GroupTransitiveMembers(String),
    GroupOwners(String),
}

impl Route {
    /// The path template for stats.
    fn template(&self) -> &'static str {
        match self {
            Route::Users => "/users",
            Route::UsersCount => "/users/$count",
            Route::User(_) => "/users/{id}",
            Route::DeletedUsers => "/directory/deletedItems/microsoft.graph.user",
            Route::DeletedItemsWithoutCast => "/directory/deletedItems",
            Route::DeletedItem(_) => "/directory/deletedItems/{id}",
            Route::RestoreDeleted(_) => "/directory/deletedItems/{id}/restore",
            Route::Domains => "/domains",
            Route::OnPremisesSync => "/directory/onPremisesSynchronization",
            Route::Batch => "/$batch",
            Route::RoleDefinitions => "/roleManagement/directory/roleDefinitions",
            Route::RoleAssignments => "/roleManagement/directory/roleAssignments",
            Route::RoleEligibilitySchedules => "/roleManagement/directory/roleEligibilitySchedules",
            Route::Groups => "/groups",
            Route::Group(_) => "/groups/{id}",
            Route::GroupMembers(_) => "/groups/{id}/members",
            Route::GroupTransitiveMembers(_) => "/groups/{id}/transitiveMembers",
            Route::GroupOwners(_) => "/groups/{id}/owners",
        }
    }

    /// The version and the route of a path; what beta serves here is what hardmatch reads
    /// from it (users, `$batch`, role definitions), and the rest too.
    fn parse(path: &str) -> Option<(Version, Route)> {
        let version = [Version::V1, Version::Beta]
            .into_iter()
            .find(|v| path.starts_with(v.prefix()))?;
        let rest = path[version.prefix().len()..].trim_start_matches('/');
        Some((version, Route::parse_rest(rest)?))
    }

    fn parse_rest(rest: &str) -> Option<Route> {
        let segments: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(decode)
            .collect();
        let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
        Some(match segs.as_slice() {
            ["users"] => Route::Users,
            ["users", "$count"] => Route::UsersCount,
            ["users", key] => Route::User(key.to_string()),
            [key] if key.starts_with("users(") => Route::User(parenthesised_key(key)?),
            ["directory", "deletedItems", "microsoft.graph.user"] => Route::DeletedUsers,
            ["directory", "deletedItems"] => Route::DeletedItemsWithoutCast,
            ["directory", "deletedItems", id] => Route::DeletedItem(id.to_string()),
            ["directory", "deletedItems", id, "restore"] => Route::RestoreDeleted(id.to_string()),
            ["domains"] => Route::Domains,
            ["directory", "onPremisesSynchronization"] => Route::OnPremisesSync,
            ["$batch"] => Route::Batch,
            ["roleManagement", "directory", "roleDefinitions"] => Route::RoleDefinitions,
            ["roleManagement", "directory", "roleAssignments"] => Route::RoleAssignments,
            ["roleManagement", "directory", "roleEligibilitySchedules"] => {
                Route::RoleEligibilitySchedules
            }
            ["groups"] => Route::Groups,
            ["groups", id] => Route::Group(id.to_string()),
            ["groups", id, "members"] => Route::GroupMembers(id.to_string()),
            ["groups", id, "transitiveMembers"] => Route::GroupTransitiveMembers(id.to_string()),
            ["groups", id, "owners"] => Route::GroupOwners(id.to_string()),
            _ => return None,
        })
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// `users('$x@y.com')`: the key form Graph needs for UPNs that start with `$`.
fn parenthesised_key(segment: &str) -> Option<String> {
    let inner = segment.strip_prefix("users(")?.strip_suffix(')')?;
    let quoted = inner.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(quoted.replace("''", "'"))
}

/// Query options, percent-decoded.
#[derive(Debug, Default)]
struct Query {
    select: Option<Vec<String>>,
    filter: Option<String>,
    top: Option<String>,
    skiptoken: Option<String>,
    count: bool,
    search: bool,
    expand: bool,
}

impl Query {
    fn parse(raw: &str) -> Query {
        let mut query = Query::default();
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            match key.as_ref() {
                "$select" => {
                    query.select = Some(value.split(',').map(|s| s.trim().to_string()).collect())
                }
                "$filter" => query.filter = Some(value.into_owned()),
                "$top" => query.top = Some(value.into_owned()),
                "$skiptoken" => query.skiptoken = Some(value.into_owned()),
                "$count" => query.count = value.eq_ignore_ascii_case("true"),
                "$search" => query.search = true,
                "$expand" => query.expand = true,
                _ => {}
            }
        }
        query
    }
}

/// Properties Graph returns on users only when `$select`ed.
const SELECT_ONLY: [&str; 7] = [
    "onPremisesImmutableId",
    "proxyAddresses",
    "onPremisesSyncEnabled",
    "accountEnabled",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "createdDateTime",
];
const SELECTABLE: [&str; 14] = [
    "userType",
    "onPremisesObjectIdentifier",
    "id",
    "userPrincipalName",
    "displayName",
    "mail",
    "onPremisesImmutableId",
    "proxyAddresses",
    "onPremisesSyncEnabled",
    "accountEnabled",
    "deletedDateTime",
    "onPremisesLastSyncDateTime",
    "onPremisesProvisioningErrors",
    "createdDateTime",
];
/// Collections: Graph answers `[]`, never `null`, for one that is empty.
const COLLECTIONS: [&str; 2] = ["proxyAddresses", "onPremisesProvisioningErrors"];

/// The first `$select`ed property users do not have in this version: beta alone has
/// onPremisesObjectIdentifier (docs/graph.md), v1.0 answers 400 for it.
fn unknown_property(select: Option<&[String]>, version: Version) -> Option<&str> {
    select?
        .iter()
        .find(|p| {
            let known = SELECTABLE.iter().any(|s| s.eq_ignore_ascii_case(p));
            let beta_only = p.eq_ignore_ascii_case("onPremisesObjectIdentifier");
            !known || (beta_only && version == Version::V1)
        })
        .map(String::as_str)
}

fn no_such_property(property: &str) -> Reply {
    bad_request(&format!(
        "Could not find a property named '{property}' on type 'microsoft.graph.user'."
    ))
}

fn user_json(user: &User, select: Option<&[String]>) -> Value {
    let full = serde_json::to_value(user).expect("users serialize");
    let mut out = Map::new();
    match select {
        Some(properties) => {
            for property in properties {
                let canonical = SELECTABLE
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(property))
                    .expect("checked");
                let empty = if COLLECTIONS.contains(canonical) {
                    json!([])
                } else {
                    Value::Null
                };
                out.insert(
                    canonical.to_string(),
                    full.get(*canonical).cloned().unwrap_or(empty),
                );
            }
        }
        None => {
            // Graph's default property set for users.
            out.insert("businessPhones".into(), json!([]));
            for name in [
                "displayName",
                "givenName",
                "jobTitle",
                "mail",
                "mobilePhone",
                "officeLocation",
                "preferredLanguage",
                "surname",
                "userPrincipalName",
                "id",
            ] {
                out.insert(name.into(), full.get(name).cloned().unwrap_or(Value::Null));
            }
            if let Some(deleted) = full.get("deletedDateTime") {
                out.insert("deletedDateTime".into(), deleted.clone());
            }
            debug_assert!(SELECT_ONLY.iter().all(|p| !out.contains_key(*p)));
        }
    }
    Value::Object(out)
}

impl Emulator {
    /// Counts a Graph request that an injected fault answers before it is served, so that
    /// the stats count every request a client sent.
    pub(super) fn count_faulted(&self, request: &Request) {
        if let Some((version, route)) = Route::parse(&request.path) {
            self.count_route(request, version, &route);
        }
    }

    /// Counted as `METHOD /path/template`, with `/beta` in front for beta.
    fn count_route(&self, request: &Request, version: Version, route: &Route) {
        let beta = if version == Version::Beta {
            "/beta"
        } else {
            ""
        };
        self.count(format!("{} {beta}{}", request.method, route.template()));
    }

    /// Serves one Graph request (`/v1.0/...`), already authenticated. `app` is the caller's
    /// application id, for the throttle.
    pub(super) fn serve_graph(&self, request: &Request, app: &str) -> Reply {
        self.with_state(|s| {
            s.stats
                .log_request(&request.method, &request.path, &request.query)
        });
        let Some((version, route)) = Route::parse(&request.path) else {
            return graph_error(
                400,
                "Request_BadRequest",
                &format!("Resource not found for the segment '{}'.", request.path),
            );
        };
        self.count_route(request, version, &route);
        if route == Route::Batch {
            return self.batch(request, app, version);
        }
        let query = Query::parse(&request.query);
        let is_list = matches!(
            route,
            Route::Users
                | Route::DeletedUsers
                | Route::RoleDefinitions
                | Route::RoleAssignments
                | Route::RoleEligibilitySchedules
                | Route::GroupTransitiveMembers(_)
        );
        let top = query.top.as_deref().and_then(|t| t.parse().ok());
        let is_write = request.method != "GET";
        if let Some(left) = self.storm_left() {
            return self.too_many_requests(
                left,
                &format!("Tenant_Application/ResourceUnit/{app}"),
                "ResourceUnitLimitExceeded",
            );
        }
        let cost = throttle::cost(
            &request.method,
            is_list,
            query.select.is_some(),
            query.expand,
            top,
        );
        match self.charge(app, cost, is_write) {
            Decision::Allowed {
                resource_units,
                limit_percentage,
            } => {
                let mut reply = self.dispatch(request, version, route, &query);
                reply = reply.header("x-ms-resource-unit", resource_units.to_string());
                if let Some(pct) = limit_percentage {
                    reply = reply.header("x-ms-throttle-limit-percentage", format!("{pct:.1}"));
                }
                reply
            }
            Decision::Throttled {
                retry_after,
                scope,
                information,
            } => self.too_many_requests(retry_after, &scope, information),
        }
    }

    /// The 429 Graph sends: fractional Retry-After in real seconds, scope and information.
    pub(super) fn too_many_requests(
        &self,
        retry_after: f64,
        scope: &str,
        information: &str,
    ) -> Reply {
        self.with_state(|s| s.stats.throttled += 1);
        let real = self.clock.to_real(retry_after).max(0.001);
        graph_error(429, "TooManyRequests", "Please retry again later.")
            .header("Retry-After", format!("{real:.3}"))
            .header("x-ms-throttle-scope", scope)
            .header("x-ms-throttle-information", information)
    }

    /// The 403 an app without the permission a route needs gets (the flags that take
    /// permissions away), or `None` when the request may go on.
    fn refusal(&self, request: &Request, route: &Route) -> Option<Reply> {
        let denied = || {
            graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        };
        if self.config.forbid_writes && request.method != "GET" {
            return Some(denied());
        }
        let role_read = matches!(
            route,
            Route::RoleDefinitions | Route::RoleAssignments | Route::RoleEligibilitySchedules
        );
        if role_read && self.config.forbid_role_reads {
            return Some(denied());
        }
        let group_read = matches!(
            route,
            Route::Groups
                | Route::GroupMembers(_)
                | Route::GroupTransitiveMembers(_)
                | Route::GroupOwners(_)
        );
        if group_read && self.config.forbid_group_reads {
            return Some(denied());
        }
        None
    }

    fn dispatch(&self, request: &Request, version: Version, route: Route, query: &Query) -> Reply {
        if let Some(refused) = self.refusal(request, &route) {
            return refused;
        }
        match (request.method.as_str(), route) {
            ("GET", Route::Users) => self.list(request, query, false, version),
            ("GET", Route::DeletedUsers) => self.list(request, query, true, version),
            ("GET", Route::UsersCount) => self.count_users(request),
            ("GET", Route::User(key)) => self.get_user(&key, query, version),
            ("GET", Route::RoleDefinitions) => self.role_definitions(request, query, version),
            ("GET", Route::RoleAssignments) => {
                let listed = self.with_state(|s| json!(s.tenant.role_assignments.clone().unwrap_or_default()));
                page(request, query, listed)
            }
            ("GET", Route::RoleEligibilitySchedules) => {
                if self.config.refuse_role_eligibility {
                    return graph_error(
                        403,
                        "AadPremiumLicenseRequired",
                        "The tenant needs a Microsoft Entra ID P2 license to use Privileged Identity Management.",
                    );
                }
                let listed = self.with_state(|s| {
                    json!(s.tenant.role_eligibility_schedules.clone().unwrap_or_default())
                });
                page(request, query, listed)
            }
            ("GET", Route::Groups) => self.groups(request, query),
            ("GET", Route::Group(id)) => self.with_state(|s| match s.find_group(&id) {
                Some(g) => Reply::json(200, group_json(g)),
                None => not_found(&id),
            }),
            ("GET", Route::GroupMembers(id)) => {
                self.group_links(request, query, &id, |g| g.members.as_ref())
            }
            ("GET", Route::GroupOwners(id)) => {
                self.group_links(request, query, &id, |g| g.owners.as_ref())
            }
            ("GET", Route::GroupTransitiveMembers(id)) => {
                match self.with_state(|s| s.transitive_members(&id)) {
                    Some(members) => page(request, query, Value::Array(members)),
                    None => not_found(&id),
                }
            }
            ("PATCH", Route::User(key)) => self.patch_user(&key, &request.body, version),
            ("GET", Route::DeletedItemsWithoutCast) => bad_request(
                "The request URI is not valid. Since the segment 'deletedItems' refers to a collection, cast it to a type such as microsoft.graph.user.",
            ),
            ("DELETE", Route::DeletedItem(id)) => self.purge(&id),
            ("GET", Route::DeletedItem(id)) => {
                let now = self.clock.now();
                self.with_state(|s| match s.deleted_as_seen(&id, now) {
                    Some(user) => Reply::json(200, user_json(user, None)),
                    None => not_found(&id),
                })
            }
            ("POST", Route::RestoreDeleted(id)) => self.restore(&id),
            ("GET", Route::Domains) => self.with_state(|s| {
                Reply::json(200, json!({"value": s.tenant.domains}))
            }),
            ("GET", Route::OnPremisesSync) => self.with_state(|s| {
                let blocked = s.tenant.block_cloud_object_takeover_through_hard_match_enabled.unwrap_or(false);
                let soft_blocked = s.tenant.block_soft_match_enabled.unwrap_or(false);
                Reply::json(200, json!({"value": [{"id": s.tenant.tenant_id, "features": {"blockCloudObjectTakeoverThroughHardMatchEnabled": blocked, "blockSoftMatchEnabled": soft_blocked}}]}))
            }),
            (method, route) => graph_error(405, "Request_BadRequest", &format!("{method} is not supported on {}.", route.template())),
        }
    }

    /// Role definitions: `isPrivileged` is a beta property, so v1.0 neither shows it nor
    /// filters on it. The only filter served is `isPrivileged eq true`.
    fn role_definitions(&self, request: &Request, query: &Query, version: Version) -> Reply {
        let privileged_only = match query.filter.as_deref() {
            None => false,
            Some(filter)
                if version == Version::V1
                    && filter.to_ascii_lowercase().contains("isprivileged") =>
            {
                return bad_request("Could not find a property named 'isPrivileged' on type 'microsoft.graph.unifiedRoleDefinition'.");
            }
            Some(filter) => {
                let words: Vec<String> = filter
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
                if words != ["isprivileged", "eq", "true"] {
                    return bad_request(&format!("Invalid filter clause: the emulator filters role definitions on isPrivileged eq true only, not {filter}"));
                }
                true
            }
        };
        let listed = self.with_state(|s| {
            let definitions = s.tenant.role_definitions.clone().unwrap_or_default();
            definitions
                .into_iter()
                .filter(|d| !privileged_only || d.is_privileged == Some(true))
                .map(|d| {
                    let mut value = json!({"id": d.id, "displayName": d.display_name});
                    if version == Version::Beta {
                        value["isPrivileged"] = json!(d.is_privileged.unwrap_or(false));
                    }
                    value
                })
                .collect::<Vec<_>>()
        });
        page(request, query, Value::Array(listed))
    }

    /// `GET /groups`: the groups of the tenant file, filtered on `isAssignableToRole eq
    /// true|false` only. Graph takes `eq` on it as a plain filter; `$count=true` still needs
    /// `ConsistencyLevel: eventual`, as on every directory list.
    fn groups(&self, request: &Request, query: &Query) -> Reply {
        let wanted = match query.filter.as_deref() {
            None => None,
            Some(filter) => {
                let words: Vec<String> = filter
                    .split_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
                match words.as_slice() {
                    [property, eq, value] if property == "isassignabletorole" && eq == "eq" => {
                        match value.as_str() {
                            "true" => Some(true),
                            "false" => Some(false),
                            _ => return bad_request(&format!("Invalid filter clause: {filter}")),
                        }
                    }
                    _ => return bad_request(&format!("Invalid filter clause: the emulator filters groups on isAssignableToRole eq only, not {filter}")),
                }
            }
        };
        if let Some(refused) = refuse_advanced_query(request, query, None) {
            return refused;
        }
        let listed = self.with_state(|s| {
            s.tenant
                .groups
                .iter()
                .filter(|g| wanted.is_none_or(|w| g.is_assignable_to_role.unwrap_or(false) == w))
                .map(group_json)
                .collect::<Vec<_>>()
        });
        page(request, query, Value::Array(listed))
    }

    /// A group's direct members or owners, as `{"@odata.type", "id"}` (users, as far as the
    /// tenant file tells); 404 for a group the tenant does not have.
    fn group_links(
        &self,
        request: &Request,
        query: &Query,
        id: &str,
        links: impl Fn(&Group) -> Option<&Vec<String>>,
    ) -> Reply {
        let listed = self.with_state(|s| {
            let group = s.find_group(id)?;
            Some(
                links(group)
                    .into_iter()
                    .flatten()
                    .map(|link| s.directory_object(link))
                    .collect::<Vec<_>>(),
            )
        });
        match listed {
            Some(listed) => page(request, query, Value::Array(listed)),
            None => not_found(id),
        }
    }

    fn list(&self, request: &Request, query: &Query, deleted: bool, version: Version) -> Reply {
        let top = match page_size(query) {
            Ok(top) => top,
            Err(refused) => return refused,
        };
        if let Some(unknown) = unknown_property(query.select.as_deref(), version) {
            return no_such_property(unknown);
        }
        let filter = match query.filter.as_deref().map(odata::parse).transpose() {
            Ok(f) => f,
            Err(e) => return bad_request(&format!("Invalid filter clause: {e}")),
        };
        if let Some(refused) = refuse_advanced_query(request, query, filter.as_ref()) {
            return refused;
        }
        let offset = match query.skiptoken.as_deref().map(decode_skiptoken) {
            None => 0,
            Some(Some(offset)) => offset,
            Some(None) => return bad_request("The specified page token value has expired and can no longer be included in your request."),
        };
        let now = self.clock.now();
        self.with_state(|s| {
            let users: Box<dyn Iterator<Item = &User>> = if deleted {
                Box::new(
                    s.tenant
                        .deleted_users
                        .iter()
                        .chain(s.lag.recently_purged(now)),
                )
            } else {
                Box::new(s.tenant.users.iter().map(|u| s.lag.seen(now, u)))
            };
            let matching: Vec<&User> = users
                .filter(|u| filter.as_ref().is_none_or(|f| f.matches(u)))
                .collect();
            let page: Vec<Value> = matching
                .iter()
                .skip(offset)
                .take(top)
                .map(|u| user_json(u, query.select.as_deref()))
                .collect();
            let resource = if deleted {
                "directory/deletedItems/microsoft.graph.user"
            } else {
                "users"
            };
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                json!(format!(
                    "{}{}/$metadata#{resource}",
                    request.base_url,
                    version.prefix()
                )),
            );
            if query.count {
                body.insert("@odata.count".into(), json!(matching.len()));
            }
            if offset + top < matching.len() {
                body.insert(
                    "@odata.nextLink".into(),
                    json!(next_link(request, offset + top)),
                );
            }
            body.insert("value".into(), Value::Array(page));
            Reply::json(200, Value::Object(body))
        })
    }

    fn count_users(&self, request: &Request) -> Reply {
        if !request.consistency_eventual {
            return graph_error(
                400,
                "Request_UnsupportedQuery",
                "Count is not currently supported without the ConsistencyLevel:eventual header.",
            );
        }
        self.with_state(|s| {
            Reply::new(200, Body::Text(s.tenant.users.len().to_string()))
                .header("content-type", "text/plain")
        })
    }

    fn get_user(&self, key: &str, query: &Query, version: Version) -> Reply {
        if let Some(unknown) = unknown_property(query.select.as_deref(), version) {
            return no_such_property(unknown);
        }
        let now = self.clock.now();
        self.with_state(|s| match s.find_user(key) {
            Some(i) => {
                let seen = s.lag.seen(now, &s.tenant.users[i]);
                Reply::json(200, user_json(seen, query.select.as_deref()))
            }
            None => not_found(key),
        })
    }

    fn patch_user(&self, key: &str, body: &[u8], version: Version) -> Reply {
        let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(body) else {
            return bad_request("Write requests (excluding DELETE) must contain the Content-Type header declaration.");
        };
        let now = self.clock.now();
        self.with_state(|s| {
            let Some(i) = s.find_user(key) else {
                return not_found(key);
            };
            let user = s.tenant.users[i].clone();
            let change = match self.user_change(s, &user, &changes, version) {
                Ok(change) => change,
                Err(refused) => return refused,
            };
            if let Some(refused) = self.refuse_user_change(s, i, &user, &change, now) {
                return refused;
            }
            s.lag.written(now, &user);
            s.update_user(i, |u| {
                if let Some(anchor) = change.anchor.clone() {
                    u.on_premises_immutable_id = anchor;
                }
                if let Some(upn) = change.upn.clone() {
                    u.user_principal_name = upn;
                }
                if let Some(linked) = change.object_identifier.clone() {
                    u.on_premises_object_identifier = linked;
                }
            });
            s.stats.writes_total += 1;
            if change.anchor.is_some() {
                *s.stats.writes_applied.entry(user.id.clone()).or_insert(0) += 1;
            }
            Reply::new(204, Body::Empty)
        })
    }

    /// What a PATCH body asks to change on `user`, or Graph's refusal of the request itself:
    /// 403 for what the app may not write, 400 for a property or value Graph does not take,
    /// or for a synced user.
    fn user_change(
        &self,
        s: &super::state::State,
        user: &User,
        changes: &Map<String, Value>,
        version: Version,
    ) -> Result<UserChange, Reply> {
        let forbidden = &self.config.forbid_writes_to;
        let named = forbidden.iter().any(|f| {
            f.eq_ignore_ascii_case(&user.id) || f.eq_ignore_ascii_case(&user.user_principal_name)
        });
        if named || self.sensitive_to_this_app(s, user) {
            return Err(graph_error(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            ));
        }
        for name in changes.keys() {
            // onPremisesObjectIdentifier is a beta property (docs/graph.md).
            let beta_only = name == "onPremisesObjectIdentifier" && version == Version::Beta;
            if !beta_only
                && !["onPremisesImmutableId", "userPrincipalName"].contains(&name.as_str())
            {
                return Err(bad_request(&format!(
                    "Property '{name}' is not supported by the emulator for PATCH."
                )));
            }
        }
        let object_identifier = match changes.get("onPremisesObjectIdentifier") {
            None => None,
            Some(_) if self.config.forbid_object_identifier_writes => {
                return Err(graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."));
            }
            Some(Value::Null) => Some(None),
            Some(Value::String(v)) => Some(Some(v.clone())),
            Some(_) => return Err(bad_request("Invalid value specified for property 'onPremisesObjectIdentifier' of resource 'User'.")),
        };
        if user.on_premises_sync_enabled == Some(true) {
            return Err(bad_request(
                "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.",
            ));
        }
        let anchor = match changes.get("onPremisesImmutableId") {
            None => None,
            // The PowerShell SDK sends "" to clear (msgraph-sdk-powershell issues 852, 2514).
            Some(Value::Null) => Some(None),
            Some(Value::String(v)) if v.is_empty() => Some(None),
            Some(Value::String(v)) if !v.contains(['$', '_']) && v.chars().count() < 60 => {
                Some(Some(v.clone()))
            }
            Some(_) => return Err(bad_request(
                "Invalid value specified for property 'onPremisesImmutableId' of resource 'User'.",
            )),
        };
        let upn =
            match changes.get("userPrincipalName") {
                None => None,
                Some(Value::String(v)) => Some(v.clone()),
                Some(_) => return Err(bad_request(
                    "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
                )),
            };
        Ok(UserChange {
            anchor,
            upn,
            object_identifier,
        })
    }

    /// Graph's refusal of a well-formed change to the tenant as it is: an anchor changed in
    /// place in a federated domain, an anchor or UPN another user holds, a UPN in a domain
    /// the tenant has not verified.
    fn refuse_user_change(
        &self,
        s: &super::state::State,
        i: usize,
        user: &User,
        change: &UserChange,
        now: f64,
    ) -> Option<Reply> {
        // A new value, or null in place of one: both change the anchor.
        let changes_anchor = change
            .anchor
            .as_ref()
            .is_some_and(|a| *a != user.on_premises_immutable_id);
        let upn_after = change.upn.as_deref().unwrap_or(&user.user_principal_name);
        if changes_anchor && self.config.refuse_federated_anchor_change && s.is_federated(upn_after)
        {
            // INFERRED (docs/graph.md): Graph's text for this refusal is not documented.
            return Some(bad_request(
                "Unable to update the specified properties for objects in a federated domain. Change the userPrincipalName to a managed domain, set onPremisesImmutableId, then change it back.",
            ));
        }
        if let Some(Some(anchor)) = &change.anchor {
            if let Some(holder) =
                s.anchor_holder(anchor, i, self.config.deleted_users_reserve_anchors, now)
            {
                return Some(uniqueness_violation("onPremisesImmutableId", &holder.id));
            }
        }
        let upn = change.upn.as_ref()?;
        if s.domain_of(upn).is_none() {
            return Some(bad_request(&format!("The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization. ({upn})")));
        }
        let other = s.find_user(upn).filter(|&j| j != i)?;
        Some(uniqueness_violation(
            "userPrincipalName",
            &s.tenant.users[other].id,
        ))
    }

    /// Whether `user`'s sensitive attributes (onPremisesImmutableId, userPrincipalName) are
    /// beyond this app: the user holds or is eligible for a privileged role, directly or
    /// through a role-assignable group, or is a member or owner of a role-assignable group
    /// ([`crate::tenant::Privileges::guarded`]), and the app holds no privileged role itself.
    fn sensitive_to_this_app(&self, state: &super::state::State, user: &User) -> bool {
        !self.config.app_privileged && state.privileges.guarded(&user.id).is_some()
    }

    fn purge(&self, id: &str) -> Reply {
        let now = self.clock.now();
        self.with_state(|s| match s.find_deleted(id) {
            Some(i) => {
                let purged = s.tenant.deleted_users.remove(i);
                s.lag.purged(now, purged);
                s.stats.writes_total += 1;
                Reply::new(204, Body::Empty)
            }
            None => not_found(id),
        })
    }

    fn restore(&self, id: &str) -> Reply {
        self.with_state(|s| match s.find_deleted(id) {
            Some(i) => {
                s.stats.writes_total += 1;
                let user = s.restore(i).clone();
                Reply::json(200, user_json(&user, None))
            }
            None => not_found(id),
        })
    }

    /// `POST /$batch`: at most 20 requests, each run (and throttled) on its own, replies in an
    /// order of the emulator's choosing, `dependsOn` on a failed request gives 424.
    fn batch(&self, request: &Request, app: &str, version: Version) -> Reply {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return bad_request("Invalid batch payload format.");
        };
        let Some(requests) = body.get("requests").and_then(Value::as_array) else {
            return bad_request("Invalid batch payload format.");
        };
        if requests.len() > 20 {
            return bad_request("Invalid batch payload: the number of requests in the batch exceeds the limit of 20.");
        }
        let mut statuses: Vec<(String, u16)> = Vec::new();
        let mut responses = Vec::new();
        for inner in requests {
            let id = inner
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let depends: Vec<&str> = inner
                .get("dependsOn")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let failed_parent = depends
                .iter()
                .any(|d| statuses.iter().any(|(pid, st)| pid == d && *st >= 400));
            let reply = if failed_parent {
                graph_error(
                    424,
                    "FailedDependency",
                    "The request failed because it depended on a request that failed.",
                )
            } else {
                let url = inner.get("url").and_then(Value::as_str).unwrap_or("");
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                let sub = Request {
                    method: inner
                        .get("method")
                        .and_then(Value::as_str)
                        .unwrap_or("GET")
                        .to_ascii_uppercase(),
                    path: format!(
                        "{}{}",
                        version.prefix(),
                        if path.starts_with('/') {
                            path.to_string()
                        } else {
                            format!("/{path}")
                        }
                    ),
                    query: query.to_string(),
                    body: inner
                        .get("body")
                        .map(|b| serde_json::to_vec(b).expect("json"))
                        .unwrap_or_default(),
                    ..request.clone()
                };
                let mut reply = self.serve_graph(&sub, app);
                self.inner_request_ids(&mut reply, request);
                reply
            };
            statuses.push((id.clone(), reply.status));
            let headers: Map<String, Value> = reply
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let body = match reply.body {
                Body::Empty => Value::Null,
                Body::Json(v) => v,
                Body::Text(t) => json!(t),
            };
            responses
                .push(json!({"id": id, "status": reply.status, "headers": headers, "body": body}));
        }
        // Graph answers in any order; reversing makes clients that assume order fail loudly.
        responses.reverse();
        Reply::json(200, json!({"responses": responses}))
    }
}

/// A group as Graph shapes it for the properties hardmatch reads.
fn group_json(group: &Group) -> Value {
    json!({"id": group.id, "displayName": group.display_name, "isAssignableToRole": group.is_assignable_to_role})
}

/// The uniqueness 400, naming the holder as Graph does (`ConflictingObjects`, `User_<id>`).
fn uniqueness_violation(property: &str, holder_id: &str) -> Reply {
    let message =
        format!("Another object with the same value for property {property} already exists.");
    Reply::json(
        400,
        json!({"error": {
            "code": "Request_BadRequest",
            "message": message,
            "details": [
                {"code": "ObjectConflict", "message": message, "target": property},
                {"code": "ConflictingObjects", "message": message, "target": format!("User_{holder_id}")}
            ]
        }}),
    )
}

/// One page of a list that is not users (role lists, group members): `$top` items (100 by
/// default) from the `$skiptoken`'s offset, with `@odata.nextLink` while more remain.
fn page(request: &Request, query: &Query, items: Value) -> Reply {
    let items = items.as_array().cloned().unwrap_or_default();
    let top = query
        .top
        .as_deref()
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| (1..=999).contains(t))
        .unwrap_or(100);
    let offset = match query.skiptoken.as_deref().map(decode_skiptoken) {
        None => 0,
        Some(Some(offset)) => offset,
        Some(None) => return bad_request("The specified page token value has expired and can no longer be included in your request."),
    };
    let mut body = Map::new();
    if query.count {
        body.insert("@odata.count".into(), json!(items.len()));
    }
    if offset + top < items.len() {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(request, offset + top)),
        );
    }
    body.insert(
        "value".into(),
        Value::Array(items.into_iter().skip(offset).take(top).collect()),
    );
    Reply::json(200, Value::Object(body))
}

fn next_link(request: &Request, offset: usize) -> String {
    let kept: Vec<String> = request
        .query
        .split('&')
        .filter(|p| {
            !p.is_empty() && !p.starts_with("$skiptoken=") && !p.starts_with("%24skiptoken=")
        })
        .map(str::to_string)
        .collect();
    let token = encode_skiptoken(offset);
    let query = kept
        .into_iter()
        .chain([format!("$skiptoken={token}")])
        .collect::<Vec<_>>()
        .join("&");
    format!("{}{}?{query}", request.base_url, request.path)
}

/// An opaque page token; hex of a tagged offset, so clients cannot do arithmetic on it.
fn encode_skiptoken(offset: usize) -> String {
    format!("RFNwdAIAAQAAA{:x}", offset ^ 0x5A5A_5A5A)
}

fn decode_skiptoken(token: &str) -> Option<usize> {
    let hex = token.strip_prefix("RFNwdAIAAQAAA")?;
    usize::from_str_radix(hex, 16).ok().map(|v| v ^ 0x5A5A_5A5A)
}

/// `$top`: 100 by default, 1 to 999 allowed.
fn page_size(query: &Query) -> Result<usize, Reply> {
    match query.top.as_deref().map(str::parse::<usize>) {
        None => Ok(100),
        Some(Ok(t)) if (1..=999).contains(&t) => Ok(t),
        Some(_) => Err(bad_request(&format!(
            "Invalid page size specified: '{}'. Must be between 1 and 999 inclusive.",
            query.top.as_deref().unwrap_or("")
        ))),
    }
}

/// An advanced query (`$search`, `$count`, advanced filter operators) without both
/// `$count=true` and `ConsistencyLevel: eventual`, refused as Graph does.
fn refuse_advanced_query(
    request: &Request,
    query: &Query,
    filter: Option<&Filter>,
) -> Option<Reply> {
    let op = filter
        .and_then(Filter::advanced_operator)
        .or(query.search.then_some("$search"))
        .or(query.count.then_some("$count"))?;
    (!(request.consistency_eventual && query.count)).then(|| {
        graph_error(
            400,
            "Request_UnsupportedQuery",
            &format!("Operator '{op}' is not supported because the required parameters might be missing. Try adding $count=true query parameter and ConsistencyLevel:eventual header."),
        )
    })
}

/// The properties a PATCH of a user changes: `Some(None)` clears a value.
struct UserChange {
    anchor: Option<Option<String>>,
    upn: Option<String>,
    object_identifier: Option<Option<String>>,
}
