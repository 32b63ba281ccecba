//! The dashboard tables' columns, written once: name, type, nullability,
//! whether the database fills a default, which writes may set them, and
//! what the document says of them. Every shape `/rest/v1` documents (row,
//! insert, update, filters, `select`, `order`) is built from these lists
//! (`schema.rs`), and a database test (`tests/it/rest_doc.rs`) holds them
//! to the live schema. Pure data: no utoipa, no I/O.

/// One dashboard table of the `app` schema, as documented.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The name clients use, as in [`crate::rest::TABLES`].
    pub name: &'static str,
    /// The columns, in the table's order.
    pub columns: &'static [Column],
    /// The descriptions of the row, insert and update shapes.
    pub row_doc: Option<&'static str>,
    pub insert_doc: Option<&'static str>,
    pub update_doc: Option<&'static str>,
    /// Rows read carry `bundle` (computed, not a column): the widget bundle
    /// version their `config.bundle` names, with its served URL and
    /// integrity, when the caller may load it.
    pub bundle_link: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub nullable: bool,
    /// The database fills it when an insert leaves it out.
    pub has_default: bool,
    pub write: Write,
    /// Described on the row.
    pub doc: Option<&'static str>,
    /// Described on the insert.
    pub insert_doc: Option<&'static str>,
    /// The least value a write may set (a CHECK in the table).
    pub minimum: Option<i64>,
}

/// Which writes may set a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// None: the database (or the caller's id) fills it.
    Never,
    OnInsert,
    OnInsertAndUpdate,
}

/// A column's type: how PostgreSQL stores it and how the document shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Uuid,
    Text,
    /// Text the table checks against the widget kinds; written as a
    /// `WidgetType`.
    WidgetType,
    Integer,
    Timestamp,
    /// jsonb holding an object.
    Object,
    /// jsonb holding a `DataSource`.
    DataSource,
    /// jsonb holding an array of `Filter`s.
    Filters,
    /// jsonb holding any JSON when read; written as a `FilterValue`.
    FilterValue,
}

impl ColumnType {
    /// The type as PostgreSQL's `format_type` names it.
    pub const fn sql(self) -> &'static str {
        match self {
            ColumnType::Uuid => "uuid",
            ColumnType::Text | ColumnType::WidgetType => "text",
            ColumnType::Integer => "integer",
            ColumnType::Timestamp => "timestamp with time zone",
            ColumnType::Object
            | ColumnType::DataSource
            | ColumnType::Filters
            | ColumnType::FilterValue => "jsonb",
        }
    }
}

impl Column {
    const fn new(name: &'static str, ty: ColumnType) -> Self {
        Column {
            name,
            ty,
            nullable: false,
            has_default: false,
            write: Write::Never,
            doc: None,
            insert_doc: None,
            minimum: None,
        }
    }

    const fn nullable(self) -> Self {
        Column {
            nullable: true,
            ..self
        }
    }

    const fn defaulted(self) -> Self {
        Column {
            has_default: true,
            ..self
        }
    }

    const fn on_insert(self) -> Self {
        Column {
            write: Write::OnInsert,
            ..self
        }
    }

    const fn writable(self) -> Self {
        Column {
            write: Write::OnInsertAndUpdate,
            ..self
        }
    }

    const fn doc(self, doc: &'static str) -> Self {
        Column {
            doc: Some(doc),
            ..self
        }
    }

    const fn insert_doc(self, doc: &'static str) -> Self {
        Column {
            insert_doc: Some(doc),
            ..self
        }
    }

    const fn minimum(self, minimum: i64) -> Self {
        Column {
            minimum: Some(minimum),
            ..self
        }
    }

    /// An insert must give it: not null, and no default to fall back on.
    pub const fn required_on_insert(&self) -> bool {
        !matches!(self.write, Write::Never) && !self.nullable && !self.has_default
    }
}

use ColumnType::*;

pub const DASHBOARDS: Table = Table {
    name: "dashboards",
    columns: &[
        Column::new("id", Uuid).defaulted(),
        Column::new("owner_id", Uuid).defaulted(),
        Column::new("name", Text).writable(),
        Column::new("description", Text).nullable().writable(),
        Column::new("created_at", Timestamp).defaulted(),
        Column::new("updated_at", Timestamp).defaulted(),
    ],
    row_doc: Some("A row, with the columns `select` asked for (all by default)."),
    insert_doc: None,
    update_doc: Some("The columns to change."),
    bundle_link: false,
};

pub const DASHBOARD_WIDGETS: Table = Table {
    name: "dashboard_widgets",
    columns: &[
        Column::new("id", Uuid).defaulted(),
        Column::new("dashboard_id", Uuid).writable(),
        Column::new("owner_id", Uuid).defaulted(),
        Column::new("title", Text).defaulted().writable(),
        Column::new("widget_type", WidgetType)
            .writable()
            .doc("`metric`, `chart`, `stat`, `gauge`, `table`, `summary` or `trend`."),
        Column::new("position", Object).defaulted().writable(),
        Column::new("config", Object).defaulted().writable(),
        Column::new("data_source", DataSource).nullable().writable(),
        Column::new("data_source_id", Uuid).nullable().writable(),
        Column::new("filters", Filters).defaulted().writable(),
        Column::new("refresh_interval", Integer)
            .nullable()
            .writable()
            .minimum(1)
            .doc("Seconds an answer is cached; null: the widget type's default."),
        Column::new("created_at", Timestamp).defaulted(),
        Column::new("updated_at", Timestamp).defaulted(),
    ],
    row_doc: None,
    insert_doc: Some(
        "A widget: its `data_source` (or the one `data_source_id` names) and its\n\
         `filters` must compile, or the insert is refused with 400.",
    ),
    update_doc: Some("The columns to change; the widget as changed must still compile."),
    bundle_link: true,
};

pub const WIDGET_DATA_SOURCES: Table = Table {
    name: "widget_data_sources",
    columns: &[
        Column::new("id", Uuid).defaulted(),
        Column::new("owner_id", Uuid).defaulted(),
        Column::new("name", Text).writable(),
        Column::new("data_source", DataSource).writable(),
        Column::new("created_at", Timestamp).defaulted(),
        Column::new("updated_at", Timestamp).defaulted(),
    ],
    row_doc: None,
    insert_doc: Some("A reusable data source; it must compile."),
    update_doc: None,
    bundle_link: false,
};

pub const USER_FILTER_PREFERENCES: Table = Table {
    name: "user_filter_preferences",
    columns: &[
        Column::new("id", Uuid).defaulted(),
        Column::new("user_id", Uuid).defaulted(),
        Column::new("dashboard_id", Uuid).on_insert(),
        Column::new("filter_key", Text)
            .writable()
            .doc("A column name.")
            .insert_doc("A column name."),
        Column::new("value", FilterValue).writable(),
        Column::new("created_at", Timestamp).defaulted(),
    ],
    row_doc: Some(
        "A user's value for one dashboard filter: a scalar (equality), a list\n\
         (`in`) or `{\"op\", \"value\"}`.",
    ),
    insert_doc: None,
    update_doc: None,
    bundle_link: false,
};

pub const GLOBAL_FILTER_DEFAULTS: Table = Table {
    name: "global_filter_defaults",
    columns: &[
        Column::new("id", Uuid).defaulted(),
        Column::new("dashboard_id", Uuid)
            .nullable()
            .writable()
            .insert_doc("Null or absent: every dashboard."),
        Column::new("filter_key", Text).writable(),
        Column::new("value", FilterValue).writable(),
        Column::new("created_at", Timestamp).defaulted(),
    ],
    row_doc: Some(
        "A filter default for one dashboard, or every dashboard (null\n\
         `dashboard_id`). Written by `service_role` only.",
    ),
    insert_doc: None,
    update_doc: None,
    bundle_link: false,
};

/// Every documented table, in the order of [`crate::rest::TABLES`].
pub const TABLES: &[Table] = &[
    DASHBOARDS,
    DASHBOARD_WIDGETS,
    WIDGET_DATA_SOURCES,
    USER_FILTER_PREFERENCES,
    GLOBAL_FILTER_DEFAULTS,
];
