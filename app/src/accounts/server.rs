//! What only the server sees of accounts: platform types as the wire types the UI shows.

use platform::accounts::User;

use crate::accounts::api::{AuditView, SessionView, UserView};

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            username: user.username.clone(),
            email: user.email.clone(),
            admin: user.role == platform::accounts::Role::Admin,
            organizer: user.organizes(),
            created_at: user.created_at.to_rfc3339(),
        }
    }
}

impl From<platform::accounts::SessionInfo> for SessionView {
    fn from(info: platform::accounts::SessionInfo) -> Self {
        Self {
            id: info.public_id.to_string(),
            created_at: info.created_at.to_rfc3339(),
            last_seen_at: info.last_seen_at.to_rfc3339(),
            user_agent: info.user_agent,
            client_addr: info.client_addr,
            current: info.current,
        }
    }
}

impl From<platform::accounts::AuditEntry> for AuditView {
    fn from(entry: platform::accounts::AuditEntry) -> Self {
        Self {
            occurred_at: entry.occurred_at.to_rfc3339(),
            action: entry.action,
            target: entry.target,
            client_addr: entry.client_addr,
        }
    }
}
