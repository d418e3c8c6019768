use serde_json::{json, Value};

use crate::helpers::{spawn_app, Backend};
use crate::on_both_backends;

async fn system_info_reports_version_and_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.server_fn("system/info", &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"version": env!("CARGO_PKG_VERSION"), "database": backend.display_name()})
    );
}
on_both_backends!(system_info_reports_version_and_database);
