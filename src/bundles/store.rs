//! Content-addressed storage of widget bundles (issue 12, item 4), behind
//! the `object_store` crate: the local disk (seed tiers 1–2) or any
//! S3-compatible store (tier 3).
//!
//! A bundle lives at `sha256/<hex>` (64 lowercase hex digits), next to
//! its precomputed variants `sha256/<hex>.gz` (gzip, best) and
//! `sha256/<hex>.br` (brotli, quality [`BROTLI_QUALITY`]). Every object is
//! written once, with `PutMode::Create`: nothing stored is ever replaced.
//! The variants are written before the bundle itself, so a stored bundle
//! always has both; a registration that stopped half-way is finished by
//! the next one, and a second registration of the same bytes reuses all
//! three without compressing anything.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BUNDLE_STORE` | `file` | `file`: `DATA_DIR/bundles` on the local disk (made 0700: only the account running the service can read it); `s3://<bucket>`: that bucket of an S3-compatible store |
//! | `BUNDLE_S3_ENDPOINT` | AWS | the store's URL, e.g. `http://127.0.0.1:9000` for MinIO (path-style requests) |
//! | `BUNDLE_S3_REGION` | `us-east-1` | the bucket's region |
//! | `BUNDLE_S3_ACCESS_KEY_ID` | none | with the secret below; both or neither. Neither: the machine's own role (EC2 instance metadata, ECS) |
//! | `BUNDLE_S3_SECRET_ACCESS_KEY` | none | never printed |
//! | `BUNDLE_S3_ALLOW_HTTP` | `true` when the endpoint is `http://`, else `false` | allow plain HTTP to the store |
//!
//! The `BUNDLE_S3_*` variables are refused unless `BUNDLE_STORE` is
//! `s3://…`, so a bundle never lands on the local disk by mistake.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload, RetryConfig};
use sha2::{Digest, Sha256, Sha384};

/// Brotli's quality for the precomputed `.br` variant. On a 500 KB
/// minified bundle here (release build), quality 8 takes 24–31 ms and
/// comes within 0.5 % of quality 9's size at half its time; 10 and 11
/// save another 7–9 % but take 280–640 ms, more than the whole
/// registration's 200 ms budget.
pub const BROTLI_QUALITY: u32 = 8;

/// Where bundles are stored. Made by [`StoreConfig::from_env`]; its
/// `Debug` never shows the secret key.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A directory on the local disk (`DATA_DIR/bundles`).
    Local { root: PathBuf },
    /// A bucket of an S3-compatible store.
    S3 {
        bucket: String,
        endpoint: Option<String>,
        region: String,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: bool,
    },
}

impl StoreConfig {
    /// Reads the variables in the module's table through `get` (the
    /// process environment, or a map in tests); blank counts as unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>, data_dir: &Path) -> Result<Self, String> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        const S3_VARS: [&str; 5] = [
            "BUNDLE_S3_ENDPOINT",
            "BUNDLE_S3_REGION",
            "BUNDLE_S3_ACCESS_KEY_ID",
            "BUNDLE_S3_SECRET_ACCESS_KEY",
            "BUNDLE_S3_ALLOW_HTTP",
        ];
        let store = get("BUNDLE_STORE");
        let bucket = match store.as_deref().map(str::trim) {
            None | Some("file") => {
                if let Some(name) = S3_VARS.iter().find(|name| get(name).is_some()) {
                    return Err(format!(
                        "{name} is set but BUNDLE_STORE is not s3://<bucket>: bundles would go to the local disk"
                    ));
                }
                return Ok(Self::Local {
                    root: data_dir.join("bundles"),
                });
            }
            Some(other) => match other.strip_prefix("s3://") {
                Some(bucket) if valid_bucket(bucket) => bucket.to_owned(),
                _ => {
                    return Err(format!(
                        "BUNDLE_STORE must be file or s3://<bucket> (a bucket name alone, no path); got {other:?}"
                    ));
                }
            },
        };
        let endpoint = get("BUNDLE_S3_ENDPOINT").map(|e| e.trim().trim_end_matches('/').to_owned());
        if let Some(e) = &endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return Err(format!(
                "BUNDLE_S3_ENDPOINT must be an http:// or https:// URL; got {e:?}"
            ));
        }
        let plain_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let allow_http = match get("BUNDLE_S3_ALLOW_HTTP") {
            None => plain_http,
            Some(raw) => match raw.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(format!(
                        "BUNDLE_S3_ALLOW_HTTP must be true or false; got {raw:?}"
                    ));
                }
            },
        };
        if plain_http && !allow_http {
            return Err("BUNDLE_S3_ENDPOINT is http:// but BUNDLE_S3_ALLOW_HTTP is false".into());
        }
        let access_key_id = get("BUNDLE_S3_ACCESS_KEY_ID");
        let secret_access_key = get("BUNDLE_S3_SECRET_ACCESS_KEY");
        if access_key_id.is_some() != secret_access_key.is_some() {
            return Err(
                "BUNDLE_S3_ACCESS_KEY_ID and BUNDLE_S3_SECRET_ACCESS_KEY go together: set both or neither"
                    .into(),
            );
        }
        Ok(Self::S3 {
            bucket,
            endpoint,
            region: get("BUNDLE_S3_REGION")
                .map(|r| r.trim().to_owned())
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id,
            secret_access_key,
            allow_http,
        })
    }
}

/// S3's rules for a bucket name, loosely: 3–63 of `a-z 0-9 . -`.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local { root } => f.debug_struct("Local").field("root", root).finish(),
            Self::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("endpoint", endpoint)
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field(
                    "secret_access_key",
                    &secret_access_key.as_ref().map(|_| "<redacted>"),
                )
                .field("allow_http", allow_http)
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `get` was given something other than 64 lowercase hex digits.
    #[error("not a SHA-256 in lowercase hex: {given:?}")]
    BadSha256 { given: String },
    #[error("preparing the bundle directory {}: {source}", path.display())]
    LocalRoot {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("opening the bundle store: {0}")]
    Open(#[source] object_store::Error),
    #[error("bundle store, {key}: {source}")]
    Object {
        key: String,
        source: object_store::Error,
    },
    /// What is stored under a hash has another size than the bytes with
    /// that hash: damaged, or tampered with. It is left as it is.
    #[error("bundle store, {key}: {stored} bytes are stored where {expected} were expected")]
    SizeMismatch {
        key: String,
        stored: u64,
        expected: u64,
    },
    #[error("compressing a bundle: {0}")]
    Compression(String),
}

/// Which stored variant of a bundle to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Brotli,
}

impl Encoding {
    /// The `Content-Encoding` value to send with this variant, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Self::Identity => None,
            Self::Gzip => Some("gzip"),
            Self::Brotli => Some("br"),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Identity => "",
            Self::Gzip => ".gz",
            Self::Brotli => ".br",
        }
    }
}

/// What [`Blobs::put`] stored (or found already stored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Lowercase hex: the blob's name and the served `ETag`.
    pub sha256: String,
    /// Subresource Integrity: `sha384-<base64>`.
    pub integrity: String,
    pub size: u64,
    /// True when the bundle was already stored (nothing was written).
    pub reused: bool,
}

/// The bundle store: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl fmt::Debug for Blobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

impl Blobs {
    /// Opens the store; for the local disk, makes the directory (0700)
    /// or takes an existing one's access away from other accounts.
    pub fn open(config: &StoreConfig) -> Result<Self, StoreError> {
        let store: Arc<dyn ObjectStore> = match config {
            StoreConfig::Local { root } => {
                private_dir(root).map_err(|source| StoreError::LocalRoot {
                    path: root.clone(),
                    source,
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(root)
                        .map_err(StoreError::Open)?
                        // A registered bundle is in the database: it must
                        // survive a crash too.
                        .with_fsync(true),
                )
            }
            StoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    // The options carry allow_http: set it on them, as
                    // they replace whatever the builder had.
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(*allow_http)
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(30)),
                    )
                    // A registration waits for the store: give up within
                    // seconds, not the default three minutes.
                    .with_retry(RetryConfig {
                        max_retries: 3,
                        retry_timeout: Duration::from_secs(15),
                        ..RetryConfig::default()
                    });
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret);
                }
                Arc::new(builder.build().map_err(StoreError::Open)?)
            }
        };
        Ok(Self { store })
    }

    /// Stores `bytes` under their SHA-256 with their gzip and brotli
    /// variants, each written once; bytes already stored are reused
    /// (after checking the stored size) and nothing is written.
    pub async fn put(&self, bytes: &Bytes) -> Result<Stored, StoreError> {
        let (sha256, integrity) = digest(bytes);
        let size = bytes.len() as u64;
        let key = key(&sha256, Encoding::Identity);
        let stored = |reused| Stored {
            sha256: sha256.clone(),
            integrity: integrity.clone(),
            size,
            reused,
        };

        match self.store.head(&key).await {
            Ok(meta) => {
                check_size(&key, meta.size, size)?;
                return Ok(stored(true));
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(object_error(&key, source)),
        }

        let (gzip, brotli) = tokio::try_join!(
            compress(bytes.clone(), Encoding::Gzip),
            compress(bytes.clone(), Encoding::Brotli),
        )?;
        // The variants first (both at once): a stored bundle always has
        // both.
        tokio::try_join!(
            self.create_variant(&sha256, Encoding::Gzip, gzip),
            self.create_variant(&sha256, Encoding::Brotli, brotli),
        )?;
        match self.create(&key, bytes.clone()).await {
            Ok(()) => Ok(stored(false)),
            // The same bytes, registered at the same time by another.
            Err(object_store::Error::AlreadyExists { .. }) => {
                let meta = self
                    .store
                    .head(&key)
                    .await
                    .map_err(|source| object_error(&key, source))?;
                check_size(&key, meta.size, size)?;
                Ok(stored(true))
            }
            Err(source) => Err(object_error(&key, source)),
        }
    }

    /// The stored variant of the bundle with this SHA-256, if there is
    /// one. `sha256` must be 64 lowercase hex digits.
    pub async fn get(&self, sha256: &str, encoding: Encoding) -> Result<Option<Bytes>, StoreError> {
        if !is_sha256_hex(sha256) {
            return Err(StoreError::BadSha256 {
                given: sha256.chars().take(80).collect(),
            });
        }
        let key = key(sha256, encoding);
        let found = match self.store.get(&key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(object_error(&key, source)),
        };
        found
            .bytes()
            .await
            .map(Some)
            .map_err(|source| object_error(&key, source))
    }

    /// One found already written (by a registration that stopped
    /// half-way, or one running beside this) is as good as ours.
    async fn create_variant(
        &self,
        sha256: &str,
        encoding: Encoding,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let key = key(sha256, encoding);
        match self.create(&key, bytes).await {
            Ok(()) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(source) => Err(object_error(&key, source)),
        }
    }

    async fn create(&self, key: &Key, bytes: Bytes) -> Result<(), object_store::Error> {
        self.store
            .put_opts(key, PutPayload::from(bytes), PutMode::Create.into())
            .await
            .map(drop)
    }
}

/// `sha256/<hex>` plus the variant's suffix. Only ever called with a
/// checked or computed hash: the key can name nothing else.
fn key(sha256: &str, encoding: Encoding) -> Key {
    Key::from(format!("sha256/{sha256}{}", encoding.suffix()))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn check_size(key: &Key, stored: u64, expected: u64) -> Result<(), StoreError> {
    if stored == expected {
        Ok(())
    } else {
        Err(StoreError::SizeMismatch {
            key: key.to_string(),
            stored,
            expected,
        })
    }
}

fn object_error(key: &Key, source: object_store::Error) -> StoreError {
    StoreError::Object {
        key: key.to_string(),
        source,
    }
}

/// Makes `dir` (and missing parents) 0700, or narrows an existing one to
/// its owner: bundles are the service's data, like `DATA_DIR/postgres`.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// One compressed variant, on a blocking thread (tens of milliseconds of
/// CPU for a 500 KB bundle).
async fn compress(bytes: Bytes, encoding: Encoding) -> Result<Bytes, StoreError> {
    let compressed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        match encoding {
            Encoding::Identity => Ok(bytes.to_vec()),
            Encoding::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(bytes.len() / 3),
                    flate2::Compression::best(),
                );
                encoder.write_all(&bytes)?;
                encoder.finish()
            }
            Encoding::Brotli => {
                let params = brotli::enc::BrotliEncoderParams {
                    quality: BROTLI_QUALITY as i32,
                    lgwin: 22,
                    size_hint: bytes.len(),
                    ..Default::default()
                };
                let mut out = Vec::with_capacity(bytes.len() / 3);
                brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
                Ok(out)
            }
        }
    })
    .await
    .map_err(|e| StoreError::Compression(e.to_string()))?;
    compressed
        .map(Bytes::from)
        .map_err(|e| StoreError::Compression(e.to_string()))
}

/// The SHA-256 (lowercase hex) and the SRI `integrity` value
/// (`sha384-<base64>`) of `bytes`.
pub fn digest(bytes: &[u8]) -> (String, String) {
    let sha256 = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in sha256 {
        hex.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    let sri = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(Sha384::digest(bytes))
    );
    (hex, sri)
}

/// The variant to serve for an `Accept-Encoding` header: the acceptable
/// coding with the highest q-value, brotli on a tie (so `gzip, br`
/// gets brotli); `q=0` refuses a coding, `*` stands for those not named.
/// Identity when neither is acceptable (or no header came).
pub fn choose_encoding(accept_encoding: Option<&str>) -> Encoding {
    let Some(header) = accept_encoding else {
        return Encoding::Identity;
    };
    // q-values in thousandths; `None`: not named.
    let (mut br, mut gzip, mut any) = (None::<u16>, None::<u16>, None::<u16>);
    for element in header.split(',') {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = Some(1000);
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = qvalue(value.trim());
            }
        }
        // An element with a malformed q-value is ignored.
        let Some(q) = q else { continue };
        let slot = match coding.as_str() {
            "br" => &mut br,
            "gzip" | "x-gzip" => &mut gzip,
            "*" => &mut any,
            _ => continue,
        };
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    if br == 0 && gzip == 0 {
        Encoding::Identity
    } else if br >= gzip {
        Encoding::Brotli
    } else {
        Encoding::Gzip
    }
}

/// RFC 9110's qvalue (`0`, `0.5`, `1.000`, ...) in thousandths.
fn qvalue(s: &str) -> Option<u16> {
    let (whole, fraction) = s.split_once('.').unwrap_or((s, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn choose_encoding_follows_accept_encoding() {
        use Encoding::*;
        let cases: &[(Option<&str>, Encoding)] = &[
            (None, Identity),
            (Some(""), Identity),
            (Some("identity"), Identity),
            (Some("deflate"), Identity),
            (Some("gzip"), Gzip),
            (Some("x-gzip"), Gzip),
            (Some("br"), Brotli),
            (Some("BR"), Brotli),
            (Some("gzip, deflate, br"), Brotli),
            (Some("gzip, deflate, br, zstd"), Brotli),
            (Some("br;q=1.0, gzip;q=0.8, *;q=0.1"), Brotli),
            (Some("br;q=0, gzip"), Gzip),
            (Some("br; q=0.000, gzip"), Gzip),
            (Some("gzip;q=0, br;q=0"), Identity),
            (Some("gzip;Q=0"), Identity),
            (Some("*"), Brotli),
            (Some("*;q=0"), Identity),
            (Some("gzip, *;q=0"), Gzip),
            (Some("br;q=0, *"), Gzip),
            (Some("br;q=0.5, gzip;q=1"), Gzip),
            (Some("br;q=0.5, gzip;q=0.5"), Brotli),
            (Some("br;q=abc, gzip"), Gzip),
            (Some("br;q=1.5, gzip"), Gzip),
            (Some("br;q=0.0001"), Identity),
            (Some(" , ;, br ;q=0.3 ,"), Brotli),
        ];
        for (header, want) in cases {
            assert_eq!(
                choose_encoding(*header),
                *want,
                "Accept-Encoding: {header:?}"
            );
        }
    }

    #[test]
    fn digest_gives_the_sha256_and_the_sri_value_browsers_check() {
        // sha256sum and `openssl dgst -sha384 -binary | openssl base64 -A`
        // of the same bytes (printf, no newline); the first is also MDN's
        // Subresource Integrity example.
        let cases = [
            (
                "alert('Hello, world.');",
                "ab39cb72c44ec7818008fd9d9b4502282cc21be1e267582eaba6590e86ff4e78",
                "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO",
            ),
            (
                "",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "sha384-OLBgp1GsljhM2TJ+sbHjaiH9txEUvgdDTAzHv2P24donTt6/529l+9Ua0vFImLlb",
            ),
        ];
        for (input, sha256, sri) in cases {
            assert_eq!(
                digest(input.as_bytes()),
                (sha256.to_owned(), sri.to_owned())
            );
        }
    }

    fn config(vars: &[(&str, &str)]) -> Result<StoreConfig, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        StoreConfig::from_env(|name| vars.get(name).cloned(), Path::new("/srv/data"))
    }

    #[test]
    fn the_local_disk_under_data_dir_is_the_default() {
        let local = StoreConfig::Local {
            root: PathBuf::from("/srv/data/bundles"),
        };
        assert_eq!(config(&[]), Ok(local.clone()));
        assert_eq!(config(&[("BUNDLE_STORE", "file")]), Ok(local.clone()));
        assert_eq!(config(&[("BUNDLE_STORE", "  ")]), Ok(local));
    }

    #[test]
    fn an_s3_bucket_takes_its_settings_from_the_environment() {
        assert_eq!(
            config(&[
                ("BUNDLE_STORE", "s3://widget-bundles"),
                ("BUNDLE_S3_ENDPOINT", "http://127.0.0.1:9000/"),
                ("BUNDLE_S3_ACCESS_KEY_ID", "minio"),
                ("BUNDLE_S3_SECRET_ACCESS_KEY", "minio-secret"),
            ]),
            Ok(StoreConfig::S3 {
                bucket: "widget-bundles".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "us-east-1".into(),
                access_key_id: Some("minio".into()),
                secret_access_key: Some("minio-secret".into()),
                allow_http: true,
            })
        );
        assert_eq!(
            config(&[
                ("BUNDLE_STORE", "s3://widget-bundles"),
                ("BUNDLE_S3_REGION", "eu-west-3"),
            ]),
            Ok(StoreConfig::S3 {
                bucket: "widget-bundles".into(),
                endpoint: None,
                region: "eu-west-3".into(),
                access_key_id: None,
                secret_access_key: None,
                allow_http: false,
            })
        );
    }

    #[test]
    fn a_doubtful_store_setting_is_refused() {
        let refused: &[&[(&str, &str)]] = &[
            &[("BUNDLE_STORE", "s3://")],
            &[("BUNDLE_STORE", "s3://b")],
            &[("BUNDLE_STORE", "s3://bucket/prefix")],
            &[("BUNDLE_STORE", "s3://Bucket")],
            &[("BUNDLE_STORE", "gs://bucket")],
            &[("BUNDLE_STORE", "/var/bundles")],
            &[("BUNDLE_S3_ENDPOINT", "http://127.0.0.1:9000")],
            &[("BUNDLE_STORE", "file"), ("BUNDLE_S3_REGION", "eu-west-3")],
            &[
                ("BUNDLE_STORE", "s3://bucket"),
                ("BUNDLE_S3_ACCESS_KEY_ID", "id"),
            ],
            &[
                ("BUNDLE_STORE", "s3://bucket"),
                ("BUNDLE_S3_SECRET_ACCESS_KEY", "secret"),
            ],
            &[
                ("BUNDLE_STORE", "s3://bucket"),
                ("BUNDLE_S3_ENDPOINT", "127.0.0.1:9000"),
            ],
            &[
                ("BUNDLE_STORE", "s3://bucket"),
                ("BUNDLE_S3_ENDPOINT", "http://127.0.0.1:9000"),
                ("BUNDLE_S3_ALLOW_HTTP", "false"),
            ],
            &[
                ("BUNDLE_STORE", "s3://bucket"),
                ("BUNDLE_S3_ALLOW_HTTP", "maybe"),
            ],
        ];
        for vars in refused {
            assert!(config(vars).is_err(), "{vars:?} was accepted");
        }
    }

    #[test]
    fn the_secret_key_is_never_printed() {
        let s3 = config(&[
            ("BUNDLE_STORE", "s3://bucket"),
            ("BUNDLE_S3_ACCESS_KEY_ID", "id"),
            ("BUNDLE_S3_SECRET_ACCESS_KEY", "hunter2-hunter2"),
        ])
        .expect("valid");
        let printed = format!("{s3:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    /// A directory under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("widget-data-store-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn local(dir: &TempDir) -> Blobs {
        Blobs::open(&StoreConfig::Local {
            root: dir.0.join("bundles"),
        })
        .expect("a local store opens")
    }

    /// Some JavaScript that compresses.
    fn bundle(marker: &str) -> Bytes {
        let mut js = format!("/* {marker} */\n");
        js.push_str(&"export const widget = () => fetch('/x');\n".repeat(500));
        Bytes::from(js)
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    fn unbrotli(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(bytes, 4096)
            .read_to_end(&mut out)
            .expect("valid brotli");
        out
    }

    #[tokio::test]
    async fn a_bundle_and_its_variants_round_trip_on_the_local_disk() {
        let dir = TempDir::new("round-trip");
        let blobs = local(&dir);
        let bytes = bundle("round trip");
        let stored = blobs.put(&bytes).await.expect("stored");
        let (sha256, integrity) = digest(&bytes);
        assert_eq!(
            stored,
            Stored {
                sha256: sha256.clone(),
                integrity,
                size: bytes.len() as u64,
                reused: false,
            }
        );
        let get = |encoding| blobs.get(&sha256, encoding);
        assert_eq!(get(Encoding::Identity).await.unwrap(), Some(bytes.clone()));
        let gzip = get(Encoding::Gzip).await.unwrap().expect("a gzip variant");
        let brotli = get(Encoding::Brotli)
            .await
            .unwrap()
            .expect("a brotli variant");
        assert!(gzip.len() < bytes.len() / 4 && brotli.len() < bytes.len() / 4);
        assert_eq!(gunzip(&gzip), bytes);
        assert_eq!(unbrotli(&brotli), bytes);
        assert!(dir.0.join("bundles/sha256").join(&sha256).is_file());

        let unknown = digest(b"never stored").0;
        assert_eq!(blobs.get(&unknown, Encoding::Identity).await.unwrap(), None);
        assert_eq!(blobs.get(&unknown, Encoding::Brotli).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_same_bytes_stored_twice_reuse_the_first_blobs() {
        let dir = TempDir::new("reuse");
        let blobs = local(&dir);
        let bytes = bundle("reuse");
        let first = blobs.put(&bytes).await.expect("stored");
        let files = |sha: &str| {
            ["", ".gz", ".br"].map(|suffix| {
                let meta = std::fs::metadata(dir.0.join(format!("bundles/sha256/{sha}{suffix}")))
                    .expect("stored");
                (meta.ino(), meta.mtime_nsec(), meta.mtime(), meta.len())
            })
        };
        let before = files(&first.sha256);
        std::thread::sleep(Duration::from_millis(20));

        let second = blobs.put(&bytes).await.expect("stored again");
        assert!(!first.reused && second.reused);
        assert_eq!(
            Stored {
                reused: false,
                ..second
            },
            first
        );
        assert_eq!(files(&first.sha256), before, "nothing was rewritten");
        // Only the three blobs: no staging files left behind.
        assert_eq!(
            std::fs::read_dir(dir.0.join("bundles/sha256"))
                .unwrap()
                .count(),
            3
        );
    }

    #[tokio::test]
    async fn a_put_that_stopped_after_its_variants_is_finished_by_the_next() {
        let dir = TempDir::new("half-way");
        let blobs = local(&dir);
        let bytes = bundle("half way");
        let sha256 = blobs.put(&bytes).await.expect("stored").sha256;
        std::fs::remove_file(dir.0.join("bundles/sha256").join(&sha256)).unwrap();

        let again = blobs.put(&bytes).await.expect("stored again");
        assert!(!again.reused);
        assert_eq!(
            blobs.get(&sha256, Encoding::Identity).await.unwrap(),
            Some(bytes)
        );
    }

    #[tokio::test]
    async fn a_stored_blob_of_the_wrong_size_is_reported_and_left_alone() {
        let dir = TempDir::new("wrong-size");
        let blobs = local(&dir);
        let bytes = bundle("wrong size");
        let sha256 = digest(&bytes).0;
        let path = dir.0.join("bundles/sha256").join(&sha256);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"tampered").unwrap();

        let err = blobs.put(&bytes).await.expect_err("a size mismatch");
        assert!(
            matches!(err, StoreError::SizeMismatch { stored: 8, .. }),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"tampered");
    }

    #[tokio::test]
    async fn get_refuses_anything_but_a_lowercase_hex_sha256() {
        let dir = TempDir::new("bad-sha");
        let blobs = local(&dir);
        let sha256 = blobs.put(&bundle("bad sha")).await.expect("stored").sha256;
        let bad = [
            String::new(),
            sha256.to_uppercase(),
            sha256[..63].to_owned(),
            format!("{sha256}0"),
            format!("../{}", &sha256[3..]),
            format!("{}/..", &sha256[..61]),
            format!("{}%2F", &sha256[..61]),
            format!("{}.gz", &sha256[..61]),
            "g".repeat(64),
            "é".repeat(32),
        ];
        for given in bad {
            for encoding in [Encoding::Identity, Encoding::Gzip, Encoding::Brotli] {
                let result = blobs.get(&given, encoding).await;
                assert!(
                    matches!(result, Err(StoreError::BadSha256 { .. })),
                    "{given:?}: {result:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_local_directory_is_private_to_the_service() {
        let dir = TempDir::new("private");
        let root = dir.0.join("data/bundles");
        Blobs::open(&StoreConfig::Local { root: root.clone() }).expect("opens");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);

        // One made before, readable by all, is narrowed.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Blobs::open(&StoreConfig::Local { root: root.clone() }).expect("opens");
        assert_eq!(mode(&root), 0o700);
    }
}
