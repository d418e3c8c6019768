use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// What the server tells the browser about itself (the server function is `SystemInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    pub version: String,
    /// Human name of the database backend, e.g. "PostgreSQL" or "SQLite".
    pub database: String,
}

#[server(prefix = "/api", endpoint = "system/info")]
pub async fn system_info() -> Result<About, ApiError> {
    let platform = crate::api::ssr::platform()?;
    let about = platform.about();
    Ok(About {
        version: about.version.to_string(),
        database: about.database.display_name().to_string(),
    })
}
