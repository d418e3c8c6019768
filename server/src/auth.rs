//! Who is calling an axum route (websockets, downloads): the session cookie, checked the same way
//! the server functions' `require_user()` checks it.

use platform::accounts::{AccountSession, User};
use platform::Platform;
use tower_sessions::Session;

/// The signed-in user, or `None` for strangers and expired sessions.
pub async fn current_user(session: Session, platform: &Platform) -> Option<User> {
    match platform.accounts().authenticate(&AccountSession::from(session)).await {
        Ok(user) => user,
        Err(error) => {
            tracing::warn!(%error, "could not check the session");
            None
        }
    }
}
