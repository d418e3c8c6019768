//! Who a request is from, as a virtual cluster's API server sees it: the user and groups of the
//! client certificate it presented (CN and O, kubernetes v1.35 `staging/src/k8s.io/apiserver/pkg/
//! authentication/request/x509/x509.go` CommonNameUserConversion), changed by impersonation
//! headers when that user may impersonate (`staging/src/k8s.io/apiserver/pkg/endpoints/filters/
//! impersonation.go`): in hostsim's virtual clusters only `system:masters` may, as RBAC would
//! allow nobody else by default.

use axum::http::HeaderMap;

/// The authenticated user of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

const AUTHENTICATED: &str = "system:authenticated";

impl User {
    /// From a client certificate (DER): CN is the user, each O a group.
    pub fn from_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
        let mut groups: Vec<String> = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok().map(str::to_owned))
            .collect();
        groups.push(AUTHENTICATED.into());
        Some(Self { name, groups })
    }

    /// Who the request acts as: this user, or the one its `Impersonate-*` headers name.
    /// `Err` is the API server's Forbidden message.
    pub fn acting(&self, headers: &HeaderMap) -> Result<User, String> {
        let values = |name: &str| -> Vec<String> {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        };
        let Some(user) = values("impersonate-user").into_iter().next() else {
            return Ok(self.clone());
        };
        if !self.groups.iter().any(|g| g == "system:masters") {
            return Err(format!(
                "users \"{user}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                self.name
            ));
        }
        let mut groups = values("impersonate-group");
        if user != "system:anonymous" && !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.into());
        }
        Ok(User { name: user, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_masters_may_impersonate_and_the_impersonated_are_authenticated() {
        let admin = User { name: "system:admin".into(), groups: vec!["system:masters".into()] };
        let mut headers = HeaderMap::new();
        assert_eq!(admin.acting(&headers).unwrap(), admin);
        headers.insert("impersonate-user", "kraft:ada".parse().unwrap());
        headers.append("impersonate-group", "system:masters".parse().unwrap());
        let acting = admin.acting(&headers).unwrap();
        assert_eq!(acting.name, "kraft:ada");
        assert_eq!(acting.groups, ["system:masters", "system:authenticated"]);
        let nobody = User { name: "bob".into(), groups: vec![AUTHENTICATED.into()] };
        let refused = nobody.acting(&headers).unwrap_err();
        assert!(refused.contains("cannot impersonate resource \"users\""), "{refused}");
    }
}
