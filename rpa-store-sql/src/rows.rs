//! Rows and errors: database errors in the store's words, JSON columns
//! decoded, values bound.

use super::*;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        // PostgreSQL serialization failure / deadlock; SQLite busy or locked.
        if code == "40001" || code == "40P01" || code == "5" || code == "6" || code == "517" {
            return StoreError::Conflict;
        }
    }
    StoreError::Backend(e.to_string())
}

/// A unique violation: which key, in the memory store's words (or a conflict for primary keys).
pub(crate) fn unique_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        let what = format!("{} {}", db.constraint().unwrap_or(""), db.message());
        return plan::duplicate(&what);
    }
    backend_err(e)
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Backend(format!("decode: {e}")))
}

pub(crate) fn data<T: DeserializeOwned>(row: &AnyRow) -> Result<T, StoreError> {
    from_json(&row.try_get::<String, _>("data").map_err(backend_err)?)
}

pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

pub(crate) fn bind(q: AnyQuery<'_>, v: Val) -> AnyQuery<'_> {
    match v {
        Val::I(x) => q.bind(x),
        Val::NI(x) => q.bind(x),
        Val::S(x) => q.bind(x),
        Val::NS(x) => q.bind(x),
    }
}
