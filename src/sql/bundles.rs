//! The fixed statements of widget bundles (`bundles`): each gives its
//! rows as one JSON value, and takes its values as bind parameters.

/// Whether `$1` (bundle id) belongs to someone and `$2` (version) exists
/// for it, as the caller sees it: `{"owner": uuid|null, "exists": bool}`.
pub const CLAIM: &str = "SELECT json_build_object( \
    'owner', app.widget_bundle_owner($1), \
    'exists', EXISTS (SELECT 1 FROM app.widget_bundles WHERE bundle_id = $1 AND version = $2))";

/// Serialises registrations of one bundle id (`$1`): the owner check of
/// the insert policy then sees the first registration's row.
pub const LOCK: &str = "SELECT 1::bigint FROM (SELECT pg_advisory_xact_lock( \
    hashtextextended('widget_bundles:' || $1, 0))) l";

/// A new version, as the caller (the insert policy checks ownership).
pub const REGISTER: &str = "WITH w AS ( \
    INSERT INTO app.widget_bundles (bundle_id, version, origin_url, sha256, integrity, \
        size_bytes, content_type, declared_hosts, findings) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *) \
    SELECT coalesce(json_agg(w.*), '[]'::json) FROM w";

/// Approves version `$2` of `$1` if it is still pending (the service's own
/// connection: automatic approval of a clean bundle).
pub const AUTO_APPROVE: &str = "WITH w AS ( \
    UPDATE app.widget_bundles SET status = 'approved', reviewed_at = now() \
    WHERE bundle_id = $1 AND version = $2 AND status = 'pending' RETURNING *) \
    SELECT coalesce(json_agg(w.*), '[]'::json) FROM w";

/// The versions the caller owns (every version for service_role, `$2`),
/// of status `$1` when given, newest first.
pub const LIST: &str = "SELECT coalesce(json_agg(b.* ORDER BY b.bundle_id, b.created_at DESC), '[]'::json) \
    FROM app.widget_bundles b \
    WHERE ($2 OR b.owner_id = auth.uid()) AND ($1::text IS NULL OR b.status = $1)";

/// A review by service_role: version `$2` of `$1` gets status `$3`.
pub const REVIEW: &str = "WITH w AS ( \
    UPDATE app.widget_bundles SET status = $3, reviewed_at = now() \
    WHERE bundle_id = $1 AND version = $2 RETURNING *) \
    SELECT coalesce(json_agg(w.*), '[]'::json) FROM w";

/// What serving version `$2` of `$1` needs, as the caller sees it (anon
/// reads only these columns, of approved versions).
pub const PINNED: &str = "SELECT coalesce(json_agg(json_build_object( \
    'sha256', sha256, 'integrity', integrity, 'status', status, 'content_type', content_type)), '[]'::json) \
    FROM app.widget_bundles WHERE bundle_id = $1 AND version = $2";

/// The newest approved version of `$1`.
pub const NEWEST: &str = "SELECT coalesce(json_agg(version), '[]'::json) FROM ( \
    SELECT version FROM app.widget_bundles \
    WHERE bundle_id = $1 AND status = 'approved' ORDER BY created_at DESC LIMIT 1) v";

/// The versions `$1` (array of `{"id", "version"}`) the caller may link:
/// approved ones (or the caller's own), with what a `<script>` needs.
pub const LINKS: &str = "SELECT coalesce(json_agg(json_build_object( \
    'id', b.bundle_id, 'version', b.version, 'integrity', b.integrity)), '[]'::json) \
    FROM app.widget_bundles b \
    JOIN json_to_recordset($1::json) AS r(id text, version text) \
      ON b.bundle_id = r.id AND b.version = r.version";

/// Every approved version, for re-verification (the service's own
/// connection).
pub const TO_VERIFY: &str = "SELECT bundle_id, version, origin_url, sha256 \
    FROM app.widget_bundles WHERE status = 'approved' ORDER BY bundle_id, version";

/// The origin still serves the pinned bytes.
pub const VERIFIED: &str = "UPDATE app.widget_bundles SET last_verified_at = now() \
    WHERE bundle_id = $1 AND version = $2";

/// The origin serves other bytes (`$3`, their SHA-256); `$4`: quarantine.
pub const DRIFTED: &str = "UPDATE app.widget_bundles SET drift_count = drift_count + 1, \
    last_drift_at = now(), drift_sha256 = $3, last_verified_at = now(), \
    status = CASE WHEN $4 THEN 'quarantined' ELSE status END \
    WHERE bundle_id = $1 AND version = $2";

/// The origin could not be reached (never counted as a match).
pub const UNREACHABLE: &str = "UPDATE app.widget_bundles SET unreachable_count = unreachable_count + 1 \
    WHERE bundle_id = $1 AND version = $2";
