//! ServiceAccount tokens: issued by the TokenRequest API (`kubectl create token`) and accepted as
//! bearer tokens on the host API for as long as a bound token would be.
//!
//! A token is shaped like the API server's JWT (kubernetes v1.35 `pkg/serviceaccount/claims.go`
//! `Claims` and `pkg/serviceaccount/jwt.go`: header `{"alg":"RS256","kid":...}`, claims `aud`,
//! `exp`, `iat`, `iss`, `jti`, `kubernetes.io` {namespace, serviceaccount {name, uid}}, `nbf`,
//! `sub`), but its signature is random bytes: hostsim verifies a token by finding it in the
//! table of tokens it issued, not by checking a signature. What the validator then checks is the
//! real one's (`claims.go` `validator.Validate`, go-jose `Claims.Validate` with its default
//! leeway of one minute): not expired, not before `nbf`, meant for the API server's audience,
//! and its ServiceAccount still there with the same uid (deleting or recreating it revokes the
//! token).

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

use crate::error::{Cause, Error, GroupResource, Result};
use crate::host::Host;
use crate::identity::User;
use crate::object;
use crate::store::Store;

/// kubeadm's `--service-account-issuer`; the API audiences default to it.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// go-jose `jwt.DefaultLeeway`.
const LEEWAY_SECONDS: i64 = 60;

/// What hostsim remembers of a token it issued.
#[derive(Debug, Clone)]
struct Issued {
    namespace: String,
    name: String,
    uid: String,
    audiences: Vec<String>,
    not_before: i64,
    expires: i64,
    jti: String,
}

/// The tokens issued so far, by their text.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<HashMap<String, Issued>>,
    /// The `kid` of the (pretend) signing key.
    key_id: String,
}

/// A token and its expiry (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub token: String,
    pub expires: i64,
}

fn base64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Tokens {
    pub fn new() -> Self {
        let mut kid = [0u8; 32];
        rand::rng().fill_bytes(&mut kid);
        Self { issued: Mutex::new(HashMap::new()), key_id: base64url(&kid) }
    }

    /// A token for `service_account` (the object) valid for `seconds` from `now`.
    pub fn issue(
        &self,
        service_account: &Value,
        audiences: &[String],
        seconds: i64,
        now: i64,
    ) -> Token {
        let issued = Issued {
            namespace: object::namespace(service_account).to_string(),
            name: object::name(service_account).to_string(),
            uid: object::uid(service_account).to_string(),
            audiences: audiences.to_vec(),
            not_before: now,
            expires: now + seconds,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        // Go marshals the merged claims as a map: keys in order.
        let claims = json!({
            "aud": issued.audiences,
            "exp": issued.expires,
            "iat": now,
            "iss": ISSUER,
            "jti": issued.jti,
            "kubernetes.io": {
                "namespace": issued.namespace,
                "serviceaccount": {"name": issued.name, "uid": issued.uid},
            },
            "nbf": now,
            "sub": crate::identity::service_account_username(&issued.namespace, &issued.name),
        });
        let header = json!({"alg": "RS256", "kid": self.key_id});
        // An RS256 signature of a 2048-bit key is 256 bytes.
        let mut signature = [0u8; 256];
        rand::rng().fill_bytes(&mut signature);
        let token = format!(
            "{}.{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes()),
            base64url(&signature)
        );
        let expires = issued.expires;
        let mut table = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, t| t.expires + LEEWAY_SECONDS >= now);
        table.insert(token.clone(), issued);
        Token { token, expires }
    }

    /// The ServiceAccount user `token` authenticates at `now`, if it still does.
    pub fn authenticate(&self, store: &Store, token: &str, now: i64) -> Option<User> {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner()).get(token).cloned()?;
        if now - LEEWAY_SECONDS > issued.expires || now + LEEWAY_SECONDS < issued.not_before {
            return None;
        }
        // The token authenticator only takes tokens meant for the API server.
        if !issued.audiences.iter().any(|a| a == ISSUER) {
            return None;
        }
        let sa = store.get(
            &GroupResource::new("", "serviceaccounts"),
            &issued.namespace,
            &issued.name,
        )?;
        if object::uid(&sa) != issued.uid {
            return None;
        }
        Some(User::service_account(&issued.namespace, &issued.name, &issued.uid, &issued.jti))
    }
}

/// The API server's minimum and maximum token lifetimes (kubernetes v1.35
/// `pkg/apis/authentication/validation/validation.go` ValidateTokenRequest), and the default
/// (`pkg/apis/authentication/v1/defaults.go` SetDefaults_TokenRequestSpec: one hour).
const MIN_SECONDS: i64 = 10 * 60;
const MAX_SECONDS: i64 = 1 << 32;
const DEFAULT_SECONDS: i64 = 60 * 60;

/// TokenRequest on the ServiceAccount `namespace/name` (kubernetes v1.35
/// `pkg/registry/core/serviceaccount/storage/token.go` TokenREST.Create): `request` is the
/// TokenRequest sent (its `metadata` already checked against the path). The answer is the
/// TokenRequest with its defaults, metadata and `status` filled in.
pub fn request(host: &Host, namespace: &str, name: &str, request: &Value) -> Result<Value> {
    let gr = GroupResource::new("", "serviceaccounts");
    let sa = host.store.get(&gr, namespace, name).ok_or_else(|| Error::not_found(&gr, name))?;
    let mut audiences: Vec<String> = request
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if audiences.is_empty() {
        audiences = vec![ISSUER.to_string()];
    }
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_SECONDS);
    let invalid = |detail: &str| Error::Invalid {
        kind: "TokenRequest".into(),
        group: "authentication.k8s.io".into(),
        name: String::new(),
        causes: vec![Cause::invalid("spec.expirationSeconds", &json!(seconds), detail)],
    };
    if seconds < MIN_SECONDS {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if seconds > MAX_SECONDS {
        return Err(invalid("may not specify a duration larger than 2^32 seconds"));
    }
    if request.pointer("/spec/boundObjectRef").is_some_and(|r| !r.is_null()) {
        // Binding a token to a pod, secret or node is not simulated.
        return Err(Error::BadRequest(
            "hostsim does not bind tokens to objects (spec.boundObjectRef)".into(),
        ));
    }
    let now = chrono::Utc::now();
    let token = host.tokens.issue(&sa, &audiences, seconds, now.timestamp());
    let expires = chrono::DateTime::from_timestamp(token.expires, 0).unwrap_or(now);
    let rfc3339 =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(now)},
        "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": null},
        "status": {"token": token.token, "expirationTimestamp": rfc3339(expires)},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_sa(name: &str) -> (Store, Value) {
        let store = Store::new(100);
        store
            .create(&GroupResource::new("", "namespaces"), json!({"metadata": {"name": "kraft"}}))
            .expect("namespace");
        let sa = store
            .create(
                &GroupResource::new("", "serviceaccounts"),
                json!({"metadata": {"name": name, "namespace": "kraft", "uid": "uid-1"}}),
            )
            .expect("stored");
        (store, sa)
    }

    fn claims(token: &str) -> Value {
        let payload = token.split('.').nth(1).expect("three parts");
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn a_token_carries_the_claims_of_a_bound_service_account_token() {
        let (_, sa) = store_with_sa("kraft");
        let tokens = Tokens::new();
        let t = tokens.issue(&sa, &[ISSUER.to_string()], 3600, 1_000);
        assert_eq!(t.token.split('.').count(), 3);
        let c = claims(&t.token);
        assert_eq!(c["sub"], "system:serviceaccount:kraft:kraft");
        assert_eq!(c["iss"], ISSUER);
        assert_eq!(c["aud"], json!([ISSUER]));
        assert_eq!(
            (c["iat"].as_i64(), c["nbf"].as_i64(), c["exp"].as_i64()),
            (Some(1_000), Some(1_000), Some(4_600))
        );
        assert_eq!(c["kubernetes.io"]["namespace"], "kraft");
        assert_eq!(
            c["kubernetes.io"]["serviceaccount"],
            json!({"name": "kraft", "uid": object::uid(&sa)})
        );
        assert_eq!(t.expires, 4_600);
    }

    #[test]
    fn a_token_stops_authenticating_a_minute_after_it_expires() {
        let (store, sa) = store_with_sa("kraft");
        let tokens = Tokens::new();
        let t = tokens.issue(&sa, &[ISSUER.to_string()], 600, 1_000);
        let user = tokens.authenticate(&store, &t.token, 1_000).expect("valid");
        assert_eq!(user.name, "system:serviceaccount:kraft:kraft");
        assert_eq!(
            user.groups,
            ["system:serviceaccounts", "system:serviceaccounts:kraft", "system:authenticated"]
        );
        assert!(tokens.authenticate(&store, &t.token, 1_660).is_some(), "within the leeway");
        assert!(tokens.authenticate(&store, &t.token, 1_661).is_none());
        assert!(tokens.authenticate(&store, "not.a.token", 1_000).is_none());
    }

    #[test]
    fn a_token_for_another_audience_or_a_gone_service_account_does_not_authenticate() {
        let (store, sa) = store_with_sa("kraft");
        let tokens = Tokens::new();
        let vault = tokens.issue(&sa, &["vault".to_string()], 3600, 1_000);
        assert!(tokens.authenticate(&store, &vault.token, 1_000).is_none());
        let t = tokens.issue(&sa, &[ISSUER.to_string()], 3600, 1_000);
        let gr = GroupResource::new("", "serviceaccounts");
        store.delete(&gr, "kraft", "kraft").expect("deleted");
        assert!(tokens.authenticate(&store, &t.token, 1_000).is_none());
        // Recreated under the same name: another uid, the old token stays revoked.
        store
            .create(&gr, json!({"metadata": {"name": "kraft", "namespace": "kraft"}}))
            .expect("recreated");
        assert!(tokens.authenticate(&store, &t.token, 1_000).is_none());
    }
}
