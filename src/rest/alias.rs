//! Seed 004 writes a widget's kind as `type`
//! (`insert([{ dashboard_id, type: 'metric', data_source }])`); the column
//! is `widget_type`. The alias is resolved here, before a write is
//! parsed, for `/rest/v1` and the action form alike: one column stays the
//! one source of truth, with nothing to keep in sync (a second, generated
//! column cannot be written; a synchronised one is two truths kept equal
//! by a trigger; a view would split the table's name). Reads return
//! `widget_type` only.

use crate::plan::{PlanError, PlanErrorKind};
use serde_json::Value;
use std::borrow::Cow;

/// The table whose rows may spell `widget_type` as `type`.
const WIDGETS: &str = "dashboard_widgets";
const ALIAS: &str = "type";
const COLUMN: &str = "widget_type";

/// `body` (a row or an array of rows for `table`) with each row's `type`
/// renamed `widget_type`. A row giving both, with different values, is
/// refused, naming `type`.
pub fn rows<'a>(table: &str, body: &'a Value) -> Result<Cow<'a, Value>, PlanError> {
    let spelled = |row: &Value| row.get(ALIAS).is_some();
    let any = match body {
        Value::Object(_) => spelled(body),
        Value::Array(rows) => rows.iter().any(spelled),
        _ => false,
    };
    if table != WIDGETS || !any {
        return Ok(Cow::Borrowed(body));
    }
    let rename = |row: &Value| -> Result<Value, PlanError> {
        let Value::Object(fields) = row else {
            return Ok(row.clone());
        };
        let mut fields = fields.clone();
        if let Some(kind) = fields.remove(ALIAS) {
            match fields.get(COLUMN) {
                Some(other) if *other != kind => {
                    return Err(PlanError::new(
                        ALIAS,
                        PlanErrorKind::InvalidValue(format!(
                            "`type` is another name for `widget_type`, and they differ ({kind} and {other}): give one"
                        )),
                    ));
                }
                _ => {
                    fields.insert(COLUMN.to_owned(), kind);
                }
            }
        }
        Ok(Value::Object(fields))
    };
    Ok(Cow::Owned(match body {
        Value::Array(rows) => Value::Array(rows.iter().map(rename).collect::<Result<_, _>>()?),
        row => rename(row)?,
    }))
}

/// `params` with `type` renamed `widget_type` in `columns=` (which
/// supabase-js adds to a bulk insert, naming every key of the rows).
pub fn params<'a>(table: &str, params: &'a [(String, String)]) -> Cow<'a, [(String, String)]> {
    let named = |c: &str| c.trim().trim_matches('"') == ALIAS;
    let spelled = |(k, v): &(String, String)| k == "columns" && v.split(',').any(named);
    if table != WIDGETS || !params.iter().any(spelled) {
        return Cow::Borrowed(params);
    }
    Cow::Owned(
        params
            .iter()
            .map(|(k, v)| match k.as_str() {
                "columns" => {
                    let mut seen = Vec::new();
                    for column in v.split(',').map(str::trim) {
                        let column = if named(column) { COLUMN } else { column };
                        if !seen.contains(&column) {
                            seen.push(column);
                        }
                    }
                    (k.clone(), seen.join(","))
                }
                _ => (k.clone(), v.clone()),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_is_widget_type_on_widgets_only() {
        let row = json!({"dashboard_id": "d", "type": "metric"});
        assert_eq!(
            rows(WIDGETS, &row).unwrap().into_owned(),
            json!({"dashboard_id": "d", "widget_type": "metric"})
        );
        assert_eq!(
            rows(WIDGETS, &json!([row, {"widget_type": "chart"}]))
                .unwrap()
                .into_owned(),
            json!([{"dashboard_id": "d", "widget_type": "metric"}, {"widget_type": "chart"}])
        );
        assert!(matches!(
            rows("dashboards", &row).unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            rows(WIDGETS, &json!({"type": "chart", "widget_type": "chart"}))
                .unwrap()
                .into_owned(),
            json!({"widget_type": "chart"})
        );
        let both = rows(WIDGETS, &json!({"type": "chart", "widget_type": "metric"})).unwrap_err();
        assert_eq!(both.field(), "type");
    }

    #[test]
    fn columns_name_widget_type_once() {
        let p = vec![
            ("columns".to_owned(), "\"dashboard_id\",\"type\"".to_owned()),
            ("select".to_owned(), "*".to_owned()),
        ];
        let renamed = params(WIDGETS, &p);
        assert_eq!(renamed[0].1, "\"dashboard_id\",widget_type");
        assert_eq!(renamed[1], p[1]);
        assert!(matches!(params("dashboards", &p), Cow::Borrowed(_)));
    }
}
