//! The dashboard tables, PostgREST-style: reads and writes of `/rest/v1`
//! and of the widget-data action form, as the caller.
//!
//! Takes a principal, a table and a parsed request (`rest`); gives rows.
//! Every statement runs as the caller's role in one transaction, so GRANTs
//! and the ownership policies of `migrations/0002` decide what a caller
//! reads and changes. Widget and data-source writes are checked in that
//! transaction, after the write and before the commit: a data source that
//! would not compile is a 400 naming the field, and nothing is saved.

use crate::auth::{Principal, Role};
use crate::config::Quotas;
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::exec::{self, Database};
use crate::plan::Limits;
use crate::rest;
use crate::schema::{self, Privilege, Table};
use crate::sql::{self, TooManyParameters};
use crate::widgets::{self, BundleLink};
use serde_json::Value;
use std::sync::Arc;

/// The widgets' table, which the action form writes.
const WIDGETS: &str = "dashboard_widgets";

/// What the dashboard tables need of the service.
pub struct Dashboards {
    /// Callers' statements.
    pub db: Arc<Database>,
    pub schema: Arc<schema::Handle>,
    /// Saved data sources are checked with the limits queries run under.
    pub limits: Limits,
    /// `CACHE_MAX_TTL_SECS`: the longest `refresh_interval` a widget may ask.
    pub max_ttl_secs: u64,
    /// `REST_MAX_BULK_ROWS`.
    pub max_bulk_rows: usize,
    pub quotas: Quotas,
}

/// A page of rows read.
pub struct Page {
    pub rows: Vec<Value>,
    /// The position of the first row in the whole result.
    pub offset: u64,
    /// How many rows the filters match in all, when a count was asked for.
    pub total: Option<u64>,
}

/// A counted read's answer (`sql::rest::read_counted`).
#[derive(serde::Deserialize)]
struct Counted {
    rows: Vec<Value>,
    total: u64,
}

/// The rows a write touched, all columns, and the columns the caller
/// asked to get back.
pub struct Written {
    pub rows: Vec<Value>,
    pub select: Vec<String>,
    /// False for a merge upsert that only merged into existing rows
    /// (PostgREST answers it 200, not 201).
    pub created: bool,
}

/// What an upsert's statement gives.
#[derive(serde::Deserialize)]
struct Upserted {
    rows: Vec<Value>,
    inserted: u64,
}

/// A parsed write.
enum Write {
    Insert(rest::Insert),
    Update(rest::Update),
    Delete(rest::Delete),
}

impl Dashboards {
    /// Reads table `name` as `principal`: `params` is the query string,
    /// `range` the `Range` header, if any. With `count`, also how many rows
    /// the filters match, counted exactly in the same statement (so under
    /// the same role, row policies and snapshot as the rows).
    pub async fn read(
        &self,
        principal: &Principal,
        name: &str,
        params: &[(String, String)],
        range: Option<&str>,
        count: bool,
        deadline: Deadline,
    ) -> Result<Page, ApiError> {
        let table = self.table(name)?;
        allowed(&table, principal, Privilege::Select)?;
        let range = range.map_or(Ok(None), rest::range);
        // The parameters are checked first: a bad one is a 400 whatever
        // the Range says.
        let read = rest::read(&table, params, range.clone().unwrap_or(None))?;
        if let Err(message) = range {
            return Err(ApiError::RangeNotSatisfiable { message });
        }
        let (sql, values) = if count {
            sql::rest::read_counted(&table, &read)
        } else {
            sql::rest::read(&table, &read)
        };
        let answer = self
            .db
            .query_json(principal, deadline, sqlx::AssertSqlSafe(sql), values)
            .await?;
        let (mut rows, total) = if count {
            let counted: Counted = parse(answer.get())?;
            (counted.rows, Some(counted.total))
        } else {
            (parse::<Vec<Value>>(answer.get())?, None)
        };
        if table.name == WIDGETS {
            self.link_bundles(principal, &mut rows, deadline).await?;
        }
        Ok(Page {
            rows,
            offset: read.offset,
            total,
        })
    }

    /// Adds `bundle` (served URL and integrity) to each widget row whose
    /// `config.bundle` names a bundle version the caller may load.
    async fn link_bundles(
        &self,
        principal: &Principal,
        rows: &mut [Value],
        deadline: Deadline,
    ) -> Result<(), ApiError> {
        let named = |row: &Value| -> Option<(String, String)> {
            let bundle = row.get("config")?.get("bundle")?;
            Some((
                bundle.get("id")?.as_str()?.to_owned(),
                bundle.get("version")?.as_str()?.to_owned(),
            ))
        };
        let wanted: Vec<Value> = rows
            .iter()
            .filter_map(named)
            .map(|(id, version)| serde_json::json!({"id": id, "version": version}))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut args = sqlx::postgres::PgArguments::default();
        sqlx::Arguments::add(&mut args, sqlx::types::Json(Value::Array(wanted)))
            .map_err(|e| exec::ExecError::Internal(sqlx::Error::Encode(e)))?;
        let links = self
            .db
            .query_json(principal, deadline, sql::bundles::LINKS, args)
            .await?;
        let links: Vec<BundleLink> = parse(links.get())?;
        for row in rows.iter_mut() {
            let Some((id, version)) = named(row) else {
                continue;
            };
            let link = links
                .iter()
                .find(|l| l.id == id && l.version == version)
                .cloned()
                .map(BundleLink::served);
            if let (Some(link), Value::Object(map)) = (link, row) {
                map.insert(
                    "bundle".to_owned(),
                    serde_json::to_value(link).map_err(exec::ExecError::from)?,
                );
            }
        }
        Ok(())
    }

    /// Inserts `body` (an object or an array of them) into table `name`;
    /// with a `resolution`, upserts it. With `one_row` (`.single()`), a
    /// write of any other number of rows is rolled back.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert(
        &self,
        principal: &Principal,
        name: &str,
        params: &[(String, String)],
        body: &Value,
        resolution: Option<rest::Resolution>,
        one_row: bool,
        deadline: Deadline,
    ) -> Result<Written, ApiError> {
        let table = self.table(name)?;
        allowed(&table, principal, Privilege::Insert)?;
        let body = &*rest::alias::rows(name, body)?;
        let params = &*rest::alias::params(name, params);
        let limit = self.max_bulk_rows;
        if let Value::Array(rows) = body
            && rows.len() > limit
        {
            return Err(ApiError::TooManyRows {
                limit,
                rows: rows.len(),
            });
        }
        let insert = match resolution {
            Some(resolution) => rest::upsert(&table, params, body, resolution)?,
            None => rest::insert(&table, params, body)?,
        };
        self.write(
            principal,
            &table,
            Write::Insert(insert),
            body,
            one_row,
            deadline,
        )
        .await
    }

    /// Changes the rows of table `name` that `params` filter to.
    pub async fn update(
        &self,
        principal: &Principal,
        name: &str,
        params: &[(String, String)],
        body: &Value,
        one_row: bool,
        deadline: Deadline,
    ) -> Result<Written, ApiError> {
        let table = self.table(name)?;
        allowed(&table, principal, Privilege::Update)?;
        let body = &*rest::alias::rows(name, body)?;
        let update = rest::update(&table, params, body)?;
        self.write(
            principal,
            &table,
            Write::Update(update),
            body,
            one_row,
            deadline,
        )
        .await
    }

    /// Deletes the rows of table `name` that `params` filter to.
    pub async fn delete(
        &self,
        principal: &Principal,
        name: &str,
        params: &[(String, String)],
        one_row: bool,
        deadline: Deadline,
    ) -> Result<Written, ApiError> {
        let table = self.table(name)?;
        allowed(&table, principal, Privilege::Delete)?;
        let delete = rest::delete(&table, params)?;
        self.write(
            principal,
            &table,
            Write::Delete(delete),
            &Value::Null,
            one_row,
            deadline,
        )
        .await
    }

    /// The action form's `create_widget`: the widget row created.
    pub async fn create_widget(
        &self,
        principal: &Principal,
        widget: &Value,
        deadline: Deadline,
    ) -> Result<Option<Value>, ApiError> {
        let written = self
            .insert(principal, WIDGETS, &[], widget, None, false, deadline)
            .await?;
        Ok(written.rows.into_iter().next())
    }

    /// The action form's `update_widget`: sets `fields` on widget `id`;
    /// the row as changed, if the caller may see it.
    pub async fn update_widget(
        &self,
        principal: &Principal,
        id: &str,
        fields: &Value,
        deadline: Deadline,
    ) -> Result<Option<Value>, ApiError> {
        let table = self.table(WIDGETS)?;
        allowed(&table, principal, Privilege::Update)?;
        let fields = &*rest::alias::rows(WIDGETS, fields)?;
        let update = rest::update_by_id(&table, id, fields)?;
        let written = self
            .write(
                principal,
                &table,
                Write::Update(update),
                fields,
                false,
                deadline,
            )
            .await?;
        Ok(written.rows.into_iter().next())
    }

    /// The action form's `delete_widget`: the row deleted, if the caller
    /// may see it.
    pub async fn delete_widget(
        &self,
        principal: &Principal,
        id: &str,
        deadline: Deadline,
    ) -> Result<Option<Value>, ApiError> {
        let table = self.table(WIDGETS)?;
        allowed(&table, principal, Privilege::Delete)?;
        let delete = rest::delete_by_id(&table, id)?;
        let written = self
            .write(
                principal,
                &table,
                Write::Delete(delete),
                &Value::Null,
                false,
                deadline,
            )
            .await?;
        Ok(written.rows.into_iter().next())
    }

    /// Runs `write` on `table` as `principal`, checking saved widgets and
    /// data sources before the commit. Gives the rows written, all
    /// columns, and the columns the caller selected.
    async fn write(
        &self,
        principal: &Principal,
        table: &Table,
        write: Write,
        body: &Value,
        one_row: bool,
        deadline: Deadline,
    ) -> Result<Written, ApiError> {
        // The statement returns every column (the checks below need them);
        // the caller gets back what it selected.
        let every = all(table);
        let deleting = matches!(write, Write::Delete(_));
        let upserting = matches!(&write, Write::Insert(i) if i.on_conflict.is_some());
        let merging = matches!(
            &write,
            Write::Insert(rest::Insert {
                on_conflict: Some(rest::OnConflict {
                    resolution: rest::Resolution::Merge,
                    ..
                }),
                ..
            })
        );
        let (sql, values, select, inserted) = match write {
            Write::Insert(mut insert) => {
                let select = std::mem::replace(&mut insert.select, every);
                let (sql, values) =
                    sql::rest::insert(table, &insert).map_err(too_many_parameters)?;
                (sql, values, select, insert.rows.len())
            }
            Write::Update(mut update) => {
                let select = std::mem::replace(&mut update.select, every);
                let (sql, values) =
                    sql::rest::update(table, &update).map_err(too_many_parameters)?;
                (sql, values, select, 0)
            }
            Write::Delete(mut delete) => {
                let select = std::mem::replace(&mut delete.select, every);
                let (sql, values) =
                    sql::rest::delete(table, &delete).map_err(too_many_parameters)?;
                (sql, values, select, 0)
            }
        };
        let schema = self.schema.schema();
        let checks = widgets::Checks {
            schema: &schema,
            limits: &self.limits,
            max_ttl_secs: self.max_ttl_secs,
        };
        widgets::check_body(&checks, &table.name, body)?;
        let mut tx = self.db.begin_write(principal, deadline).await?;
        if inserted > 0 && !upserting {
            self.check_quota(principal, table, &mut tx, inserted)
                .await?;
        }
        // An upsert's rows may all merge into existing ones: its quota is
        // checked once the statement says how many it inserted (the quota
        // lock taken before it keeps that count exact); over the quota,
        // dropping `tx` undoes it all.
        let owned = if upserting {
            self.quota_lock(principal, table, &mut tx).await?
        } else {
            None
        };
        let json = tx.json(sqlx::AssertSqlSafe(sql), values).await?;
        let (rows, created) = if upserting {
            let upserted: Upserted = parse(json.get())?;
            if let Some((owned, what, limit)) = owned
                && owned.saturating_add(upserted.inserted) > limit
            {
                return Err(ApiError::QuotaExceeded { what, limit });
            }
            // PostgREST: only a merge that inserted nothing is a 200.
            (upserted.rows, upserted.inserted > 0 || !merging)
        } else {
            (parse::<Vec<Value>>(json.get())?, true)
        };
        if one_row && rows.len() != 1 {
            // Dropping `tx` rolls the write back: nothing changed.
            return Err(ApiError::NotSingle { rows: rows.len() });
        }
        if !deleting {
            widgets::check_saved(&checks, &mut tx, &table.name, &rows).await?;
        }
        tx.commit().await?;
        Ok(Written {
            rows,
            select,
            created,
        })
    }

    /// Takes the caller's quota lock on `table` for the rest of `tx` and
    /// counts the rows they own: `None` when no quota applies.
    async fn quota_lock(
        &self,
        principal: &Principal,
        table: &Table,
        tx: &mut exec::WriteTx<'_>,
    ) -> Result<Option<(u64, &'static str, u64)>, ApiError> {
        let Some((what, limit)) = self.quota(principal, table) else {
            return Ok(None);
        };
        let (lock, key) = sql::rest::lock_own_rows(table);
        tx.count(sqlx::AssertSqlSafe(lock), key).await?;
        let owned = tx
            .count(
                sqlx::AssertSqlSafe(sql::rest::count_own_rows(table)),
                sqlx::postgres::PgArguments::default(),
            )
            .await?;
        Ok(Some((u64::try_from(owned).unwrap_or(0), what, limit)))
    }

    /// The caller's quota of `table`, named: none for service_role.
    fn quota(&self, principal: &Principal, table: &Table) -> Option<(&'static str, u64)> {
        if principal.role != Role::Authenticated {
            return None;
        }
        let quotas = &self.quotas;
        Some(match table.name.as_str() {
            "dashboards" => ("dashboards", quotas.dashboards),
            "dashboard_widgets" => ("widgets", quotas.widgets),
            "widget_data_sources" => ("data sources", quotas.data_sources),
            "user_filter_preferences" => ("filter preferences", quotas.filter_preferences),
            _ => return None,
        })
    }

    /// Refuses an insert of `adding` rows that would take a user past
    /// their quota of `table` (service_role has none). Holds the user's
    /// quota lock for the rest of `tx`, so concurrent inserts are counted
    /// one after the other.
    async fn check_quota(
        &self,
        principal: &Principal,
        table: &Table,
        tx: &mut exec::WriteTx<'_>,
        adding: usize,
    ) -> Result<(), ApiError> {
        if let Some((owned, what, limit)) = self.quota_lock(principal, table, tx).await?
            && owned.saturating_add(adding as u64) > limit
        {
            return Err(ApiError::QuotaExceeded { what, limit });
        }
        Ok(())
    }

    /// The served table `name`, from the schema cache.
    fn table(&self, name: &str) -> Result<Arc<Table>, ApiError> {
        self.schema
            .served(name)
            .ok_or(ApiError::NotFound { what: "table" })
    }
}

fn too_many_parameters(e: TooManyParameters) -> ApiError {
    ApiError::TooManyParameters {
        parameters: e.parameters,
        limit: sql::MAX_PARAMETERS,
    }
}

/// Refuses a role without `privilege` on `table` before anything of the
/// request is looked at: it learns nothing of the table's columns.
fn allowed(table: &Table, principal: &Principal, privilege: Privilege) -> Result<(), ApiError> {
    if table.grants.allows(principal.role.as_str(), privilege) {
        return Ok(());
    }
    Err(ApiError::Exec(exec::ExecError::PermissionDenied {
        message: format!("permission denied for table {}", table.name),
    }))
}

fn all(table: &Table) -> Vec<String> {
    table.columns.iter().map(|c| c.name.clone()).collect()
}

fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, ApiError> {
    Ok(serde_json::from_str(json).map_err(exec::ExecError::from)?)
}
