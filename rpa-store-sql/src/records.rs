//! Record kinds (see [`rpa_core::record`]): their rows written by the one
//! versioned `put` of [`crate::plan`], read straight from the database
//! with SQL made from each kind's row mapping, except the
//! [cached](Kind::cached) kinds, which the read cache answers for once it
//! has loaded them (on PostgreSQL a miss still asks the database, as
//! other nodes may have just written the row). Table and column names come only from the kinds'
//! `&'static` mappings, never from a caller. The data of a
//! [`Kind::sealed`] kind is sealed at rest as vendor secrets are.

use rpa_core::record::{Cell, ColumnType, Kind, RecordStore, Row as RecordRow, Select};

use super::*;
use crate::read::{Reader, Sql};
use crate::rows::limit;

/// A cell as a bound value of a column of type `ty`.
pub(crate) fn val(ty: ColumnType, c: &Cell) -> Val {
    into_val(ty, c.clone())
}

/// [`val`], taking the cell.
pub(crate) fn into_val(ty: ColumnType, c: Cell) -> Val {
    match (c, ty) {
        (Cell::Int(n), _) => Val::I(n),
        (Cell::Text(s), _) => Val::S(s),
        (Cell::Null, ColumnType::Int) => Val::NI(None),
        (Cell::Null, ColumnType::Text) => Val::NS(None),
    }
}

/// `SELECT key, columns.., version, data FROM table` (`''` for the data
/// of a bare selection).
fn select_sql(kind: &Kind, bare: bool) -> String {
    format!("SELECT {} FROM {}", columns_sql(kind, bare), kind.table)
}

/// The columns [`select_sql`] reads.
fn columns_sql(kind: &Kind, bare: bool) -> String {
    let cols: Vec<&str> = std::iter::once(kind.key.name)
        .chain(kind.columns.iter().map(|c| c.name))
        .chain(["version", if bare { "'' AS data" } else { "data" }])
        .collect();
    cols.join(", ")
}

/// The types of the columns [`select_sql`] reads.
fn types(kind: &Kind) -> Vec<ColumnType> {
    std::iter::once(kind.key.ty)
        .chain(kind.columns.iter().map(|c| c.ty))
        .chain([ColumnType::Int, ColumnType::Text])
        .collect()
}

/// The rows of a [`select_sql`] statement.
async fn fetch_rows(
    db: &Reader,
    kind: &'static Kind,
    sql: impl Into<Sql>,
    args: Vec<Val>,
    key: Option<&[u8; 32]>,
) -> StoreResult<Vec<RecordRow>> {
    let rows = db.rows(sql, args, types(kind)).await?;
    rows.into_iter().map(|r| decode(kind, r, key)).collect()
}

fn decode(kind: &'static Kind, row: Vec<Cell>, key: Option<&[u8; 32]>) -> StoreResult<RecordRow> {
    let malformed = || StoreError::Backend(format!("decode: a malformed row of {}", kind.table));
    let mut cells = row.into_iter();
    let row_key = cells.next().ok_or_else(malformed)?;
    let columns: Vec<Cell> = cells.by_ref().take(kind.columns.len()).collect();
    let (Some(Cell::Int(version)), Some(Cell::Text(mut data))) = (cells.next(), cells.next()) else {
        return Err(malformed());
    };
    if kind.sealed && !data.is_empty() {
        data = crate::sealing::unseal(key, &data)?;
    }
    Ok(RecordRow {
        kind,
        key: row_key,
        version: u64::try_from(version).map_err(|_| StoreError::Backend("negative version".into()))?,
        cells: columns,
        data: data.into(),
    })
}

/// The key's ordering: PostgreSQL text compares bytes as the other stores do.
fn order(kind: &Kind, backend: Backend) -> String {
    match (kind.key.ty, backend) {
        (ColumnType::Text, Backend::Postgres) => format!("{} COLLATE \"C\"", kind.key.name),
        _ => kind.key.name.to_owned(),
    }
}

/// The row of `kind` with key `key`, as the database holds it.
pub(crate) async fn read_one(
    db: &Reader,
    key_of_seal: Option<&[u8; 32]>,
    kind: &'static Kind,
    key: &Cell,
) -> StoreResult<Option<RecordRow>> {
    let sql = format!("{} WHERE {} = $1", select_sql(kind, false), kind.key.name);
    let rows = fetch_rows(db, kind, sql, vec![val(kind.key.ty, key)], key_of_seal).await?;
    Ok(rows.into_iter().next())
}

/// Every row of `kind`, as the database holds them.
pub(crate) async fn read_all(
    db: &Reader,
    key_of_seal: Option<&[u8; 32]>,
    kind: &'static Kind,
) -> StoreResult<Vec<RecordRow>> {
    let sql = format!("{} ORDER BY {}", select_sql(kind, false), kind.key.name);
    fetch_rows(db, kind, sql, Vec::new(), key_of_seal).await
}

impl SqlStore {
    /// The read cache, once it holds the cached kind `kind` (loaded here
    /// the first time); `None` for kinds that are not cached.
    async fn cache_of(&self, kind: &'static Kind) -> StoreResult<Option<&ReadCache>> {
        let Some(m) = self.inner.mirror.as_ref().filter(|_| kind.cached && !kind.sealed) else {
            return Ok(None);
        };
        if !m.holds(kind) {
            // Commits that land meanwhile reach the cache too; it keeps the newer version.
            m.load(
                kind,
                read_all(&self.inner.read, self.inner.secret_key.as_ref(), kind).await?,
            );
        }
        Ok(Some(m))
    }
}

impl RecordStore for SqlStore {
    async fn record(&self, kind: &'static Kind, key: &Cell) -> StoreResult<Option<RecordRow>> {
        let cache = self.cache_of(kind).await?;
        if let Some(m) = cache {
            let hit = m.record(kind, key).await?;
            if hit.is_some() || self.inner.backend == Backend::Sqlite {
                return Ok(hit);
            }
        }
        let found = read_one(&self.inner.read, self.inner.secret_key.as_ref(), kind, key).await?;
        if let (Some(m), Some(row)) = (cache, &found) {
            m.refresh([Write::Record(row.clone())]);
        }
        Ok(found)
    }

    async fn records(&self, kind: &'static Kind, select: &Select) -> StoreResult<Vec<RecordRow>> {
        select.check(kind)?;
        if let Some(m) = self.cache_of(kind).await? {
            let hit = m.records(kind, select).await?;
            // A lookup by a unique column that misses may name a row another
            // node wrote a moment ago: PostgreSQL asks the database.
            let lookup = select
                .only
                .as_ref()
                .and_then(|(c, _)| kind.column(c))
                .is_some_and(|i| kind.columns[i].unique.is_some());
            if !(hit.is_empty() && lookup && self.inner.backend == Backend::Postgres) {
                return Ok(hit);
            }
            let found = self.select_rows(kind, select).await?;
            m.refresh(found.iter().cloned().map(Write::Record));
            return Ok(found);
        }
        self.select_rows(kind, select).await
    }

    async fn search(&self, kind: &'static Kind, words: &[String], select: &Select) -> StoreResult<Vec<RecordRow>> {
        select.check(kind)?;
        let Some(column) = kind.full_text().map(|i| kind.columns[i].name) else {
            return Err(StoreError::Backend(format!("{} has no full-text column", kind.name)));
        };
        if words.is_empty() {
            return Ok(Vec::new());
        }
        // The words are letters and digits only (`search_words`): quoted or
        // suffixed here, they cannot be read as query syntax.
        let table = kind.table;
        let (query, matched, best) = match self.inner.backend {
            Backend::Sqlite => (
                words.iter().map(|w| format!("\"{w}\"*")).collect::<Vec<_>>().join(" "),
                format!(
                    "SELECT {table}.*, {table}_fts.rank AS search_rank FROM {table} \
                     JOIN {table}_fts ON {table}_fts.rowid = {table}.rowid WHERE {table}_fts MATCH $1"
                ),
                "search_rank",
            ),
            Backend::Postgres => (
                words.iter().map(|w| format!("{w}:*")).collect::<Vec<_>>().join(" & "),
                format!(
                    "SELECT *, ts_rank({column}_tsv, to_tsquery('simple', $1)) AS search_rank FROM {table} \
                     WHERE {column}_tsv @@ to_tsquery('simple', $1)"
                ),
                "search_rank DESC",
            ),
        };
        let mut args = vec![Val::S(query)];
        let mut sql = format!("SELECT {} FROM ({matched}) AS m", columns_sql(kind, select.bare));
        if let Some((name, value)) = &select.only {
            if *value == Cell::Null {
                sql.push_str(&format!(" WHERE {name} IS NULL"));
            } else {
                let ty = kind
                    .columns
                    .iter()
                    .find(|c| c.name == *name)
                    .map_or(ColumnType::Text, |c| c.ty);
                args.push(val(ty, value));
                sql.push_str(&format!(" WHERE {name} = $2"));
            }
        }
        sql.push_str(&format!(
            " ORDER BY {best}, {} LIMIT {}",
            order(kind, self.inner.backend),
            limit(select.limit)
        ));
        fetch_rows(&self.inner.read, kind, sql, args, self.inner.secret_key.as_ref()).await
    }
}

impl SqlStore {
    /// The rows of `kind` that `select` picks, from the database.
    async fn select_rows(&self, kind: &'static Kind, select: &Select) -> StoreResult<Vec<RecordRow>> {
        let mut sql = select_sql(kind, select.bare);
        let mut args = Vec::new();
        let mut clauses = Vec::new();
        if let Some((name, value)) = &select.only {
            if *value == Cell::Null {
                clauses.push(format!("{name} IS NULL"));
            } else {
                let ty = kind
                    .columns
                    .iter()
                    .find(|c| c.name == *name)
                    .map_or(ColumnType::Text, |c| c.ty);
                args.push(val(ty, value));
                clauses.push(format!("{name} = ${}", args.len()));
            }
        }
        if let Some(after) = &select.after {
            args.push(val(kind.key.ty, after));
            clauses.push(format!("{} > ${}", order(kind, self.inner.backend), args.len()));
        }
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(&format!(
            " ORDER BY {} LIMIT {}",
            order(kind, self.inner.backend),
            limit(select.limit)
        ));
        fetch_rows(&self.inner.read, kind, sql, args, self.inner.secret_key.as_ref()).await
    }
}
