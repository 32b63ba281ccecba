//! The fixed statements of saved widgets: loading one with its filter
//! layers, and reading back widgets just written to check them.

/// A widget's own data source, or the `widget_data_sources` row it names,
/// and the bundle its `config.bundle` names (if the caller may see it).
/// The filter layers: global defaults (every dashboard's first, then this
/// dashboard's), then the caller's own preferences for the dashboard.
pub const LOAD: &str = "SELECT coalesce(json_agg(w.*), '[]'::json) FROM ( \
    SELECT w.widget_type, w.refresh_interval, w.config -> 'browser_cache_ttl' AS browser_cache_ttl, \
           (SELECT json_build_object('id', b.bundle_id, 'version', b.version, 'integrity', b.integrity) \
            FROM app.widget_bundles b \
            WHERE b.bundle_id = w.config #>> '{bundle,id}' \
              AND b.version = w.config #>> '{bundle,version}') AS bundle, \
           coalesce(w.data_source, s.data_source) AS data_source, \
           coalesce(w.filters, '[]'::jsonb) AS filters, \
           (SELECT coalesce(json_agg(json_build_array(g.filter_key, g.value) \
                                     ORDER BY g.dashboard_id NULLS FIRST, g.created_at, g.id), '[]'::json) \
            FROM app.global_filter_defaults g \
            WHERE g.dashboard_id IS NULL OR g.dashboard_id = w.dashboard_id) AS defaults, \
           (SELECT coalesce(json_agg(json_build_array(p.filter_key, p.value) \
                                     ORDER BY p.created_at, p.id), '[]'::json) \
            FROM app.user_filter_preferences p \
            WHERE p.dashboard_id = w.dashboard_id AND p.user_id = auth.uid()) AS preferences \
    FROM app.dashboard_widgets w \
    LEFT JOIN app.widget_data_sources s ON s.id = w.data_source_id \
    WHERE w.id = $1) w";

/// Widgets `$1` (uuid[]) as just saved, by id: their own data source, the
/// one they name and its row's, and their filters.
pub const SAVED: &str = "SELECT coalesce(json_object_agg(w.id, json_build_object( \
    'own', w.data_source, 'named', w.data_source_id, \
    'referenced', s.data_source, 'filters', w.filters)), '{}'::json) \
    FROM app.dashboard_widgets w \
    LEFT JOIN app.widget_data_sources s ON s.id = w.data_source_id \
    WHERE w.id = ANY($1)";
