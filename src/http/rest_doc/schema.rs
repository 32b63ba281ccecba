//! Builds the utoipa schemas and parameters of `/rest/v1/<table>` from the
//! column lists (`columns.rs`): the row, insert and update objects, the
//! filters, `select` and `order`. Pure: column list in, OpenAPI objects out.

use super::columns::{Column, ColumnType, Table, Write};
use super::{FilterValue, WidgetType};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Ref, RefBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};

/// The object shapes documented per table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A row read back: every column, none required (`select` may leave
    /// any out).
    Row,
    /// The columns an insert may set; those with no default and no null
    /// are required.
    Insert,
    /// The columns an update may set, at least one.
    Update,
}

impl Shape {
    fn has(self, column: &Column) -> bool {
        match self {
            Shape::Row => true,
            Shape::Insert => column.write != Write::Never,
            Shape::Update => column.write == Write::OnInsertAndUpdate,
        }
    }
}

/// The row, insert or update object of a table.
pub fn object(table: &Table, shape: Shape) -> RefOr<Schema> {
    let doc = match shape {
        Shape::Row => table.row_doc,
        Shape::Insert => table.insert_doc,
        Shape::Update => table.update_doc,
    };
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(doc);
    for column in table.columns.iter().filter(|c| shape.has(c)) {
        object = object.property(column.name, property(column, shape));
        if shape == Shape::Insert && column.required_on_insert() {
            object = object.required(column.name);
        }
    }
    if shape == Shape::Update {
        object = object.min_properties(Some(1));
    }
    if shape == Shape::Row && table.bundle_link {
        object = object.property(
            "bundle",
            RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                <crate::widgets::BundleLink as ToSchema>::name(),
            )),
        );
    }
    object.into()
}

/// The named schemas a table's shape refers to, for the document's
/// components.
pub fn references(table: &Table, shape: Shape, schemas: &mut Vec<(String, RefOr<Schema>)>) {
    fn add<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into(), T::schema()));
        T::schemas(schemas);
    }
    let write = shape != Shape::Row;
    if !write && table.bundle_link {
        add::<crate::widgets::BundleLink>(schemas);
    }
    for column in table.columns.iter().filter(|c| shape.has(c)) {
        match column.ty {
            ColumnType::DataSource => add::<crate::plan::DataSource>(schemas),
            ColumnType::Filters => add::<crate::plan::Filter>(schemas),
            ColumnType::WidgetType if write => add::<WidgetType>(schemas),
            ColumnType::FilterValue if write => add::<FilterValue>(schemas),
            _ => {}
        }
    }
}

fn property(column: &Column, shape: Shape) -> RefOr<Schema> {
    let write = shape != Shape::Row;
    let doc = match shape {
        Shape::Row => column.doc,
        Shape::Insert => column.insert_doc,
        Shape::Update => None,
    };
    let scalar = |ty: Type, format: Option<KnownFormat>| {
        let ty = if column.nullable {
            SchemaType::from_iter([ty, Type::Null])
        } else {
            SchemaType::new(ty)
        };
        ObjectBuilder::new()
            .schema_type(ty)
            .format(format.map(SchemaFormat::KnownFormat))
            .description(doc)
            .minimum(column.minimum.filter(|_| write))
            .into()
    };
    let named = |name: std::borrow::Cow<'static, str>| -> RefOr<Schema> {
        let reference = RefBuilder::new()
            .ref_location_from_schema_name(name)
            .description(doc)
            .build();
        if column.nullable {
            OneOfBuilder::new()
                .item(reference)
                .item(ObjectBuilder::new().schema_type(Type::Null))
                .into()
        } else {
            reference.into()
        }
    };
    match column.ty {
        ColumnType::Uuid => scalar(Type::String, Some(KnownFormat::Uuid)),
        ColumnType::Text => scalar(Type::String, None),
        ColumnType::WidgetType if write => named(WidgetType::name()),
        ColumnType::WidgetType => scalar(Type::String, None),
        ColumnType::Integer => scalar(Type::Integer, Some(KnownFormat::Int32)),
        ColumnType::Timestamp => scalar(Type::String, Some(KnownFormat::DateTime)),
        ColumnType::Object => scalar(Type::Object, None),
        ColumnType::DataSource => named(crate::plan::DataSource::name()),
        ColumnType::Filters => ArrayBuilder::new()
            .items(Ref::from_schema_name(crate::plan::Filter::name()))
            .description(doc)
            .into(),
        ColumnType::FilterValue if write => named(FilterValue::name()),
        // Any JSON.
        ColumnType::FilterValue => ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .description(doc)
            .into(),
    }
}

/// How a filter on a column of this type is written, or `None` for the
/// JSON columns, which take no filter (and are left out of `select` and
/// `order`'s patterns too).
fn filter_kind(ty: ColumnType) -> Option<FilterKind> {
    match ty {
        ColumnType::Uuid => Some(FilterKind::Uuid),
        ColumnType::Text | ColumnType::WidgetType => Some(FilterKind::Text),
        ColumnType::Integer => Some(FilterKind::Integer),
        ColumnType::Timestamp => Some(FilterKind::Timestamp),
        ColumnType::Object
        | ColumnType::DataSource
        | ColumnType::Filters
        | ColumnType::FilterValue => None,
    }
}

#[derive(Clone, Copy)]
enum FilterKind {
    Uuid,
    Text,
    Integer,
    Timestamp,
}

/// The `<op>.<value>` forms a filter on a column of each type accepts:
/// `eq`/`neq` (and `gt`.. for ordered types), `in.(a,b)`, `is.null`,
/// `not.is.null`, and `like`/`ilike` (`*` for `%`) on text. (The service
/// takes more than these patterns say: `not.` before any operator,
/// quoted `in` values, `like(any)`/`(all)` lists, `cs`/`cd` on jsonb.)
fn filter_pattern(kind: FilterKind) -> &'static str {
    match kind {
        FilterKind::Uuid => {
            "^((eq|neq)\\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|in\\.\\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(,[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*\\)|(not\\.)?is\\.null)$"
        }
        FilterKind::Text => {
            "^((eq|neq|gt|gte|lt|lte)\\.[A-Za-z0-9 _-]*|in\\.\\(([A-Za-z0-9 _-]*)(,[A-Za-z0-9 _-]*)*\\)|(not\\.)?is\\.null|i?like\\.[A-Za-z0-9 _*-]*)$"
        }
        FilterKind::Integer => {
            "^((eq|neq|gt|gte|lt|lte)\\.-?[0-9]{1,9}|in\\.\\((-?[0-9]{1,9})(,-?[0-9]{1,9})*\\)|(not\\.)?is\\.null)$"
        }
        FilterKind::Timestamp => {
            "^((eq|neq|gt|gte|lt|lte)\\.20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z|in\\.\\((20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)(,20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z)*\\)|(not\\.)?is\\.null)$"
        }
    }
}

/// The columns that take a filter, with how.
fn filterable(table: &Table) -> impl Iterator<Item = (&'static str, FilterKind)> {
    table
        .columns
        .iter()
        .filter_map(|c| filter_kind(c.ty).map(|kind| (c.name, kind)))
}

/// `select`, then a `<column>=<op>.<value>` filter per filterable column,
/// then the `or` and `and` logic groups.
pub fn filter_params(table: &Table) -> Vec<Parameter> {
    let columns: Vec<_> = filterable(table).map(|(name, _)| name).collect();
    let mut params = vec![select_param(&columns)];
    params.extend(filterable(table).map(|(name, kind)| filter_param(name, kind)));
    let text: Vec<_> = filterable(table)
        .filter(|(_, kind)| matches!(kind, FilterKind::Text))
        .map(|(name, _)| name)
        .collect();
    if !text.is_empty() {
        params.extend(logic_params(&text));
    }
    params
}

/// `or=(…)` and `and=(…)`. The pattern covers flat groups of `eq`/`neq`
/// tests on text columns; the service takes the rest of PostgREST's
/// grammar too.
fn logic_params(columns: &[&str]) -> Vec<Parameter> {
    let test = format!(
        "({})\\.(not\\.)?(eq|neq)\\.[A-Za-z0-9_-]*",
        columns.join("|")
    );
    let pattern = format!("^\\({test}(,{test})*\\)$");
    let description = "A logic group, as postgrest-js's `.or()` sends it: \
        `(a.eq.1,b.gt.2)`, items being `<column>.[not.]<op>.<value>` or nested \
        `[not.]or(…)` / `[not.]and(…)` (at most 8 deep); values holding `,`, `.`, \
        `(` or `)` in double quotes (`\\` escapes). `not.or` / `not.and` negate \
        the whole group.";
    ["or", "and"]
        .into_iter()
        .map(|name| query_param(name, description, pattern.clone()))
        .collect()
}

/// `order` on the filterable columns.
pub fn sort_params(table: &Table) -> Vec<Parameter> {
    let columns: Vec<_> = filterable(table).map(|(name, _)| name).collect();
    vec![order_param(&columns)]
}

fn query_param(name: &str, description: &str, pattern: String) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        ))
        .build()
}

/// `select=*` or a comma-separated list of the table's columns.
fn select_param(columns: &[&str]) -> Parameter {
    let column = format!("({})", columns.join("|"));
    query_param(
        "select",
        "`*` or a comma-separated list of columns",
        format!("^(\\*|{column}(,{column})*)$"),
    )
}

/// `order=<column>[.asc|.desc][.nullsfirst|.nullslast],...`
fn order_param(columns: &[&str]) -> Parameter {
    let key = format!(
        "({})(\\.(asc|desc))?(\\.(nullsfirst|nullslast))?",
        columns.join("|")
    );
    query_param(
        "order",
        "`<column>.asc|desc[.nullsfirst|.nullslast]`, comma-separated",
        format!("^{key}(,{key})*$"),
    )
}

fn filter_param(column: &str, kind: FilterKind) -> Parameter {
    query_param(
        column,
        &format!("A filter on `{column}`, e.g. `eq.<value>`"),
        filter_pattern(kind).to_owned(),
    )
}
