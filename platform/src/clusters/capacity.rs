//! The admin's capacity overview: the host's reading with each cluster namespace named by its
//! owner (see [`crate::host::capacity`]).

use std::collections::HashMap;

use sea_orm::EntityTrait;

use super::Clusters;
use crate::db::entities::{clusters, users};
use crate::host::capacity::{self, CapacityOverview, Held};

/// Clusters of a workshop's pool wait for an attendee: nobody's yet.
const POOL: &str = "(workshop pools)";

impl Clusters {
    /// The host's capacity and what every tenant holds, read now.
    pub async fn capacity(&self) -> CapacityOverview {
        let reading = capacity::read(&self.host).await;
        let owners = self.namespace_owners().await;
        match (reading, owners) {
            (Ok(reading), Ok(owners)) => capacity::overview(reading, &owners),
            (Err(error), _) => failed(error.to_string()),
            (_, Err(error)) => failed(error.to_string()),
        }
    }

    /// `host namespace → owner's username` of every cluster.
    async fn namespace_owners(&self) -> Result<HashMap<String, String>, sea_orm::DbErr> {
        let names: HashMap<_, _> = users::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect();
        Ok(clusters::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|row| {
                let owner = row.owner_id.and_then(|id| names.get(&id).cloned());
                (row.host_namespace, owner.unwrap_or_else(|| POOL.to_owned()))
            })
            .collect())
    }
}

fn failed(error: String) -> CapacityOverview {
    CapacityOverview {
        at: chrono::Utc::now(),
        nodes: Vec::new(),
        allocatable_cpu_millicores: 0.0,
        allocatable_memory_bytes: 0.0,
        held: Held::default(),
        tenants: Vec::new(),
        error: Some(error),
    }
}
