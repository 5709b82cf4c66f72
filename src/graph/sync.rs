//! Reading what decides whether the next sync cycle will hard-match a stamped user
//! (docs/graph.md, "What the next sync cycle does with a stamp"): each target's
//! `onPremisesObjectIdentifier` (beta only) and who holds or is eligible for a privileged
//! role, with the members of the role-assignable groups that hold one.
//!
//! The requests are docs/graph.md's own, read once for the tenant and batched:
//! - `onPremisesObjectIdentifier`: `id in (...)` filters on `/beta/users`, fifteen ids to a
//!   filter and twenty filters to a `/beta/$batch` (per-id `GET /beta/users/{id}` when a
//!   filter is refused), or a beta listing when that takes fewer requests;
//! - `GET /beta/roleManagement/directory/roleDefinitions?$filter=isPrivileged eq true`;
//! - `GET /v1.0/roleManagement/directory/roleAssignments` and `.../roleEligibilitySchedules`,
//!   paged;
//! - every role-assignable group, `GET /v1.0/groups?$filter=isAssignableToRole eq true`
//!   (paged), and each one's `transitiveMembers` and `owners` (`$select=id`) in `$batch`:
//!   Graph guards its members' and owners' sensitive attributes whether or not it holds a
//!   role (docs/graph.md, "Sensitive attributes");
//! - for each other principal of a privileged role that is not a user already read,
//!   `GET /v1.0/groups/{id}/transitiveMembers?$select=id` (and the group's name) in `$batch`.
//!
//! A refused role read does not stop the plan: its list stays `None` in the [`Tenant`] (a
//! refused group listing leaves `role_assignable_groups_listed` false), and the planner
//! marks rows `roles-unknown` ([`crate::tenant::Privileges::unknown`]).

use std::collections::{HashMap, HashSet};

use futures::stream::{self, StreamExt};
use serde_json::Value;

use super::read::IN_LIMIT;
use super::{odata_literal, parse, query, BatchRequest, GraphClient, GraphError, BATCH_LIMIT};
use crate::tenant::{Group, RoleAssignment, RoleDefinition, Tenant};

/// Users in one page of a listing.
const PAGE: usize = 999;
/// `$batch` requests in flight at once.
const BATCHES_IN_FLIGHT: usize = 4;
const OBJECT_IDENTIFIER_SELECT: &str = "id,onPremisesObjectIdentifier";

/// Whose onPremisesObjectIdentifier a run needs.
#[derive(Clone, Debug)]
pub(crate) enum Targets {
    /// Every user of the tenant (a snapshot).
    Everyone,
    /// These users, by object id; `tenant_users` when the tenant's size is known (a bulk
    /// read), to list every user instead when that takes fewer requests.
    Ids {
        ids: Vec<String>,
        tenant_users: Option<usize>,
    },
}

impl GraphClient {
    /// Reads the sync-cycle facts into `tenant` and says what was read, for the summary.
    /// Only a failure to reach Graph at all is an error; a refused read is recorded in the
    /// tenant as unknown.
    pub(crate) async fn read_sync_facts(&self, tenant: &mut Tenant, targets: Targets) -> String {
        let linked = match self.object_identifiers(&targets).await {
            Ok(found) => {
                for user in &mut tenant.users {
                    if let Some(value) = found.get(&user.id.to_ascii_lowercase()) {
                        user.on_premises_object_identifier = value.clone();
                    }
                }
                format!("onPremisesObjectIdentifier of {} users", found.len())
            }
            Err(error) => {
                tracing::info!("onPremisesObjectIdentifier could not be read: {error}");
                tenant.object_identifiers_unread = Some(error.to_string());
                "onPremisesObjectIdentifier NOT read".to_string()
            }
        };
        let roles = self.read_roles(tenant).await;
        format!("{linked}, {roles}")
    }

    /// onPremisesObjectIdentifier by lowercased user id, the cheapest way for `targets`.
    async fn object_identifiers(
        &self,
        targets: &Targets,
    ) -> Result<HashMap<String, Option<String>>, GraphError> {
        let ids = match targets {
            Targets::Ids { ids, tenant_users } => match tenant_users {
                Some(users) if !by_filters_is_cheaper(ids.len(), *users) => {
                    return self.object_identifiers_listed().await
                }
                _ => ids,
            },
            Targets::Everyone => return self.object_identifiers_listed().await,
        };
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let chunks: Vec<&[String]> = ids.chunks(IN_LIMIT).collect();
        let requests: Vec<BatchRequest> = chunks
            .iter()
            .map(|chunk| {
                let literals: Vec<String> = chunk.iter().map(|id| odata_literal(id)).collect();
                let filter = format!("id in ({})", literals.join(","));
                get(format!(
                    "/users?{}",
                    query(&[
                        ("$filter", &filter),
                        ("$select", OBJECT_IDENTIFIER_SELECT),
                        ("$top", "999")
                    ])
                ))
            })
            .collect();
        let mut answers =
            stream::iter(requests.chunks(BATCH_LIMIT).zip(chunks.chunks(BATCH_LIMIT)))
                .map(
                    |(twenty, their_ids)| async move { (self.beta_batch(twenty).await, their_ids) },
                )
                .buffer_unordered(BATCHES_IN_FLIGHT);
        let mut found = HashMap::new();
        while let Some((results, their_ids)) = answers.next().await {
            for (result, chunk) in results.into_iter().zip(their_ids) {
                let values = match result {
                    Ok(answer) => self.rest_of_pages(answer.body).await?,
                    // A Graph that will not filter beta users by id still serves each one.
                    Err(error) if status(&error) == Some(400) => {
                        self.object_identifiers_one_by_one(chunk).await?
                    }
                    Err(error) => return Err(error),
                };
                collect_identifiers(values, &mut found);
            }
        }
        Ok(found)
    }

    /// `GET /beta/users/{id}?$select=id,onPremisesObjectIdentifier` for each id, in
    /// `/beta/$batch`; a user that is gone is left out.
    async fn object_identifiers_one_by_one(
        &self,
        ids: &[String],
    ) -> Result<Vec<Value>, GraphError> {
        let requests: Vec<BatchRequest> = ids
            .iter()
            .map(|id| {
                get(format!(
                    "{}?{}",
                    super::user_path(id),
                    query(&[("$select", OBJECT_IDENTIFIER_SELECT)])
                ))
            })
            .collect();
        let mut values = Vec::new();
        for result in self.beta_batch(&requests).await {
            match result {
                Ok(answer) => values.push(answer.body),
                Err(GraphError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(values)
    }

    /// Every user's onPremisesObjectIdentifier from a paged beta listing.
    async fn object_identifiers_listed(
        &self,
    ) -> Result<HashMap<String, Option<String>>, GraphError> {
        let list = query(&[("$select", OBJECT_IDENTIFIER_SELECT), ("$top", "999")]);
        let values = self
            .list_all(&self.beta_url(&format!("/users?{list}")), |_| {})
            .await?;
        let mut found = HashMap::new();
        collect_identifiers(values, &mut found);
        Ok(found)
    }

    /// A list answer's values with the pages its `@odata.nextLink` leads to.
    async fn rest_of_pages(&self, body: Value) -> Result<Vec<Value>, GraphError> {
        let mut values = body["value"].as_array().cloned().unwrap_or_default();
        if let Some(next) = body["@odata.nextLink"].as_str() {
            values.extend(self.list_all(next, |_| {}).await?);
        }
        Ok(values)
    }

    /// Privileged role definitions, assignments, eligibilities, the role-assignable groups
    /// and the members of the groups among their principals, into `tenant`; what could not be
    /// read stays `None`. Says what was read, for the summary.
    pub(super) async fn read_roles(&self, tenant: &mut Tenant) -> String {
        let refused = |what: &str, error: &GraphError| {
            tracing::info!("{what} could not be read: {error}");
        };
        let definitions_path = self.beta_url(&format!(
            "/roleManagement/directory/roleDefinitions?{}",
            query(&[("$filter", "isPrivileged eq true")])
        ));
        tenant.role_definitions = match self.list_parsed::<RoleDefinition>(&definitions_path).await
        {
            Ok(mut definitions) => {
                // Asked for the privileged ones: an answer without the property is still that.
                for definition in &mut definitions {
                    definition.is_privileged.get_or_insert(true);
                }
                Some(definitions)
            }
            Err(e) => {
                refused("privileged role definitions", &e);
                None
            }
        };
        tenant.role_assignments = self
            .list_parsed("/roleManagement/directory/roleAssignments")
            .await
            .inspect_err(|e| refused("role assignments", e))
            .ok();
        tenant.role_eligibility_schedules = self
            .list_parsed("/roleManagement/directory/roleEligibilitySchedules")
            .await
            .inspect_err(|e| refused("role eligibility schedules", e))
            .ok();
        tenant.groups = match self.role_assignable_groups().await {
            Ok(groups) => {
                tenant.role_assignable_groups_listed = true;
                groups
            }
            Err(e) => {
                refused("role-assignable groups", &e);
                tenant.role_assignable_groups_listed = false;
                Vec::new()
            }
        };
        let others = self.principal_groups(tenant).await;
        tenant.groups.extend(others);
        let count = |list: &Option<Vec<RoleAssignment>>| {
            list.as_ref()
                .map_or_else(|| "NOT read".to_string(), |l| l.len().to_string())
        };
        format!(
            "privileged roles: {} definitions, {} assignments, {} eligibilities, {} groups",
            tenant
                .role_definitions
                .as_ref()
                .map_or_else(|| "NOT read".to_string(), |d| d.len().to_string()),
            count(&tenant.role_assignments),
            count(&tenant.role_eligibility_schedules),
            tenant.groups.len()
        )
    }

    /// Every item of a paged list, parsed.
    async fn list_parsed<T: serde::de::DeserializeOwned>(
        &self,
        target: &str,
    ) -> Result<Vec<T>, GraphError> {
        self.list_all(target, |_| {})
            .await?
            .into_iter()
            .map(parse)
            .collect()
    }

    /// Every role-assignable group with its transitive members and its owners; a group whose
    /// members or owners are refused has `None` for them. Only the listing's refusal is an
    /// error.
    async fn role_assignable_groups(&self) -> Result<Vec<Group>, GraphError> {
        // `eq` on isAssignableToRole is a plain filter: no ConsistencyLevel, no `$count`.
        let listing = query(&[
            ("$filter", "isAssignableToRole eq true"),
            ("$select", "id,displayName"),
            ("$top", "999"),
        ]);
        let listed = self
            .list_all(&self.v1_url(&format!("/groups?{listing}")), |_| {})
            .await?;
        let mut groups: Vec<Group> = listed
            .iter()
            .filter_map(|g| {
                Some(Group {
                    id: g["id"].as_str()?.to_string(),
                    display_name: g["displayName"].as_str().map(str::to_string),
                    is_assignable_to_role: Some(true),
                    ..Group::default()
                })
            })
            .collect();
        let requests: Vec<BatchRequest> = groups
            .iter()
            .flat_map(|g| {
                let group = format!("/groups/{}", super::encode(&g.id));
                let ids = query(&[("$select", "id")]);
                [
                    get(format!("{group}/transitiveMembers?{ids}")),
                    get(format!("{group}/owners?{ids}")),
                ]
            })
            .collect();
        let results = self.batch(&requests).await;
        for (group, pair) in groups.iter_mut().zip(results.chunks(2)) {
            let [members, owners] = pair else { continue };
            group.members = self.object_ids(members, &group.name(), "members").await;
            group.owners = self.object_ids(owners, &group.name(), "owners").await;
        }
        Ok(groups)
    }

    /// The object ids of a list answer and its further pages; `None` when it was refused.
    async fn object_ids(
        &self,
        answer: &Result<super::Answer, GraphError>,
        group: &str,
        what: &str,
    ) -> Option<Vec<String>> {
        let values = match answer {
            Ok(answer) => self.rest_of_pages(answer.body.clone()).await,
            Err(error) => Err(error.clone()),
        };
        match values {
            Ok(values) => Some(
                values
                    .iter()
                    .filter_map(|v| v["id"].as_str().map(str::to_string))
                    .collect(),
            ),
            Err(error) => {
                tracing::info!("{what} of the group {group} could not be read: {error}");
                None
            }
        }
    }

    /// The groups among the principals of privileged roles that the listing of role-assignable
    /// groups did not give (a stand-in for Graph may not mark them), with their transitive
    /// members. A principal that is a user already read is no group; any other principal is
    /// asked for as a group, and one Graph does not know as a group (404, 400) is a user or
    /// an app. A group whose members are refused has `members: None`.
    async fn principal_groups(&self, tenant: &Tenant) -> Vec<Group> {
        let Some(definitions) = &tenant.role_definitions else {
            return Vec::new();
        };
        let privileged: HashSet<String> = definitions
            .iter()
            .filter(|d| d.is_privileged == Some(true))
            .map(|d| d.id.to_ascii_lowercase())
            .collect();
        let known: HashSet<String> = tenant
            .users
            .iter()
            .map(|u| u.id.to_ascii_lowercase())
            .chain(tenant.groups.iter().map(|g| g.id.to_ascii_lowercase()))
            .collect();
        let mut principals: Vec<String> =
            [&tenant.role_assignments, &tenant.role_eligibility_schedules]
                .into_iter()
                .flatten()
                .flatten()
                .filter(|g| privileged.contains(&g.role_definition_id.to_ascii_lowercase()))
                .map(|g| g.principal_id.clone())
                .filter(|p| !known.contains(&p.to_ascii_lowercase()))
                .collect();
        principals.sort_unstable();
        principals.dedup();
        // Two requests per principal: its members, and its name for the report.
        let requests: Vec<BatchRequest> = principals
            .iter()
            .flat_map(|id| {
                let group = format!("/groups/{}", super::encode(id));
                [
                    get(format!(
                        "{group}/transitiveMembers?{}",
                        query(&[("$select", "id")])
                    )),
                    get(format!(
                        "{group}?{}",
                        query(&[("$select", "id,displayName,isAssignableToRole")])
                    )),
                ]
            })
            .collect();
        let results = self.batch(&requests).await;
        let mut groups = Vec::new();
        for (id, pair) in principals.iter().zip(results.chunks(2)) {
            let [members, about] = pair else { continue };
            if members
                .as_ref()
                .is_err_and(|error| matches!(status(error), Some(400 | 404)))
            {
                continue;
            }
            let members = self.object_ids(members, id, "members").await;
            let about = about.as_ref().ok().map(|a| &a.body);
            groups.push(Group {
                id: id.clone(),
                display_name: about
                    .and_then(|a| a["displayName"].as_str())
                    .map(str::to_string),
                is_assignable_to_role: about.and_then(|a| a["isAssignableToRole"].as_bool()),
                members,
                owners: None,
            });
        }
        groups
    }
}

/// Whether `id in` filters for `ids` take fewer requests than listing `users` users.
fn by_filters_is_cheaper(ids: usize, users: usize) -> bool {
    let batches = ids.div_ceil(IN_LIMIT).div_ceil(BATCH_LIMIT);
    batches < users.div_ceil(PAGE).max(1)
}

fn status(error: &GraphError) -> Option<u16> {
    error.meta().and_then(|m| m.status)
}

fn collect_identifiers(values: Vec<Value>, found: &mut HashMap<String, Option<String>>) {
    for value in values {
        if let Some(id) = value["id"].as_str() {
            let linked = value["onPremisesObjectIdentifier"]
                .as_str()
                .map(str::to_string);
            found.insert(id.to_ascii_lowercase(), linked);
        }
    }
}

/// A GET inside a `$batch` (its url relative to the batch's version).
fn get(url: String) -> BatchRequest {
    BatchRequest {
        method: reqwest::Method::GET,
        url,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_win_unless_the_rows_cover_the_tenant() {
        assert!(by_filters_is_cheaper(10_000, 100_000));
        assert!(!by_filters_is_cheaper(100_000, 100_000));
        assert!(by_filters_is_cheaper(15, 5_000));
        assert!(
            !by_filters_is_cheaper(3, 17),
            "one request either way: the listing"
        );
    }
}
