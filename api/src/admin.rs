//! One-off admin commands (12-factor, factor XII): `api users promote EMAIL`
//! and `api users demote EMAIL`.
//!
//! Guarantee: this is the only way to grant or take away the admin role — no
//! HTTP operation writes `users.role`. The commands run with the same
//! binary, configuration and code as the server, against the configured
//! database, and exit non-zero (naming the e-mail) when there is no such
//! user. The change applies to the user's existing sessions at once, since
//! the role is read on every authenticated request.

use crate::authz::Role;
use crate::db::{Db, DbError};
use crate::validation;

/// Why a role could not be set.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The argument is not a valid e-mail address.
    #[error("invalid e-mail address {email:?}: {reason}")]
    InvalidEmail {
        /// As given.
        email: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No user has this e-mail address.
    #[error("no user with e-mail address {0}")]
    NoSuchUser(String),
    /// The database failed.
    #[error(transparent)]
    Db(DbError),
}

/// Give the user with this e-mail address `role`; returns the user's id.
pub async fn set_role(db: &Db, email: &str, role: Role) -> Result<i64, AdminError> {
    let normalised = validation::email(email).map_err(|e| AdminError::InvalidEmail {
        email: email.to_owned(),
        reason: e.message,
    })?;
    match db.set_role(&normalised, role).await {
        Ok(id) => Ok(id),
        Err(DbError::NotFound) => Err(AdminError::NoSuchUser(normalised)),
        Err(e) => Err(AdminError::Db(e)),
    }
}
