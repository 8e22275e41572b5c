//! Entity kinds that plug into every store.
//!
//! A kind is its model, one [`Mapped`] impl that says how it is stored (the
//! table, the key column, the indexed columns and which of them are unique)
//! and the marker [`Record`],
//! its migration in `rpa-store-sql`, and its conformance tests. Stores keep
//! a record as a [`Row`]: the key, the version, the indexed [`Cell`]s and the
//! JSON of the whole value. Nothing else in the engine or the stores names
//! the kind: a commit writes it with [`Write::Record`](crate::store::Write),
//! and [`Records`] reads it back typed.
//!
//! ```
//! use rpa_core::record::{Cell, Column, Kind, Mapped, Record};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Note { id: i64, version: u64, topic: String, text: String }
//!
//! impl Mapped for Note {
//!     const KIND: &'static Kind = &Kind {
//!         table: "rpa_notes",
//!         name: "note",
//!         key: Column::int("id"),
//!         sealed: false,
//!         cached: false,
//!         columns: &[Column::text("topic")],
//!     };
//!     fn key(&self) -> Cell { Cell::Int(self.id) }
//!     fn version(&self) -> u64 { self.version }
//!     fn cells(&self) -> Vec<Cell> { vec![Cell::from(self.topic.as_str())] }
//! }
//! impl Record for Note {}
//! ```
//!
//! Users and roles are record kinds kept in the read cache
//! ([`Kind::cached`]). Four kinds feed derived indexes that stores keep
//! beside their rows, so they are [`Mapped`] (their row mapping is theirs,
//! in `model.rs`, and the SQL stores write them from it like any kind) but
//! have typed writes ([`Write`](crate::store::Write)'s other variants) that
//! the in-memory indexes are maintained from: processes (counters checked
//! against limits as stored), jobs (the dispatch and deadline indexes),
//! queue items (references unique per process) and robots (the idle and
//! silence indexes). Sessions (expiry deadlines), vendors (a secret sealed
//! field by field) and the append-only streams of run logs and recordings
//! keep writes of their own too.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StoreError;
use crate::store::StoreResult;

/// The value of a key or an indexed column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cell {
    /// SQL `NULL`: never equal to another for uniqueness.
    Null,
    /// `BIGINT`.
    Int(i64),
    /// `TEXT`.
    Text(String),
}

impl From<i64> for Cell {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// The SQL type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `BIGINT`.
    Int,
    /// `TEXT`.
    Text,
}

/// A key or indexed column of a kind's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its SQL name.
    pub name: &'static str,
    /// Its SQL type.
    pub ty: ColumnType,
    /// When set, no two rows share a non-null value; a commit that would
    /// fails with [`StoreError::Duplicate`] of this text (e.g. "source message id").
    pub unique: Option<&'static str>,
    /// A `TEXT` column whose words a full-text index holds (see
    /// [`RecordStore::search`]): SQLite FTS5, PostgreSQL `tsvector`.
    pub full_text: bool,
    /// Set when the row is made and never changed after (a job's key,
    /// process and creation time): a store's update leaves it out, so the
    /// indexes over it are not rewritten with every change of the row.
    pub fixed: bool,
}

impl Column {
    /// A `BIGINT` column.
    pub const fn int(name: &'static str) -> Column {
        Column {
            name,
            ty: ColumnType::Int,
            unique: None,
            full_text: false,
            fixed: false,
        }
    }

    /// A `TEXT` column.
    pub const fn text(name: &'static str) -> Column {
        Column {
            name,
            ty: ColumnType::Text,
            unique: None,
            full_text: false,
            fixed: false,
        }
    }

    /// The same column, searched by words (its kind's migration creates the
    /// index: on SQLite the FTS5 table `<table>_fts` over it, on PostgreSQL
    /// the generated `tsvector` column `<column>_tsv`).
    pub const fn full_text(self) -> Column {
        Column {
            full_text: true,
            ..self
        }
    }

    /// The same column, set when the row is made and never changed (see [`Column::fixed`]).
    pub const fn fixed(self) -> Column {
        Column { fixed: true, ..self }
    }

    /// The same column, unique; `what` names it in the duplicate error.
    pub const fn unique(self, what: &'static str) -> Column {
        Column {
            unique: Some(what),
            ..self
        }
    }
}

/// Where and how a kind is stored: its row mapping, in one place.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    /// The SQL table (created by the kind's migration).
    pub table: &'static str,
    /// The kind's name in errors ("listener request").
    pub name: &'static str,
    /// The key column.
    pub key: Column,
    /// Whether a store that keeps rows at rest seals [`Row::data`] with its
    /// secret key (the key and indexed columns stay readable): for kinds
    /// that hold secrets, such as credential assets.
    pub sealed: bool,
    /// Whether a store's read cache keeps every row of the kind in memory
    /// (see [`crate::ReadCache`]): for small kinds read on every request,
    /// such as users and roles. A cached kind is read from memory; its rows
    /// reach the cache as they are committed (and, on a database that
    /// several nodes write, from the other nodes' change notices), and a
    /// cache loads a kind's rows the first time it is asked for one. A
    /// sealed kind is never cached.
    pub cached: bool,
    /// The indexed columns, in the order of [`Record::cells`].
    pub columns: &'static [Column],
}

impl Kind {
    /// The position of the indexed column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The position of its [full-text](Column::full_text) column, if any.
    pub fn full_text(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.full_text)
    }
}

/// Most words a search uses.
pub const MAX_SEARCH_WORDS: usize = 8;

/// The words of a search: runs of letters and digits, lower-cased, at
/// most [`MAX_SEARCH_WORDS`] of at most 64 characters. Nothing else of the
/// query reaches a store, so no query syntax can be injected.
pub fn search_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.chars().take(64).collect::<String>().to_lowercase())
        .take(MAX_SEARCH_WORDS)
        .collect()
}

/// Whether `text` matches every one of `words` (each the start of one of
/// its words), and how many of its words they start: the in-memory
/// stores' search and rank.
pub fn text_matches(text: &str, words: &[String]) -> Option<usize> {
    let tokens = search_words_all(text);
    let mut hits = 0;
    for w in words {
        let n = tokens.iter().filter(|t| t.starts_with(w.as_str())).count();
        if n == 0 {
            return None;
        }
        hits += n;
    }
    Some(hits)
}

fn search_words_all(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// How an entity kind is stored: its table, key, version and indexed
/// columns ([`Kind`]), and how a value gives them. Every stored kind has
/// one; a SQL store writes any kind's rows from it alone.
pub trait Mapped: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// Its row mapping.
    const KIND: &'static Kind;
    /// Its key.
    fn key(&self) -> Cell;
    /// Its version: 1 when first written, one more at each write.
    fn version(&self) -> u64;
    /// The values of [`Kind::columns`], in order.
    fn cells(&self) -> Vec<Cell>;
}

/// A kind that plugs into every store: written with
/// [`Write::Record`](crate::store::Write) and read through [`Records`],
/// with nothing in any store naming it. (The kinds whose rows feed derived
/// indexes are [`Mapped`] but not `Record`: they have typed writes, see the
/// module docs.)
pub trait Record: Mapped {}

/// A record as the stores keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Its kind.
    pub kind: &'static Kind,
    /// Its key.
    pub key: Cell,
    /// Its version.
    pub version: u64,
    /// Its indexed columns, in the order of [`Kind::columns`].
    pub cells: Vec<Cell>,
    /// The whole record, as JSON.
    pub data: Arc<str>,
}

impl Row {
    /// The row of `r`.
    pub fn of<R: Mapped>(r: &R) -> StoreResult<Row> {
        let data =
            serde_json::to_string(r).map_err(|e| StoreError::Backend(format!("encode {}: {e}", R::KIND.name)))?;
        let cells = r.cells();
        debug_assert_eq!(cells.len(), R::KIND.columns.len(), "cells of {}", R::KIND.name);
        Ok(Row {
            kind: R::KIND,
            key: r.key(),
            version: r.version(),
            cells,
            data: data.into(),
        })
    }

    /// The value this row holds.
    pub fn decode<R: Mapped>(&self) -> StoreResult<R> {
        decode(self.kind, &self.data)
    }

    /// The value of the indexed column `name`.
    pub fn cell(&self, name: &str) -> Option<&Cell> {
        self.kind.column(name).and_then(|i| self.cells.get(i))
    }
}

/// A record of `kind` from its JSON.
pub fn decode<R: Mapped>(kind: &Kind, data: &str) -> StoreResult<R> {
    serde_json::from_str(data).map_err(|e| StoreError::Backend(format!("decode {}: {e}", kind.name)))
}

/// Which rows of a kind to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Select {
    /// Only rows whose indexed column equals the value (`Null`: is null).
    pub only: Option<(&'static str, Cell)>,
    /// Only rows with a key greater than this (the previous page's last).
    pub after: Option<Cell>,
    /// At most this many.
    pub limit: usize,
    /// Keys, versions and indexed columns only: a store may leave
    /// [`Row::data`] empty (such a row is not decoded).
    pub bare: bool,
}

impl Select {
    /// Every row, up to `limit`.
    pub fn all(limit: usize) -> Select {
        Select {
            only: None,
            after: None,
            limit,
            bare: false,
        }
    }

    /// The same selection without the rows' data (see [`Select::bare`]).
    pub fn bare(self) -> Select {
        Select { bare: true, ..self }
    }

    /// Rows whose `column` equals `value`, up to `limit`.
    pub fn only(column: &'static str, value: impl Into<Cell>, limit: usize) -> Select {
        Select {
            only: Some((column, value.into())),
            after: None,
            limit,
            bare: false,
        }
    }

    /// The same selection after the key `after`.
    pub fn after(self, after: Cell) -> Select {
        Select {
            after: Some(after),
            ..self
        }
    }

    /// Refuses a selection on a column `kind` does not index.
    pub fn check(&self, kind: &Kind) -> StoreResult<()> {
        match &self.only {
            Some((col, _)) if kind.column(col).is_none() => Err(StoreError::Backend(format!(
                "{} has no indexed column {col}",
                kind.name
            ))),
            _ => Ok(()),
        }
    }

    /// Whether `row` is selected (ignoring the limit).
    pub fn matches(&self, row: &Row) -> bool {
        let only = match &self.only {
            Some((col, v)) => row.cell(col) == Some(v),
            None => true,
        };
        only && self.after.as_ref().is_none_or(|a| &row.key > a)
    }
}

/// Reads of record kinds: the capability a store offers for every kind.
pub trait RecordStore: Send + Sync + 'static {
    /// The row of `kind` with key `key`, as committed (always current).
    fn record(&self, kind: &'static Kind, key: &Cell) -> impl Future<Output = StoreResult<Option<Row>>> + Send;

    /// The rows of `kind` that `select` picks, by key.
    fn records(&self, kind: &'static Kind, select: &Select) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;

    /// The rows of `kind` whose [full-text](Column::full_text) column holds
    /// every one of `words` ([`search_words`]; each the start of a word),
    /// best match first, at most `select.limit`, among those `select.only`
    /// picks (`select.after` is not used). No words: none.
    fn search(
        &self,
        kind: &'static Kind,
        words: &[String],
        select: &Select,
    ) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;
}

/// Typed reads over any [`RecordStore`].
pub trait Records: RecordStore {
    /// The record with key `key`.
    fn get<R: Record>(&self, key: impl Into<Cell> + Send) -> impl Future<Output = StoreResult<Option<R>>> + Send {
        let key = key.into();
        async move {
            match self.record(R::KIND, &key).await? {
                Some(row) => row.decode().map(Some),
                None => Ok(None),
            }
        }
    }

    /// The records `select` picks, by key.
    fn list<R: Record>(&self, select: Select) -> impl Future<Output = StoreResult<Vec<R>>> + Send {
        async move { self.records(R::KIND, &select).await?.iter().map(Row::decode).collect() }
    }

    /// The records whose full-text column matches `words`, best first (see [`RecordStore::search`]).
    fn search_for<R: Record>(
        &self,
        words: Vec<String>,
        select: Select,
    ) -> impl Future<Output = StoreResult<Vec<R>>> + Send {
        async move {
            self.search(R::KIND, &words, &select)
                .await?
                .iter()
                .map(Row::decode)
                .collect()
        }
    }

    /// The one record whose unique column `column` is `value`.
    fn find<R: Record>(
        &self,
        column: &'static str,
        value: impl Into<Cell> + Send,
    ) -> impl Future<Output = StoreResult<Option<R>>> + Send {
        let select = Select::only(column, value, 1);
        async move { Ok(self.list(select).await?.into_iter().next()) }
    }
}

impl<S: RecordStore + ?Sized> Records for S {}

/// The duplicate error of the unique column of one of `kinds` that `what`
/// (a database's message or constraint name) names as `table.column` or
/// `table_column`.
pub fn duplicate_in<'k>(what: &str, kinds: impl IntoIterator<Item = &'k Kind>) -> Option<StoreError> {
    kinds.into_iter().find_map(|k| {
        k.columns.iter().find_map(|c| {
            let dotted = format!("{}.{}", k.table, c.name);
            let named = format!("{}_{}", k.table, c.name);
            c.unique
                .filter(|_| what.contains(&dotted) || what.contains(&named))
                .map(StoreError::Duplicate)
        })
    })
}
