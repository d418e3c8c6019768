//! sea-orm entities: rows as the database holds them. They never cross the wire.

pub mod account_bootstrap;
pub mod api_tokens;
pub mod audit_events;
pub mod cluster_tokens;
pub mod clusters;
pub mod installation;
pub mod invites;
pub mod platform_settings;
pub mod sessions;
pub mod throttle_events;
pub mod user_identities;
pub mod user_limits;
pub mod users;
pub mod workshop_seats;
pub mod workshops;
