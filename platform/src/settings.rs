//! Settings an admin runs the platform with, changed on the admin page while KRaft runs: the
//! sign-up mode, per-user limits, the K3s versions and modes offered, the tenant quota and idle
//! expiry. The environment configures each one; what an admin changes is kept in the database
//! as an override over it (clearing a field goes back to the environment's value), audited, and
//! applied by every replica within [`POLL`] without a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, TransactionTrait};
use serde::{Deserialize, Serialize};

use crate::accounts::{audit, AuditAction, AuditEvent, FieldError, SignupMode, User};
use crate::clusters::{ClusterSettings, Clusters};
use crate::db::entities::platform_settings;
use crate::host::k3k::ClusterMode;

/// How often every replica looks for a change another one made.
pub const POLL: Duration = Duration::from_secs(2);
/// The one row.
const ROW: i32 = 1;

/// What an admin changed, over the environment's values. `None`: as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Overrides {
    pub signup_mode: Option<String>,
    pub max_clusters: Option<usize>,
    pub max_servers: Option<i32>,
    pub max_agents: Option<i32>,
    pub max_storage_gi: Option<i32>,
    pub versions: Option<Vec<String>>,
    pub modes: Option<Vec<String>>,
    pub tenant_cpu: Option<String>,
    pub tenant_memory: Option<String>,
    pub tenant_storage: Option<String>,
    /// Hours; 0: clusters never expire for idleness.
    pub idle_expiry_hours: Option<u64>,
}

/// The admin page's form, as typed: an empty field means "as configured".
#[derive(Debug, Clone, Default)]
pub struct SettingsInput {
    pub signup_mode: String,
    pub max_clusters: String,
    pub max_servers: String,
    pub max_agents: String,
    pub max_storage_gi: String,
    /// Comma- or space-separated; the first is the default.
    pub versions: String,
    pub modes: String,
    pub tenant_cpu: String,
    pub tenant_memory: String,
    pub tenant_storage: String,
    /// Hours, or `off`.
    pub idle_expiry_hours: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The fields are well-formed but KRaft cannot run with them; the message says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// One setting as the admin page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingView {
    pub key: &'static str,
    /// In effect now.
    pub value: String,
    /// What the environment configured.
    pub configured: String,
    /// An admin changed it.
    pub changed: bool,
}

/// What the platform was started with: the base the overrides apply to.
#[derive(Clone)]
struct Base {
    clusters: ClusterSettings,
    signup: SignupMode,
}

pub struct Settings {
    db: DatabaseConnection,
    base: Base,
    clusters: Arc<Clusters>,
    accounts: Arc<crate::accounts::Accounts>,
    /// The overrides in effect and the revision they came from.
    current: std::sync::Mutex<(i64, Overrides)>,
}

fn join(list: &[String]) -> String {
    list.join(", ")
}

fn hours(expiry: Option<Duration>) -> String {
    match expiry {
        None => "off".into(),
        Some(d) => (d.as_secs() / 3600).to_string(),
    }
}

impl Overrides {
    /// The settings these overrides make of `base`, checked as KRaft checks its configuration.
    fn apply(&self, base: &Base) -> Result<(ClusterSettings, SignupMode), String> {
        let mut clusters = base.clusters.clone();
        let signup = match &self.signup_mode {
            Some(mode) => {
                SignupMode::parse(mode).ok_or_else(|| format!("unknown sign-up mode {mode:?}"))?
            }
            None => base.signup,
        };
        if let Some(n) = self.max_clusters {
            clusters.max_clusters = n;
        }
        if let Some(n) = self.max_servers {
            clusters.max_servers = n;
        }
        if let Some(n) = self.max_agents {
            clusters.max_agents = n;
        }
        if let Some(n) = self.max_storage_gi {
            clusters.max_storage_gi = n;
        }
        if let Some(versions) = &self.versions {
            clusters.versions = versions.clone();
        }
        if let Some(modes) = &self.modes {
            clusters.modes = modes
                .iter()
                .map(|m| parse_mode(m).ok_or_else(|| format!("unknown mode {m:?}")))
                .collect::<Result<_, _>>()?;
        }
        if let Some(q) = &self.tenant_cpu {
            clusters.tenant.cpu = q.clone();
        }
        if let Some(q) = &self.tenant_memory {
            clusters.tenant.memory = q.clone();
        }
        if let Some(q) = &self.tenant_storage {
            clusters.tenant.storage = q.clone();
        }
        if let Some(h) = self.idle_expiry_hours {
            clusters.idle_expiry = (h > 0).then(|| Duration::from_secs(h * 3600));
        }
        clusters.check()?;
        Ok((clusters, signup))
    }
}

/// A form field holding a whole number in `range`; empty: `None` (as configured).
pub(crate) fn whole_number(
    field: &'static str,
    raw: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(FieldError {
            field,
            message: format!("Enter a whole number from {} to {}.", range.start(), range.end()),
        }),
    }
}

fn parse_mode(text: &str) -> Option<ClusterMode> {
    match text {
        "shared" => Some(ClusterMode::Shared),
        "virtual" => Some(ClusterMode::Virtual),
        _ => None,
    }
}

impl SettingsInput {
    /// The overrides the form asks for, or what is wrong with it, field by field.
    fn parse(&self) -> Result<Overrides, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut error = |field: &'static str, message: String| {
            errors.push(FieldError { field, message });
        };
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let mut number = |field: &'static str, raw: &str, range: std::ops::RangeInclusive<i64>| {
            whole_number(field, raw, range).unwrap_or_else(|e| {
                error(e.field, e.message);
                None
            })
        };
        let max_clusters = number("max_clusters", &self.max_clusters, 0..=1000);
        let max_servers = number("max_servers", &self.max_servers, 1..=3);
        let max_agents = number("max_agents", &self.max_agents, 0..=50);
        let max_storage_gi = number("max_storage_gi", &self.max_storage_gi, 1..=10_000);
        let mut overrides = Overrides {
            max_clusters: max_clusters.map(|n| n as usize),
            max_servers: max_servers.map(|n| n as i32),
            max_agents: max_agents.map(|n| n as i32),
            max_storage_gi: max_storage_gi.map(|n| n as i32),
            ..Overrides::default()
        };
        if overrides.max_servers == Some(2) {
            error("max_servers", "Use 1 or 3: etcd needs an odd number of servers.".into());
        }
        if let Some(mode) = text(&self.signup_mode) {
            if SignupMode::parse(&mode).is_some() {
                overrides.signup_mode = Some(mode);
            } else {
                error("signup_mode", "Choose open, invite, approval or closed.".into());
            }
        }
        let list = |raw: &str| -> Option<Vec<String>> {
            let items: Vec<String> = raw
                .split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            (!items.is_empty()).then_some(items)
        };
        if let Some(versions) = list(&self.versions) {
            match versions.iter().find(|v| crate::clusters::K3sVersion::parse(v).is_none()) {
                Some(bad) => {
                    error("versions", format!("{bad:?} is not a K3s version like v1.33.1-k3s1."))
                }
                None => overrides.versions = Some(versions),
            }
        }
        if let Some(modes) = list(&self.modes) {
            match modes.iter().find(|m| parse_mode(m).is_none()) {
                Some(bad) => {
                    error("modes", format!("{bad:?} is not a mode: use shared or virtual."))
                }
                None => overrides.modes = Some(modes),
            }
        }
        for (field, raw, slot) in [
            ("tenant_cpu", &self.tenant_cpu, &mut overrides.tenant_cpu),
            ("tenant_memory", &self.tenant_memory, &mut overrides.tenant_memory),
            ("tenant_storage", &self.tenant_storage, &mut overrides.tenant_storage),
        ] {
            if let Some(q) = text(raw) {
                if crate::host::stream::quantity::Quantity::parse(&q).is_ok() {
                    *slot = Some(q);
                } else {
                    error(
                        field,
                        format!("{q:?} is not a Kubernetes quantity like 4, 500m or 8Gi."),
                    );
                }
            }
        }
        if let Some(raw) = text(&self.idle_expiry_hours) {
            match raw.as_str() {
                "off" | "0" => overrides.idle_expiry_hours = Some(0),
                n => match n.parse::<u64>() {
                    Ok(h) if (1..=24 * 365).contains(&h) => overrides.idle_expiry_hours = Some(h),
                    _ => error("idle_expiry_hours", "Enter hours from 1 to 8760, or off.".into()),
                },
            }
        }
        if errors.is_empty() {
            Ok(overrides)
        } else {
            Err(errors)
        }
    }
}

impl Settings {
    pub(crate) fn new(
        db: DatabaseConnection,
        clusters: Arc<Clusters>,
        accounts: Arc<crate::accounts::Accounts>,
    ) -> Self {
        let base =
            Base { clusters: (*clusters.settings()).clone(), signup: accounts.signup_mode() };
        Self {
            db,
            base,
            clusters,
            accounts,
            current: std::sync::Mutex::new((0, Overrides::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (i64, Overrides)> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every setting the admin page offers: in effect, as configured, changed or not.
    pub fn view(&self) -> Vec<SettingView> {
        let overrides = self.lock().1.clone();
        let now = self.clusters.settings();
        let base = &self.base.clusters;
        let modes = |m: &[ClusterMode]| m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ");
        let row = |key, value: String, configured: String, changed: bool| SettingView {
            key,
            value,
            configured,
            changed,
        };
        vec![
            row(
                "signup_mode",
                self.accounts.signup_mode().as_str().into(),
                self.base.signup.as_str().into(),
                overrides.signup_mode.is_some(),
            ),
            row(
                "max_clusters",
                now.max_clusters.to_string(),
                base.max_clusters.to_string(),
                overrides.max_clusters.is_some(),
            ),
            row(
                "max_servers",
                now.max_servers.to_string(),
                base.max_servers.to_string(),
                overrides.max_servers.is_some(),
            ),
            row(
                "max_agents",
                now.max_agents.to_string(),
                base.max_agents.to_string(),
                overrides.max_agents.is_some(),
            ),
            row(
                "max_storage_gi",
                now.max_storage_gi.to_string(),
                base.max_storage_gi.to_string(),
                overrides.max_storage_gi.is_some(),
            ),
            row(
                "versions",
                join(&now.versions),
                join(&base.versions),
                overrides.versions.is_some(),
            ),
            row("modes", modes(&now.modes), modes(&base.modes), overrides.modes.is_some()),
            row(
                "tenant_cpu",
                now.tenant.cpu.clone(),
                base.tenant.cpu.clone(),
                overrides.tenant_cpu.is_some(),
            ),
            row(
                "tenant_memory",
                now.tenant.memory.clone(),
                base.tenant.memory.clone(),
                overrides.tenant_memory.is_some(),
            ),
            row(
                "tenant_storage",
                now.tenant.storage.clone(),
                base.tenant.storage.clone(),
                overrides.tenant_storage.is_some(),
            ),
            row(
                "idle_expiry_hours",
                hours(now.idle_expiry),
                hours(base.idle_expiry),
                overrides.idle_expiry_hours.is_some(),
            ),
        ]
    }

    /// Saves what the admin's form asks for (replacing every earlier change), applies it here at
    /// once, and lets the other replicas know.
    pub async fn update(
        &self,
        admin: &User,
        input: &SettingsInput,
        client_addr: Option<&str>,
    ) -> Result<(), SettingsError> {
        let overrides = input.parse().map_err(SettingsError::Invalid)?;
        let (clusters, signup) = overrides.apply(&self.base).map_err(|message| {
            SettingsError::Refused(format!("KRaft cannot run with these settings: {message}"))
        })?;
        let before = self.lock().1.clone();
        let json = serde_json::to_string(&overrides).unwrap_or_else(|_| "{}".into());
        let txn = self.db.begin().await?;
        let row = platform_settings::Entity::find_by_id(ROW).one(&txn).await?;
        let revision = row.as_ref().map_or(0, |r| r.revision) + 1;
        let model = platform_settings::Model {
            id: ROW,
            overrides: json,
            revision,
            updated_at: Utc::now(),
            updated_by: Some(admin.id),
        };
        let active = platform_settings::ActiveModel::from(model);
        if row.is_some() {
            platform_settings::Entity::update(sea_orm::ActiveModelTrait::reset_all(active))
                .exec(&txn)
                .await?;
        } else {
            platform_settings::Entity::insert(active).exec(&txn).await?;
        }
        txn.commit().await?;
        self.clusters.set_settings(clusters);
        self.accounts.set_signup_mode(signup);
        *self.lock() = (revision, overrides.clone());
        audit::record(
            &self.db,
            AuditEvent::own(AuditAction::SettingsChanged, admin.id, client_addr)
                .target(describe_change(&before, &overrides)),
        )
        .await?;
        Ok(())
    }

    /// Applies what another replica saved, if anything changed since the last look.
    pub async fn refresh(&self) -> Result<(), DbErr> {
        let Some(row) = platform_settings::Entity::find_by_id(ROW).one(&self.db).await? else {
            return Ok(());
        };
        if row.revision == self.lock().0 {
            return Ok(());
        }
        let overrides: Overrides = match serde_json::from_str(&row.overrides) {
            Ok(o) => o,
            Err(error) => {
                tracing::warn!(%error, "the saved settings cannot be read: keeping the ones in effect");
                return Ok(());
            }
        };
        match overrides.apply(&self.base) {
            Ok((clusters, signup)) => {
                self.clusters.set_settings(clusters);
                self.accounts.set_signup_mode(signup);
                *self.lock() = (row.revision, overrides);
                tracing::info!(revision = row.revision, "applied changed settings");
            }
            Err(error) => {
                // E.g. virtual mode saved by a replica configured with a sandbox, read by one
                // without: this one keeps what it has rather than run unsafely.
                tracing::warn!(%error, "the saved settings do not fit this replica's configuration");
                self.lock().0 = row.revision;
            }
        }
        Ok(())
    }

    /// Looks for changes every [`POLL`]; runs until aborted.
    pub async fn run(self: Arc<Self>) {
        let mut every = tokio::time::interval(POLL);
        loop {
            every.tick().await;
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "could not read the settings");
            }
        }
    }
}

/// "max_clusters 3 → 5, signup_mode open → approval" for the audit trail.
fn describe_change(before: &Overrides, after: &Overrides) -> String {
    let a = serde_json::to_value(before).unwrap_or_default();
    let b = serde_json::to_value(after).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return String::new() };
    let show = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => "as configured".to_owned(),
        Some(v) => v.to_string(),
    };
    let changes: Vec<String> = b
        .keys()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k} {} → {}", show(a.get(k)), show(b.get(k))))
        .collect();
    if changes.is_empty() {
        "no change".into()
    } else {
        changes.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_overrides_and_bad_fields_are_named() {
        let input = SettingsInput {
            signup_mode: "approval".into(),
            max_clusters: " 5 ".into(),
            versions: "v1.33.1-k3s1, v1.32.5-k3s1".into(),
            idle_expiry_hours: "off".into(),
            ..Default::default()
        };
        let o = input.parse().unwrap();
        assert_eq!(o.signup_mode.as_deref(), Some("approval"));
        assert_eq!(o.max_clusters, Some(5));
        assert_eq!(o.versions.as_ref().map(Vec::len), Some(2));
        assert_eq!(o.idle_expiry_hours, Some(0));
        assert_eq!(o.max_agents, None, "empty stays as configured");
        let bad = SettingsInput {
            signup_mode: "sometimes".into(),
            max_servers: "2".into(),
            tenant_cpu: "lots".into(),
            modes: "shared, fancy".into(),
            ..Default::default()
        };
        let fields: Vec<&str> = bad.parse().unwrap_err().iter().map(|e| e.field).collect();
        assert_eq!(fields, ["max_servers", "signup_mode", "modes", "tenant_cpu"]);
    }

    #[test]
    fn changes_are_described_for_the_audit_trail() {
        let before = Overrides { max_clusters: Some(3), ..Default::default() };
        let after = Overrides { signup_mode: Some("closed".into()), ..Default::default() };
        let said = describe_change(&before, &after);
        assert!(said.contains("signup_mode as configured → \"closed\""), "{said}");
        assert!(said.contains("max_clusters 3 → as configured"), "{said}");
    }
}
