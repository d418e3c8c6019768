//! `PolicyRule`s: how one matches a request, whether a set of rules covers another, and how the
//! API server prints the rules a user is missing.
//!
//! Re-expressed from kubernetes v1.35 `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`,
//! `APIGroupMatches`, `ResourceMatches`, `ResourceNameMatches`, `NonResourceURLMatches`, and
//! `CompactString`), `plugin/pkg/auth/authorizer/rbac/rbac.go` (`RuleAllows`),
//! `staging/src/k8s.io/component-helpers/auth/rbac/validation/policy_comparator.go` (`Covers`,
//! `BreakdownRule`, `ruleCovers`) and `pkg/registry/rbac/validation/policy_compact.go`
//! (`CompactRules`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::authz::Attributes;

/// One rule of a Role or ClusterRole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

const ALL: &str = "*";

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn has(set: &[String], item: &str) -> bool {
    set.iter().any(|s| s == item)
}

fn has_all(set: &[String], items: &[String]) -> bool {
    items.iter().all(|i| has(set, i))
}

impl Rule {
    pub fn from_json(v: &Value) -> Self {
        Self {
            verbs: strings(v, "verbs"),
            api_groups: strings(v, "apiGroups"),
            resources: strings(v, "resources"),
            resource_names: strings(v, "resourceNames"),
            non_resource_urls: strings(v, "nonResourceURLs"),
        }
    }

    /// The `rules` of a Role or ClusterRole object.
    pub fn of_role(role: &Value) -> Vec<Rule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rules| rules.iter().map(Rule::from_json).collect())
            .unwrap_or_default()
    }

    /// A resource rule (rbacv1helpers.NewRule(verbs).Groups(groups).Resources(resources)).
    pub fn resources(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Self {
            verbs: own(verbs),
            api_groups: own(groups),
            resources: own(resources),
            ..Self::default()
        }
    }

    /// A non-resource rule (rbacv1helpers.NewRule(verbs).URLs(urls)).
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Self { verbs: own(verbs), non_resource_urls: own(urls), ..Self::default() }
    }

    /// The rule as a role stores it (empty lists left out, as `omitempty` does).
    pub fn to_json(&self) -> Value {
        let mut v = json!({});
        for (key, list) in [
            ("verbs", &self.verbs),
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !list.is_empty() {
                v[key] = json!(list);
            }
        }
        v
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == ALL || v == verb)
    }

    fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == ALL || g == group)
    }

    /// `combined` is `resource/subresource` when there is a subresource; a rule may also name
    /// `*/subresource`.
    fn resource_matches(&self, combined: &str, subresource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == ALL
                || r == combined
                || (!subresource.is_empty()
                    && r.len() == subresource.len() + 2
                    && r.starts_with("*/")
                    && r.ends_with(subresource))
        })
    }

    /// No names: every name (and none, for list and create).
    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || has(&self.resource_names, name)
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == ALL || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
        })
    }

    /// RuleAllows.
    pub fn allows(&self, a: &Attributes) -> bool {
        if a.resource_request {
            let combined = if a.subresource.is_empty() {
                a.resource.clone()
            } else {
                format!("{}/{}", a.resource, a.subresource)
            };
            return self.verb_matches(&a.verb)
                && self.group_matches(&a.api_group)
                && self.resource_matches(&combined, &a.subresource)
                && self.name_matches(&a.name);
        }
        self.verb_matches(&a.verb) && self.url_matches(&a.path)
    }

    /// CompactString: `{APIGroups:["x"], Resources:["y"], ResourceNames:["z"], Verbs:["get"]}`,
    /// each list as Go's `%q` prints a `[]string`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        for (label, list) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !list.is_empty() {
                parts.push(format!("{label}:{}", go_quoted_list(list)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// BreakdownRule: one rule per group, resource, verb and name (and per URL and verb).
    fn breakdown(&self) -> Vec<Rule> {
        let mut out = Vec::new();
        let one = |s: &String| vec![s.clone()];
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    let base = Rule {
                        api_groups: one(group),
                        resources: one(resource),
                        verbs: one(verb),
                        ..Rule::default()
                    };
                    if self.resource_names.is_empty() {
                        out.push(base);
                    } else {
                        for name in &self.resource_names {
                            out.push(Rule { resource_names: one(name), ..base.clone() });
                        }
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(Rule { non_resource_urls: one(url), verbs: one(verb), ..Rule::default() });
            }
        }
        out
    }

    /// ruleCovers: this (owner) rule covers `sub`, a rule of at most one verb, resource and name.
    fn covers(&self, sub: &Rule) -> bool {
        let verbs = has(&self.verbs, ALL) || has_all(&self.verbs, &sub.verbs);
        let groups = has(&self.api_groups, ALL) || has_all(&self.api_groups, &sub.api_groups);
        let resources = resources_cover(&self.resources, &sub.resources);
        let urls = sub.non_resource_urls.iter().all(|path| {
            self.non_resource_urls.iter().any(|owner| {
                owner == path
                    || (owner.ends_with('*') && path.starts_with(owner.trim_end_matches('*')))
            })
        });
        let names = if sub.resource_names.is_empty() {
            self.resource_names.is_empty()
        } else {
            self.resource_names.is_empty() || has_all(&self.resource_names, &sub.resource_names)
        };
        verbs && groups && resources && names && urls
    }
}

/// resourceCoversAll.
fn resources_cover(owner: &[String], wanted: &[String]) -> bool {
    if has(owner, ALL) || has_all(owner, wanted) {
        return true;
    }
    wanted.iter().all(|path| {
        if has(owner, path) {
            return true;
        }
        match path.split_once('/') {
            Some((_, sub)) => has(owner, &format!("*/{sub}")),
            None => false,
        }
    })
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
pub fn go_quoted_list(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of a string, for the characters names and paths hold.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Covers: whether `owner` holds every permission of `servant`, and the broken-down rules it
/// does not.
pub fn covers(owner: &[Rule], servant: &[Rule]) -> (bool, Vec<Rule>) {
    let missing: Vec<Rule> = servant
        .iter()
        .flat_map(Rule::breakdown)
        .filter(|sub| !owner.iter().any(|o| o.covers(sub)))
        .collect();
    (missing.is_empty(), missing)
}

/// CompactRules: broken-down rules that differ only by verb become one rule (a single group,
/// resource and at most one name, nothing else).
pub fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut simple: BTreeMap<(String, String, Option<String>), Rule> = BTreeMap::new();
    let mut out = Vec::new();
    for rule in rules {
        let is_simple = rule.resource_names.len() <= 1
            && rule.non_resource_urls.is_empty()
            && rule.api_groups.len() == 1
            && rule.resources.len() == 1;
        if !is_simple {
            out.push(rule);
            continue;
        }
        let key = (
            rule.api_groups[0].clone(),
            rule.resources[0].clone(),
            rule.resource_names.first().cloned(),
        );
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                simple.insert(key, rule);
            }
        }
    }
    out.extend(simple.into_values());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::User;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        Attributes {
            user: User::new("u", &[]),
            verb: verb.into(),
            resource_request: true,
            path: String::new(),
            api_group: group.into(),
            api_version: "v1".into(),
            namespace: "ns".into(),
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_rule_matches_verbs_groups_resources_and_names() {
        let rule = Rule::from_json(&json!({
            "apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"],
        }));
        assert!(rule.allows(&attrs("list", "", "pods", "", "")));
        assert!(rule.allows(&attrs("get", "", "pods", "log", "p")));
        assert!(!rule.allows(&attrs("get", "", "pods", "exec", "p")));
        assert!(!rule.allows(&attrs("get", "apps", "pods", "", "p")));
        assert!(!rule.allows(&attrs("delete", "", "pods", "", "p")));

        let named = Rule::from_json(&json!({
            "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
            "resourceNames": ["kraft-tenant"], "verbs": ["bind"],
        }));
        assert!(named.allows(&attrs(
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "kraft-tenant"
        )));
        assert!(!named.allows(&attrs(
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "admin"
        )));
        // A rule with names never matches a request without one (list, create).
        assert!(!named.allows(&attrs("bind", "rbac.authorization.k8s.io", "clusterroles", "", "")));
    }

    #[test]
    fn star_slash_subresource_matches_that_subresource_of_any_resource() {
        let rule = Rule::resources(&["get"], &["*"], &["*/status"]);
        assert!(rule.allows(&attrs("get", "apps", "deployments", "status", "d")));
        assert!(!rule.allows(&attrs("get", "apps", "deployments", "scale", "d")));
        assert!(!rule.allows(&attrs("get", "apps", "deployments", "", "d")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_a_trailing_star() {
        let rule = Rule::urls(&["get"], &["/api", "/apis/*"]);
        let mut a = attrs("get", "", "", "", "");
        a.resource_request = false;
        a.path = "/apis/apps/v1".into();
        assert!(rule.allows(&a));
        a.path = "/api".into();
        assert!(rule.allows(&a));
        a.path = "/api/v1".into();
        assert!(!rule.allows(&a));
        a.path = "/apis".into();
        assert!(!rule.allows(&a), "`/apis/*` needs the slash");
    }

    #[test]
    fn covers_names_what_is_missing_compacted_and_printed_as_go_prints_it() {
        let owner = vec![Rule::resources(&["get", "list"], &[""], &["pods"])];
        let wanted = vec![
            Rule::resources(&["get", "list", "delete", "create"], &[""], &["pods", "secrets"]),
            Rule {
                resource_names: vec!["a".into()],
                ..Rule::resources(&["bind"], &["rbac.authorization.k8s.io"], &["clusterroles"])
            },
        ];
        let (ok, missing) = covers(&owner, &wanted);
        assert!(!ok);
        let mut described: Vec<String> =
            compact(missing).iter().map(Rule::compact_string).collect();
        described.sort();
        assert_eq!(
            described,
            [
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete" "create"]}"#,
                r#"{APIGroups:["rbac.authorization.k8s.io"], Resources:["clusterroles"], ResourceNames:["a"], Verbs:["bind"]}"#,
            ]
        );
        let admin = vec![Rule::resources(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])];
        assert!(covers(&admin, &wanted).0);
    }

    #[test]
    fn an_owner_with_star_subresource_covers_that_subresource_and_a_named_rule_needs_names() {
        let owner = vec![
            Rule::resources(&["get"], &[""], &["*/log"]),
            Rule {
                resource_names: vec!["a".into(), "b".into()],
                ..Rule::resources(&["get"], &[""], &["secrets"])
            },
        ];
        assert!(covers(&owner, &[Rule::resources(&["get"], &[""], &["pods/log"])]).0);
        assert!(!covers(&owner, &[Rule::resources(&["get"], &[""], &["secrets"])]).0);
        let named = Rule {
            resource_names: vec!["b".into()],
            ..Rule::resources(&["get"], &[""], &["secrets"])
        };
        assert!(covers(&owner, &[named]).0);
    }
}
