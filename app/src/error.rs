//! The error type every server function returns. It crosses the wire as JSON, so it carries only
//! what a user may see; causes are logged on the server and never sent.

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// A message about one form field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMessage {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("Please sign in to continue.")]
    Unauthenticated,
    #[error("You are not allowed to do that.")]
    Forbidden,
    /// Also the answer for something that exists but belongs to someone else.
    #[error("Not found.")]
    NotFound,
    /// Something the caller may see does not exist; the message says what (e.g. no previous log).
    #[error("{0}")]
    Missing(String),
    #[error("Please correct the fields marked below.")]
    Invalid(Vec<FieldMessage>),
    #[error("The email/username or password is not correct.")]
    BadCredentials,
    #[error("Too many attempts. Try again in {retry_after_secs} s.")]
    TooManyRequests { retry_after_secs: u64 },
    /// The user holds as many of something open as one account may; the message says what.
    #[error("{0}")]
    TooManyOpen(String),
    #[error("Sign-up is closed on this KRaft. Ask an admin for an account.")]
    SignupClosed,
    #[error("The server is busy. Please try again in a moment.")]
    Busy,
    /// The caller may not do this; the message says why and what would allow it.
    #[error("{0}")]
    NotAllowed(String),
    /// A per-user limit; the message says which.
    #[error("{0}")]
    LimitReached(String),
    /// The object exists but cannot do this yet; the message says why.
    #[error("{0}")]
    NotReady(String),
    #[error("The host cluster is not reachable right now. Please try again shortly.")]
    HostUnavailable,
    /// Something failed on the server; details are in the server's log.
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    /// The request could not be delivered or decoded (network down, bad payload, ...).
    #[error("The request failed: {0}")]
    Transport(String),
}

impl ApiError {
    /// The HTTP status a server function answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthenticated | ApiError::BadCredentials => 401,
            ApiError::Forbidden | ApiError::SignupClosed | ApiError::NotAllowed(_) => 403,
            ApiError::NotFound | ApiError::Missing(_) => 404,
            ApiError::Invalid(_) => 422,
            ApiError::TooManyRequests { .. } | ApiError::TooManyOpen(_) => 429,
            ApiError::Busy | ApiError::HostUnavailable => 503,
            ApiError::LimitReached(_) | ApiError::NotReady(_) => 409,
            ApiError::Internal => 500,
            ApiError::Transport(_) => 400,
        }
    }

    /// The message for one field, if this error has one.
    pub fn field(&self, name: &str) -> Option<String> {
        match self {
            ApiError::Invalid(fields) => {
                fields.iter().find(|f| f.field == name).map(|f| f.message.clone())
            }
            _ => None,
        }
    }
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ApiError::Transport(value.to_string())
    }
}
