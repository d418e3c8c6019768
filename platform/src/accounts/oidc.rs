//! OpenID Connect single sign-on, the relying party's half: discovery, the authorization request
//! (code flow with PKCE, `state` and `nonce`), the code exchange and the ID token's validation
//! (signature against the provider's published keys, issuer, audience, expiry, nonce), all through
//! the `openidconnect` crate. What the verified identity means for accounts is
//! `single_sign_on.rs`'s business.
//!
//! The provider's metadata and keys are discovered when first needed (a provider that is down at
//! start does not stop KRaft) and kept for an hour; a token signed by a key KRaft has not seen
//! makes it fetch them again (the provider rotated its keys), at most once per `REFRESH_GAP`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IdToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse,
    UserInfoClaims,
};
use serde::{Deserialize, Serialize};

use crate::error_chain;
use sha2::{Digest, Sha256};

/// How long discovered metadata and keys are trusted before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Unknown signing keys trigger a refresh at most this often. ID tokens come only from the
/// provider's own token endpoint, so this only spares a provider that misbehaves.
const REFRESH_GAP: Duration = Duration::from_secs(1);
/// How long a browser may take at the provider between leaving KRaft and coming back.
pub const SIGN_IN_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The provider and KRaft's registration with it.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer (`https://idp.example/realms/kraft`); discovery reads
    /// `<issuer>/.well-known/openid-configuration`, whose `issuer` must be exactly this.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `<public URL>/auth/oidc/callback`.
    pub redirect_url: String,
    /// What the sign-in button says: "Sign in with <display name>".
    pub display_name: String,
    /// Scopes asked for besides `openid` (e.g. `email profile groups`).
    pub scopes: Vec<String>,
    /// The claim (ID token or userinfo) that lists the user's groups.
    pub groups_claim: String,
    /// Members of this group are admins, others are not (unset: roles are KRaft's own).
    pub admin_group: Option<String>,
    /// Members of this group organize workshops with at least `organizer_seats` seats.
    pub organizer_group: Option<String>,
    pub organizer_seats: i32,
    /// PEM certificates of a private CA the provider's TLS certificate chains to.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_url", &self.redirect_url)
            .finish_non_exhaustive()
    }
}

/// What a browser's session keeps while it is away at the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Where to go once signed in (a path on this site).
    pub next: Option<String>,
    started_at: DateTime<Utc>,
}

/// Who the provider vouches for, from a verified ID token (and its userinfo endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// Only `email_verified: true` counts; a missing claim is "not verified".
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider cannot be reached: {0}")]
    Unavailable(String),
    /// The `state` that came back is not the one this browser was sent with.
    #[error("this sign-in did not start in this browser (state mismatch)")]
    StateMismatch,
    #[error("this sign-in took too long; start again")]
    Expired,
    /// The provider answered with an OAuth error (`invalid_grant` for a used code, say).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token failed validation.
    #[error("the identity provider's ID token is not valid: {0}")]
    InvalidToken(String),
}

/// Claims beyond the standard ones, kept as they came (the groups claim is read from them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}

impl AdditionalClaims for OtherClaims {}

type KraftIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// `CoreClient` as discovery builds it: authorization endpoint set, token and userinfo endpoints
/// as the provider's metadata says.
type KraftClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

struct Discovered {
    metadata: Arc<CoreProviderMetadata>,
    fetched: Instant,
}

/// The relying party: one per KRaft process.
pub struct OidcClient {
    settings: OidcSettings,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: openidconnect::reqwest::Client,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
}

/// Asymmetric signatures only: `none` never, and HMAC (keyed by the client secret) is not a
/// signature the provider alone could have made.
const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

fn same_secret(a: &str, b: &str) -> bool {
    // Compared as hashes: no timing side channel on the secret itself.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

impl std::fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcClient").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Checks the settings (URLs, CA) without contacting the provider.
    pub fn new(settings: OidcSettings) -> Result<Self, String> {
        let issuer = IssuerUrl::new(settings.issuer.trim_end_matches('/').to_owned())
            .map_err(|e| format!("KRAFT_OIDC_ISSUER {:?} is not a URL: {e}", settings.issuer))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| {
            format!("the OIDC redirect URL {:?} is not a URL: {e}", settings.redirect_url)
        })?;
        if settings.client_id.trim().is_empty() {
            return Err("KRAFT_OIDC_CLIENT_ID is empty".into());
        }
        let mut http = openidconnect::reqwest::ClientBuilder::new()
            // A provider's redirect could point anywhere (SSRF): discovery and tokens never follow.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10));
        if let Some(pem) = &settings.ca_pem {
            let certificates = openidconnect::reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| format!("KRAFT_OIDC_CA_FILE holds no usable certificate: {e}"))?;
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
        let http = http.build().map_err(|e| format!("cannot build the OIDC HTTP client: {e}"))?;
        Ok(Self { settings, issuer, redirect, http, discovered: tokio::sync::Mutex::new(None) })
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// The provider's metadata and keys: cached, or discovered now (`refresh`: the cached keys
    /// did not know a token's key).
    async fn metadata(&self, refresh: bool) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        let mut discovered = self.discovered.lock().await;
        if let Some(known) = discovered.as_ref() {
            let age = known.fetched.elapsed();
            let fresh = if refresh { age < REFRESH_GAP } else { age < METADATA_TTL };
            if fresh {
                return Ok(known.metadata.clone());
            }
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(error_chain(&e)))?;
        let metadata = Arc::new(metadata);
        *discovered = Some(Discovered { metadata: metadata.clone(), fetched: Instant::now() });
        Ok(metadata)
    }

    fn client(&self, metadata: &CoreProviderMetadata) -> KraftClient {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Where to send the browser, and what its session keeps until it comes back.
    pub async fn begin(&self, next: Option<String>) -> Result<(String, PendingSignIn), OidcError> {
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        let pending = PendingSignIn {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            next,
            started_at: Utc::now(),
        };
        Ok((url.to_string(), pending))
    }

    /// The browser came back with `state` and `code`: checks the state, redeems the code (with
    /// the PKCE verifier) and validates the ID token.
    pub async fn finish(
        &self,
        pending: PendingSignIn,
        state: &str,
        code: &str,
    ) -> Result<ExternalIdentity, OidcError> {
        if !same_secret(&pending.state, state) {
            return Err(OidcError::StateMismatch);
        }
        let age = (Utc::now() - pending.started_at).to_std().unwrap_or_default();
        if age > SIGN_IN_WINDOW {
            return Err(OidcError::Expired);
        }
        let metadata = self.metadata(false).await?;
        let client = self.client(&metadata);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|error| match error {
                RequestTokenError::ServerResponse(response) => {
                    OidcError::Refused(match response.error_description() {
                        Some(description) => format!("{} ({description})", response.error()),
                        None => response.error().to_string(),
                    })
                }
                other => OidcError::Unavailable(error_chain(&other)),
            })?;
        let raw = response
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("the token response has no ID token".into()))?
            .to_string();
        let token: KraftIdToken =
            raw.parse().map_err(|e| OidcError::InvalidToken(format!("malformed: {e}")))?;
        let nonce = Nonce::new(pending.nonce);
        let claims = match Self::verify(&client, &token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Signed with a key published since: the provider rotated its keys.
                let metadata = self.metadata(true).await?;
                Self::verify(&self.client(&metadata), &token, &nonce)
            }
            verdict => verdict,
        }
        .map_err(|e| OidcError::InvalidToken(error_chain(&e)))?;
        let mut identity = ExternalIdentity {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            email_verified: claims.email_verified() == Some(true),
            preferred_username: claims.preferred_username().map(|u| u.to_string()),
            groups: self.groups(&claims.additional_claims().claims),
        };
        // Providers that follow OIDC Core §5.4 strictly (oidc-provider among them) put scope
        // claims only in the userinfo response when an access token is issued.
        let needs_more = identity.email.is_none()
            || (self.maps_groups()
                && !claims.additional_claims().claims.contains_key(&self.settings.groups_claim));
        if needs_more {
            if let Ok(request) =
                client.user_info(response.access_token().clone(), Some(claims.subject().clone()))
            {
                let info: UserInfoClaims<OtherClaims, CoreGenderClaim> =
                    request.request_async(&self.http).await.map_err(|e| {
                        OidcError::Unavailable(format!("userinfo: {}", error_chain(&e)))
                    })?;
                if identity.email.is_none() {
                    identity.email = info.email().map(|e| e.to_string());
                    identity.email_verified = info.email_verified() == Some(true);
                }
                if identity.preferred_username.is_none() {
                    identity.preferred_username = info.preferred_username().map(|u| u.to_string());
                }
                if identity.groups.is_empty() {
                    identity.groups = self.groups(&info.additional_claims().claims);
                }
            }
        }
        Ok(identity)
    }

    fn verify(
        client: &KraftClient,
        token: &KraftIdToken,
        nonce: &Nonce,
    ) -> Result<openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>, ClaimsVerificationError>
    {
        let verifier = client.id_token_verifier().set_allowed_algs(ALLOWED_ALGS);
        token.clone().into_claims(&verifier, nonce)
    }

    fn maps_groups(&self) -> bool {
        self.settings.admin_group.is_some() || self.settings.organizer_group.is_some()
    }

    /// The groups claim: an array of strings (Keycloak, Dex, GitLab) or one string.
    fn groups(&self, claims: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
        match claims.get(&self.settings.groups_claim) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|g| g.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}
