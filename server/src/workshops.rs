//! `GET /workshops/{id}/seats.csv`: a workshop's seat list for its organizer, as CSV (RFC 4180).
//! Anyone else gets the same 404 as for a missing workshop.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header;
use platform::Platform;

use app::api::ssr::CurrentUser;
use app::error::ApiError;

pub async fn seats_csv(
    State(platform): State<Platform>,
    current: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: uuid::Uuid = id.trim().parse().map_err(|_| ApiError::NotFound)?;
    let (workshop, seats) = platform.workshops().board(current.user.id, id).await?;
    let mut csv = String::from("attendee,joined_at,cluster,phase,last_api_request_at\r\n");
    for seat in &seats {
        let cluster = seat.cluster.as_ref();
        let fields = [
            seat.attendee.clone(),
            seat.seat.joined_at.to_rfc3339(),
            cluster.map(|c| c.name.clone()).unwrap_or_default(),
            cluster.map(|c| c.phase.clone()).unwrap_or_else(|| "Deleted".into()),
            cluster.and_then(|c| c.last_api_request_at).map(|t| t.to_rfc3339()).unwrap_or_default(),
        ];
        let row: Vec<String> = fields.iter().map(|f| field(f)).collect();
        csv.push_str(&row.join(","));
        csv.push_str("\r\n");
    }
    let name: String = workshop
        .title
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}-seats.csv\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        csv,
    )
        .into_response())
}

/// One CSV field: quoted when it must be, and never read as a formula by a spreadsheet (a
/// leading `=`, `+`, `-` or `@` gets a `'`).
fn field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_are_quoted_and_never_formulas() {
        assert_eq!(super::field("ada"), "ada");
        assert_eq!(super::field("a,b"), "\"a,b\"");
        assert_eq!(super::field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::field("=cmd()"), "'=cmd()");
    }
}
