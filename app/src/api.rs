//! The one way into the server: what every server function and axum route starts with (who is
//! calling, from where, on which of their clusters) and how every error leaves. Server-only.

#[cfg(feature = "ssr")]
pub mod ssr;

/// The websocket close code a live view gets when its session ended (signed out, revoked,
/// password changed, account deleted): the browser goes to the sign-in page instead of
/// reconnecting.
pub const SIGNED_OUT_CLOSE_CODE: u16 = 4401;
/// The close reason that goes with it.
pub const SIGNED_OUT_REASON: &str = "signed out";
