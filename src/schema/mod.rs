//! The schema cache: which tables, views and columns of the exposed schemas
//! exist, with their types and whether row-level security is on.
//!
//! Pure data: the planner takes identifiers only from here, never from the
//! request. Loading it from PostgreSQL lives in `load`; `Handle` holds the
//! current one.

mod handle;
mod load;

pub use handle::{Fetched, Handle, Served};
pub use load::{RELOAD_CHANNEL, RELOAD_PAYLOAD, load, permissions, track_changes};

use std::collections::HashMap;

/// How a column's values are typed, compared and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// smallint, integer, bigint
    Integer,
    /// real, double precision
    Float,
    /// numeric / decimal
    Numeric,
    /// text, varchar, char, citext, name
    Text,
    Boolean,
    Uuid,
    Timestamptz,
    Timestamp,
    Date,
    /// json, jsonb: may be selected and grouped, not filtered or aggregated
    Json,
    /// anything else (arrays, enums, geometric, ...): may be counted only
    Other,
}

impl ColumnKind {
    /// Maps a PostgreSQL type name (`pg_type.typname`) to its kind.
    pub fn from_pg_type(typname: &str) -> Self {
        match typname {
            "int2" | "int4" | "int8" => Self::Integer,
            "float4" | "float8" => Self::Float,
            "numeric" => Self::Numeric,
            "text" | "varchar" | "bpchar" | "citext" | "name" => Self::Text,
            "bool" => Self::Boolean,
            "uuid" => Self::Uuid,
            "timestamptz" => Self::Timestamptz,
            "timestamp" => Self::Timestamp,
            "date" => Self::Date,
            "json" | "jsonb" => Self::Json,
            _ => Self::Other,
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(self, Self::Integer | Self::Float | Self::Numeric)
    }

    pub fn is_temporal(self) -> bool {
        matches!(self, Self::Timestamptz | Self::Timestamp | Self::Date)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `pg_type.typname`, e.g. `int4`, `timestamptz`.
    pub pg_type: String,
    pub kind: ColumnKind,
    /// May hold NULL (no NOT NULL constraint).
    pub nullable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    Table,
    View,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    /// The answer may differ between users of one role: row-level security
    /// is enabled on the table (`relrowsecurity`). Always true for a view,
    /// whose definition may read the caller (`auth.uid()`, RLS of
    /// `security_invoker` views).
    pub rls_enabled: bool,
    /// The tables whose writes can change what it returns: itself, or a
    /// view's base tables (through nested views). Empty when unknown (a
    /// materialized view, or a view over a foreign table).
    pub reads: Vec<(String, String)>,
    /// Writes to every table in `reads` are announced (the
    /// `widget_data_changed` trigger), so results read from it may be
    /// cached.
    pub change_tracked: bool,
    /// In ordinal order.
    pub columns: Vec<Column>,
    /// What each request role may do with it.
    pub grants: Grants,
    /// The column sets an `INSERT ... ON CONFLICT (...)` can name: those of
    /// the primary key and of every unique constraint or plain unique index
    /// (no expression, no predicate). Empty for views.
    pub unique_keys: Vec<UniqueKey>,
}

/// The columns of a primary key or unique constraint, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    pub columns: Vec<String>,
    pub primary: bool,
}

/// The request roles (`anon`, `authenticated`, `service_role`) holding
/// each privilege on a table (on any of its columns, for those privileges
/// that columns have): checked before a request's details are looked at,
/// so a role that may not read a table learns nothing of its columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub select: Vec<String>,
    pub insert: Vec<String>,
    pub update: Vec<String>,
    pub delete: Vec<String>,
}

/// What a request would do with a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
}

impl Grants {
    pub fn allows(&self, role: &str, privilege: Privilege) -> bool {
        match privilege {
            Privilege::Select => &self.select,
            Privilege::Insert => &self.insert,
            Privilege::Update => &self.update,
            Privilege::Delete => &self.delete,
        }
        .iter()
        .any(|r| r == role)
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The primary key's columns, if it has one.
    pub fn primary_key(&self) -> Option<&[String]> {
        self.unique_keys
            .iter()
            .find(|k| k.primary)
            .map(|k| k.columns.as_slice())
    }

    /// The unique key made of exactly `columns`, in any order.
    pub fn unique_key(&self, columns: &[String]) -> Option<&UniqueKey> {
        self.unique_keys.iter().find(|k| {
            k.columns.len() == columns.len() && columns.iter().all(|c| k.columns.contains(c))
        })
    }
}

/// Every table and view of the exposed schemas.
#[derive(Debug, Clone, Default)]
pub struct SchemaCache {
    /// In `EXPOSED_SCHEMAS` order; an unqualified table name is looked up in
    /// these in turn, like a `search_path`.
    schemas: Vec<String>,
    tables: HashMap<(String, String), Table>,
}

impl SchemaCache {
    pub fn new(schemas: Vec<String>, tables: impl IntoIterator<Item = Table>) -> Self {
        let tables = tables
            .into_iter()
            .map(|t| ((t.schema.clone(), t.name.clone()), t))
            .collect();
        Self { schemas, tables }
    }

    pub fn schemas(&self) -> &[String] {
        &self.schemas
    }

    /// Resolves `table` or `schema.table` against the exposed schemas.
    pub fn resolve(&self, reference: &str) -> Option<&Table> {
        match reference.split_once('.') {
            Some((schema, name)) => self.tables.get(&(schema.to_owned(), name.to_owned())),
            None => self
                .schemas
                .iter()
                .find_map(|s| self.tables.get(&(s.clone(), reference.to_owned()))),
        }
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}
