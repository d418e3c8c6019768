//! ServiceAccount tokens: issued by the TokenRequest API, accepted as bearer tokens while their
//! ServiceAccount lives, and the user they make.

use base64::Engine;
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DeleteParams, PostParams};

use crate::harness::{api_error, spawn_host};

fn token_request(expiration_seconds: Option<i64>) -> TokenRequest {
    serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": expiration_seconds}}))
        .expect("token request")
}

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("claims are JSON")
}

async fn whoami(client: kube::Client) -> Result<serde_json::Value, kube::Error> {
    let review: SelfSubjectReview = serde_json::from_value(serde_json::json!({})).expect("review");
    let answer =
        Api::<SelfSubjectReview>::all(client).create(&PostParams::default(), &review).await?;
    Ok(serde_json::to_value(answer.status.and_then(|s| s.user_info)).expect("json"))
}

#[tokio::test]
async fn a_token_request_issues_an_hour_long_token_that_names_the_service_account() {
    let app = spawn_host().await;
    app.namespace("kraft").await;
    let sa = app.service_account("kraft", "kraft").await;
    let api: Api<ServiceAccount> = Api::namespaced(app.client.clone(), "kraft");
    let before = chrono::Utc::now().timestamp();
    let answer = api
        .create_token_request("kraft", &PostParams::default(), &token_request(None))
        .await
        .expect("token issued");
    let status = answer.status.expect("status");
    let token = status.token.expect("token");
    let c = claims(&token);
    assert_eq!(c["sub"], "system:serviceaccount:kraft:kraft");
    assert_eq!(c["kubernetes.io"]["serviceaccount"]["uid"], sa.metadata.uid.clone().expect("uid"));
    assert_eq!(c["aud"], serde_json::json!(["https://kubernetes.default.svc.cluster.local"]));
    let exp = c["exp"].as_i64().expect("exp");
    assert!((before + 3600..=before + 3602).contains(&exp), "an hour: {exp} vs {before}");
    assert_eq!(status.expiration_timestamp.expect("expiry").0.as_second(), exp);
    assert_eq!(answer.spec.and_then(|s| s.expiration_seconds), Some(3600));

    let me = whoami(app.client_with_token(&token).await).await.expect("whoami");
    assert_eq!(me["username"], "system:serviceaccount:kraft:kraft");
    assert_eq!(
        me["groups"],
        serde_json::json!([
            "system:serviceaccounts",
            "system:serviceaccounts:kraft",
            "system:authenticated"
        ])
    );
    assert_eq!(me["uid"], sa.metadata.uid.expect("uid"));
    assert_eq!(
        me["extra"]["authentication.kubernetes.io/credential-id"],
        serde_json::json!([format!("JTI={}", c["jti"].as_str().expect("jti"))])
    );
    // The admin token is still the cluster admin.
    let admin = whoami(app.client.clone()).await.expect("whoami");
    assert_eq!(admin["username"], "kubernetes-admin");
    assert_eq!(admin["groups"], serde_json::json!(["system:masters", "system:authenticated"]));
}

#[tokio::test]
async fn a_token_request_gets_the_api_servers_errors() {
    let app = spawn_host().await;
    app.namespace("kraft").await;
    app.service_account("kraft", "kraft").await;
    let api: Api<ServiceAccount> = Api::namespaced(app.client.clone(), "kraft");
    let (code, reason, message) = api_error(
        api.create_token_request("kraft", &PostParams::default(), &token_request(Some(599))).await,
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        message,
        r#"TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"#
    );
    let ten_minutes = api
        .create_token_request("kraft", &PostParams::default(), &token_request(Some(600)))
        .await
        .expect("ten minutes is the minimum");
    assert_eq!(ten_minutes.spec.and_then(|s| s.expiration_seconds), Some(600));
    let (code, reason, message) = api_error(
        api.create_token_request("nobody", &PostParams::default(), &token_request(None)).await,
    );
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    assert_eq!(message, r#"serviceaccounts "nobody" not found"#);
    assert!(app.sim.service_account_token("kraft", "nobody").is_err());
}

#[tokio::test]
async fn deleting_or_recreating_the_service_account_revokes_its_tokens() {
    let app = spawn_host().await;
    app.namespace("kraft").await;
    app.service_account("kraft", "kraft").await;
    let client = app.client_as("kraft", "kraft").await;
    whoami(client.clone()).await.expect("the token works");

    let api: Api<ServiceAccount> = Api::namespaced(app.client.clone(), "kraft");
    api.delete("kraft", &DeleteParams::default()).await.expect("deleted");
    let (code, reason, message) = api_error(whoami(client.clone()).await);
    assert_eq!((code, reason.as_str(), message.as_str()), (401, "Unauthorized", "Unauthorized"));

    app.service_account("kraft", "kraft").await;
    let (code, _, _) = api_error(whoami(client).await);
    assert_eq!(code, 401, "a new ServiceAccount of the same name has another uid");
    whoami(app.client_as("kraft", "kraft").await).await.expect("a new token works");

    let (code, _, _) = api_error(whoami(app.client_with_token("made-up").await).await);
    assert_eq!(code, 401);
}
