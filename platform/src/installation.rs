//! This installation of KRaft, as its database remembers it: an id that marks every host object
//! KRaft creates (so the orphan sweep only ever takes its own), and a secret for signing the
//! short-lived cookies that carry a form's outcome to the next page.

use chrono::Utc;
use rand::RngCore;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait};
use uuid::Uuid;

use crate::db::entities::installation;

/// The id and signing secret of this installation. The secret never prints.
#[derive(Clone)]
pub struct Installation {
    pub id: Uuid,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Installation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Installation").field("id", &self.id).finish_non_exhaustive()
    }
}

impl Installation {
    /// Reads the installation's row, creating it on the first start. Two replicas starting at
    /// once insert the same primary key: one wins and both read the winner.
    pub async fn load_or_create(db: &DatabaseConnection) -> Result<Self, DbErr> {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        installation::Entity::insert(installation::ActiveModel {
            id: Set(1),
            installation_id: Set(Uuid::new_v4()),
            secret: Set(hex::encode(secret)),
            setup_token_hash: Set(None),
            created_at: Set(Utc::now()),
        })
        .on_conflict(OnConflict::column(installation::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
        let row = installation::Entity::find_by_id(1)
            .one(db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("installation".into()))?;
        let secret = hex::decode(&row.secret)
            .map_err(|_| DbErr::Custom("the installation secret is not hex".into()))?;
        Ok(Self { id: row.installation_id, secret })
    }

    /// The key for signing short-lived cookies.
    pub fn signing_key(&self) -> &[u8] {
        &self.secret
    }
}
