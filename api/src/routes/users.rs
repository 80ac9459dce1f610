//! Users CRUD.
//!
//! Guarantee: input is validated before it reaches the database (all field
//! errors are reported at once, as a 422 problem); listing uses keyset
//! pagination on `id`, so pages are stable under concurrent inserts and cost
//! O(limit) regardless of depth.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{forbidden, require_session};
use super::{json_object, AppState, JsonObjectBody};
use crate::db::User;
use crate::error::{ApiError, Problem};
use crate::request_log::current_request_id;
use crate::validation::{self, FieldError};

/// Default page size.
pub const DEFAULT_LIMIT: i64 = 100;
/// Maximum page size.
pub const MAX_LIMIT: i64 = 1000;

/// Query parameters of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1–1000 (default 100).
    #[param(value_type = i64, required = false, minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// Keyset cursor: return users with `id` greater than this (the previous
    /// page's `next_after`); default 0.
    #[param(value_type = i64, required = false, minimum = 0, default = 0)]
    pub after: Option<i64>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Users in ascending id order.
    pub items: Vec<User>,
    /// Cursor for the next page, or null if this is the last page.
    pub next_after: Option<i64>,
}

/// Body of `POST /users`.
#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    /// Display name.
    #[schema(schema_with = required_name_schema, required = true)]
    pub name: Option<String>,
    /// E-mail address (unique).
    #[schema(schema_with = required_email_schema, required = true)]
    pub email: Option<String>,
    /// Optional password for `POST /sessions`.
    #[schema(schema_with = optional_password_schema)]
    pub password: Option<String>,
}

/// Schema of a required name (also used by import records).
pub fn required_name_schema() -> utoipa::openapi::Schema {
    validation::name_schema(false)
}

/// Schema of a required e-mail address (also used by import records).
pub fn required_email_schema() -> utoipa::openapi::Schema {
    validation::email_schema(false)
}

/// Schema of an optional password (also used by import records).
pub fn optional_password_schema() -> utoipa::openapi::Schema {
    validation::password_schema(true)
}

fn name_or_null() -> utoipa::openapi::Schema {
    validation::name_schema(true)
}

fn email_or_null() -> utoipa::openapi::Schema {
    validation::email_schema(true)
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Body of `PATCH /users/{id}`; absent (or null) fields are left unchanged.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatch {
    /// New name.
    #[schema(schema_with = name_or_null)]
    pub name: Option<String>,
    /// New e-mail address.
    #[schema(schema_with = email_or_null)]
    pub email: Option<String>,
}

fn collect<T>(r: Result<T, FieldError>, errors: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e)).ok()
}

/// List users, paginated.
#[utoipa::path(get, path = "/users", tag = "users", params(ListParams),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "A query parameter is not an integer", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`limit` or `after` out of range", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(params) = params?;
    let mut errors = Vec::new();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError::new(
            "limit",
            "range",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let after = params.after.unwrap_or(0);
    if after < 0 {
        errors.push(FieldError::new("after", "range", "must be >= 0"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Fetch one extra row to learn whether another page exists.
    let mut items = state.db.list_users(after, limit + 1).await?;
    let next_after = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|u| u.id)
    } else {
        None
    };
    Ok(Json(UserPage { items, next_after }))
}

/// Fetch one user.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 400, description = "The id is not a 64-bit integer", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.db.get_user(id).await?))
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = User,
            headers(("Location" = String, description = "`/users/{id}` of the new user")),
            links(
                ("GetUser" = (operation_id = "get_user", parameters(("id" = "$response.body#/id")),
                    description = "The new user")),
                ("UpdateUser" = (operation_id = "update_user", parameters(("id" = "$response.body#/id")),
                    description = "Change the new user")),
                ("DeleteUser" = (operation_id = "delete_user", parameters(("id" = "$response.body#/id")),
                    description = "Delete the new user")),
            )),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "E-mail address already used", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or missing fields, wrong JSON types", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    body: JsonObjectBody,
) -> Result<Response, ApiError> {
    let body: NewUser = json_object(body)?;
    let mut errors = Vec::new();
    let name = match body.name {
        Some(n) => collect(validation::name(&n), &mut errors),
        None => {
            errors.push(FieldError::new("name", "required", "is required"));
            None
        }
    };
    let email = match body.email {
        Some(e) => collect(validation::email(&e), &mut errors),
        None => {
            errors.push(FieldError::new("email", "required", "is required"));
            None
        }
    };
    if let Some(p) = &body.password {
        collect(validation::password(p), &mut errors);
    }
    let (Some(name), Some(email), true) = (name, email, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let hash = match body.password {
        Some(p) => Some(crate::sessions::hash_password(p).await?),
        None => None,
    };
    let user = state.db.create_user(&name, &email, hash.as_deref()).await?;
    let location = format!("/users/{}", user.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(user),
    )
        .into_response())
}

/// Change a user's name and/or e-mail: your own account, or any as an admin.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UserPatch,
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 200, description = "The updated user", body = User,
            links(
                ("GetUser" = (operation_id = "get_user", parameters(("id" = "$response.body#/id")),
                    description = "The changed user")),
                ("DeleteUser" = (operation_id = "delete_user", parameters(("id" = "$response.body#/id")),
                    description = "Delete the changed user")),
            )),
        (status = 400, description = "Malformed JSON, or the id is not a 64-bit integer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or revoked bearer token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Not your account, and you are not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user (admins only; others get 403)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "E-mail address already used", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body larger than 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Body is not `application/json`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, wrong JSON types", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
    body: JsonObjectBody,
) -> Result<Json<User>, ApiError> {
    let caller = require_session(&state, &headers).await?;
    let Path(id) = id?;
    if !caller.may_change_user(id) {
        return Err(forbidden("change another user's account"));
    }
    let body: UserPatch = json_object(body)?;
    let mut errors = Vec::new();
    let name = body
        .name
        .and_then(|n| collect(validation::name(&n), &mut errors));
    let email = body
        .email
        .and_then(|e| collect(validation::email(&e), &mut errors));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Ok(Json(
        state
            .db
            .update_user(id, name.as_deref(), email.as_deref())
            .await?,
    ))
}

/// Delete a user and revoke all of their sessions: your own account, or any
/// as an admin.
#[utoipa::path(delete, path = "/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted, and every session of the user revoked"),
        (status = 400, description = "The id is not a 64-bit integer", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or revoked bearer token", body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 403, description = "Not your account, and you are not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user (admins only; others get 403)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database or session store unavailable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let caller = require_session(&state, &headers).await?;
    let Path(id) = id?;
    if !caller.may_change_user(id) {
        return Err(forbidden("delete another user's account"));
    }
    // Redis first: if it is down nothing is deleted (503, retry). The
    // database sessions go in the same transaction as the user row.
    let revoked = state.sessions.revoke_user(id).await?;
    state.db.delete_user(id).await?;
    tracing::info!(
        user_id = id,
        by = caller.user_id,
        sessions_revoked = revoked,
        request_id = %current_request_id(),
        "user deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
