//! Authorization: who may do what.
//!
//! Rules (object-level, checked in the handlers after authentication):
//!
//! * Reading users (`GET /users`, `GET /users/{id}`) and signing up
//!   (`POST /users`) need no session.
//! * `PATCH /users/{id}` and `DELETE /users/{id}`: the account's owner, or an
//!   admin. Anyone else gets 403 — also for ids that do not exist, so a
//!   non-admin cannot probe which ids exist.
//! * `POST /users/import` and `GET /jobs/{id}` (bulk creation of accounts):
//!   admins only.
//!
//! The role is read from the `users` row on every authenticated request
//! (never cached in the session), so a promotion or demotion takes effect at
//! once and a deleted user's leftover token authorizes nothing. The admin role
//! is granted only by the one-off admin process `api users promote EMAIL`
//! (12-factor XII); no HTTP operation can change a role.

use std::fmt;

/// A user's role (`users.role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Default for every account: may change only itself.
    User,
    /// May change and delete any account, and import users.
    Admin,
}

impl Role {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Parse the stored form; anything unknown is the least privileged role.
    pub fn from_db(s: &str) -> Self {
        if s == "admin" {
            Role::Admin
        } else {
            Role::User
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The caller's user id.
    pub user_id: i64,
    /// The caller's current role.
    pub role: Role,
}

impl Principal {
    /// May this caller change or delete the account `user_id`?
    pub fn may_change_user(&self, user_id: i64) -> bool {
        self.role == Role::Admin || self.user_id == user_id
    }

    /// May this caller run admin-only operations (imports, jobs)?
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_and_admins_may_change_a_user() {
        let user = Principal {
            user_id: 7,
            role: Role::User,
        };
        let admin = Principal {
            user_id: 1,
            role: Role::Admin,
        };
        assert!(user.may_change_user(7));
        assert!(!user.may_change_user(8));
        assert!(admin.may_change_user(7));
        assert!(admin.may_change_user(1));
        assert!(!user.is_admin() && admin.is_admin());
        assert_eq!(Role::from_db("admin"), Role::Admin);
        assert_eq!(Role::from_db("superuser"), Role::User);
    }
}
