//! Types a filter value against its column: JSON in, a typed `Value` out,
//! or a `PlanError` naming the column and what it expected. Pure.

use super::error::{PlanError, PlanErrorKind};
use crate::schema::{Column, ColumnKind};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::Serialize;
use serde_json::Value as Json;
use uuid::Uuid;

/// A value ready to be bound as a parameter of the column's type.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum Value {
    Integer(i64),
    Float(f64),
    /// Exact decimal text, bound as text and cast to numeric.
    Numeric(String),
    Text(String),
    Boolean(bool),
    Uuid(Uuid),
    Timestamptz(DateTime<Utc>),
    Timestamp(NaiveDateTime),
    Date(NaiveDate),
}

fn expected(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Integer => "a JSON integer",
        ColumnKind::Float | ColumnKind::Numeric => "a JSON number",
        ColumnKind::Text => "a string",
        ColumnKind::Boolean => "true or false",
        ColumnKind::Uuid => "a uuid string",
        ColumnKind::Timestamptz => "an RFC 3339 timestamp or a YYYY-MM-DD date",
        ColumnKind::Timestamp => "a YYYY-MM-DD[THH:MM:SS] timestamp",
        ColumnKind::Date => "a YYYY-MM-DD date",
        ColumnKind::Json | ColumnKind::Other => "nothing (only is_null and not_null apply)",
    }
}

/// Types `value` for `column`; `field` is its path in the request.
pub fn typed(column: &Column, value: &Json, field: &str) -> Result<Value, PlanError> {
    let mismatch = || {
        let shown = value.to_string();
        let shown = if shown.len() > 60 {
            format!("{}...", &shown[..shown.floor_char_boundary(60)])
        } else {
            shown
        };
        PlanError::new(
            field,
            PlanErrorKind::TypeMismatch(format!(
                "column {:?} is {}: expected {}, got {shown}",
                column.name,
                column.pg_type,
                expected(column.kind)
            )),
        )
    };
    if value.is_null() {
        return Err(PlanError::new(
            field,
            PlanErrorKind::InvalidValue(format!(
                "null is not a value to compare {:?} with: use the is_null or not_null operator",
                column.name
            )),
        ));
    }
    let text = value.as_str();
    let typed = match column.kind {
        ColumnKind::Integer => Value::Integer(value.as_i64().ok_or_else(mismatch)?),
        ColumnKind::Float => Value::Float(
            value
                .as_f64()
                .filter(|_| value.is_number())
                .ok_or_else(mismatch)?,
        ),
        ColumnKind::Numeric => match value {
            Json::Number(n) => Value::Numeric(n.to_string()),
            _ => return Err(mismatch()),
        },
        ColumnKind::Text => {
            let s = text.ok_or_else(mismatch)?;
            if s.contains('\0') {
                return Err(PlanError::new(
                    field,
                    PlanErrorKind::InvalidValue(
                        "text values cannot contain NUL (\\u0000) characters".into(),
                    ),
                ));
            }
            Value::Text(s.to_owned())
        }
        ColumnKind::Boolean => Value::Boolean(value.as_bool().ok_or_else(mismatch)?),
        ColumnKind::Uuid => Value::Uuid(
            text.and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(mismatch)?,
        ),
        ColumnKind::Timestamptz => {
            Value::Timestamptz(text.and_then(parse_timestamptz).ok_or_else(mismatch)?)
        }
        ColumnKind::Timestamp => {
            Value::Timestamp(text.and_then(parse_timestamp).ok_or_else(mismatch)?)
        }
        ColumnKind::Date => Value::Date(text.and_then(parse_date).ok_or_else(mismatch)?),
        ColumnKind::Json | ColumnKind::Other => return Err(mismatch()),
    };
    Ok(typed)
}

/// Years PostgreSQL and chrono both hold (and people mean).
fn plausible(date: NaiveDate) -> bool {
    (1..=9999).contains(&date.year())
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|d| plausible(*d))
}

fn parse_timestamptz(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        let t = t.with_timezone(&Utc);
        return plausible(t.date_naive()).then_some(t);
    }
    parse_date(s).map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return plausible(t.date()).then_some(t);
        }
    }
    parse_date(s).map(|d| d.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(kind: ColumnKind, pg_type: &str) -> Column {
        Column {
            name: "c".into(),
            pg_type: pg_type.into(),
            kind,
            nullable: true,
        }
    }

    #[test]
    fn values_of_the_right_type_are_accepted() {
        let cases = [
            (ColumnKind::Integer, "int4", json!(42), Value::Integer(42)),
            (ColumnKind::Float, "float8", json!(1.5), Value::Float(1.5)),
            (ColumnKind::Float, "float8", json!(2), Value::Float(2.0)),
            (
                ColumnKind::Numeric,
                "numeric",
                json!(10.125),
                Value::Numeric("10.125".into()),
            ),
            (
                ColumnKind::Text,
                "text",
                json!("a'b"),
                Value::Text("a'b".into()),
            ),
            (
                ColumnKind::Boolean,
                "bool",
                json!(true),
                Value::Boolean(true),
            ),
            (
                ColumnKind::Date,
                "date",
                json!("2026-01-07"),
                Value::Date(NaiveDate::from_ymd_opt(2026, 1, 7).unwrap()),
            ),
            (
                ColumnKind::Timestamptz,
                "timestamptz",
                json!("2026-01-03T05:00:00+02:00"),
                Value::Timestamptz("2026-01-03T03:00:00Z".parse().unwrap()),
            ),
            (
                ColumnKind::Timestamptz,
                "timestamptz",
                json!("2026-01-20"),
                Value::Timestamptz("2026-01-20T00:00:00Z".parse().unwrap()),
            ),
            (
                ColumnKind::Timestamp,
                "timestamp",
                json!("2026-01-02 10:30:00"),
                Value::Timestamp(
                    NaiveDate::from_ymd_opt(2026, 1, 2)
                        .unwrap()
                        .and_hms_opt(10, 30, 0)
                        .unwrap(),
                ),
            ),
        ];
        for (kind, pg_type, json, want) in cases {
            assert_eq!(
                typed(&column(kind, pg_type), &json, "f").unwrap(),
                want,
                "{json}"
            );
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_type_mismatches_naming_the_column() {
        let cases = [
            (ColumnKind::Integer, "int4", json!("42")),
            (ColumnKind::Integer, "int4", json!(4.2)),
            (ColumnKind::Float, "float8", json!("1.5")),
            (ColumnKind::Numeric, "numeric", json!("1")),
            (ColumnKind::Text, "text", json!(1)),
            (ColumnKind::Boolean, "bool", json!("true")),
            (ColumnKind::Uuid, "uuid", json!("not-a-uuid")),
            (ColumnKind::Timestamptz, "timestamptz", json!("yesterday")),
            (ColumnKind::Date, "date", json!("2026-13-01")),
            (ColumnKind::Date, "date", json!("+262142-01-01")),
            (
                ColumnKind::Timestamptz,
                "timestamptz",
                json!("0000-01-01T00:00:00Z"),
            ),
            (ColumnKind::Json, "jsonb", json!({"a": 1})),
        ];
        for (kind, pg_type, json) in cases {
            let err = typed(&column(kind, pg_type), &json, "config.filters[0].value").unwrap_err();
            assert_eq!(err.code(), "type_mismatch", "{json}");
            assert_eq!(err.field(), "config.filters[0].value");
            assert!(err.reason().contains("\"c\""), "{err}");
        }
    }

    #[test]
    fn null_and_nul_are_invalid_values() {
        let err = typed(&column(ColumnKind::Text, "text"), &json!(null), "f").unwrap_err();
        assert_eq!(err.code(), "invalid_value");
        assert!(err.reason().contains("is_null"));
        let err = typed(&column(ColumnKind::Text, "text"), &json!("a\u{0000}b"), "f").unwrap_err();
        assert_eq!(err.code(), "invalid_value");
    }
}
