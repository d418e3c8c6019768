//! Workshops: the organizer's list, create form and board, and the attendee's join page. The
//! server functions and the types they send to the browser live in `api`.

pub mod api;
pub mod pages;

/// Where a workshop's join link (its token) or code leads.
pub fn join_path(key: &str) -> String {
    let key: String = key.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
    format!("/join/{key}")
}
