//! Bundle storage's S3 backend against a real S3-compatible server:
//! `moto_server` (PyPI `moto[server]`), named by `WIDGET_DATA_S3_SERVER`
//! and started here on a free loopback port. `.ci/run` installs it and
//! sets the variable. Without it the test is skipped, except under CI
//! (`CI` set), where a missing server fails it.

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use widget_data::bundles::store::{Blobs, Encoding, StoreConfig, StoreError, digest};

const SERVER_VAR: &str = "WIDGET_DATA_S3_SERVER";
const BUCKET: &str = "widget-bundles";

/// A moto_server of the test's own, killed on drop.
struct S3Server {
    _child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl S3Server {
    /// `None`: no server named and not under CI, so the test is skipped.
    async fn start() -> Option<Self> {
        let Some(bin) = std::env::var_os(SERVER_VAR).filter(|v| !v.is_empty()) else {
            assert!(
                std::env::var_os("CI").is_none_or(|v| v.is_empty()),
                "CI is set but {SERVER_VAR} is not: the S3 backend must be tested \
                 (.ci/run installs moto_server and sets it)"
            );
            eprintln!("skipped: set {SERVER_VAR} to a moto_server to test the S3 backend");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::env::temp_dir().join(format!(
            "widget-data-s3-server-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log).expect("a log file");
        let mut child = tokio::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("the log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", PathBuf::from(&bin).display()));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = child.try_wait().expect("the server's status") {
                panic!("the S3 server exited ({status}):\n{}", log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the S3 server did not listen within 60 s:\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Self {
            _child: child,
            port,
            log,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `PUT /<bucket>`: moto takes an unsigned request for this.
    async fn create_bucket(&self, bucket: &str) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("the server");
        let request = format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).await.expect("sent");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("an answer");
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "creating the bucket: {response}\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// The store as the service configures it from its environment.
    fn config(&self, bucket: &str) -> StoreConfig {
        let endpoint = self.endpoint();
        let vars = [
            ("BUNDLE_STORE", format!("s3://{bucket}")),
            ("BUNDLE_S3_ENDPOINT", endpoint),
            ("BUNDLE_S3_ACCESS_KEY_ID", "widget-data-test".to_owned()),
            (
                "BUNDLE_S3_SECRET_ACCESS_KEY",
                "widget-data-test-secret".to_owned(),
            ),
        ];
        StoreConfig::from_env(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            },
            std::path::Path::new("/nonexistent"),
        )
        .expect("a valid S3 configuration")
    }

    /// A client of our own, to look at the bucket behind the store's back.
    fn raw(&self, bucket: &str) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_access_key_id("widget-data-test")
            .with_secret_access_key("widget-data-test-secret")
            .build()
            .expect("a client")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn bundle() -> Bytes {
    let mut js = String::from("/* a widget for the S3 test */\n");
    js.push_str(&"export function tick(n) { return n + 1; }\n".repeat(400));
    Bytes::from(js)
}

#[tokio::test]
async fn bundles_are_stored_once_in_a_real_s3_compatible_server() {
    let Some(server) = S3Server::start().await else {
        return;
    };
    server.create_bucket(BUCKET).await;
    let config = server.config(BUCKET);
    assert!(
        matches!(
            config,
            StoreConfig::S3 {
                allow_http: true,
                ..
            }
        ),
        "{config:?}"
    );
    let blobs = Blobs::open(&config).expect("the S3 store opens");
    let raw = server.raw(BUCKET);
    let bytes = bundle();
    let (sha256, integrity) = digest(&bytes);

    // First registration: written, with both variants.
    let first = blobs.put(&bytes).await.expect("stored");
    assert_eq!(
        (&first.sha256, &first.integrity, first.size, first.reused),
        (&sha256, &integrity, bytes.len() as u64, false)
    );
    assert_eq!(
        blobs.get(&sha256, Encoding::Identity).await.unwrap(),
        Some(bytes.clone())
    );
    let gzip = blobs
        .get(&sha256, Encoding::Gzip)
        .await
        .unwrap()
        .expect("gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..])
        .read_to_end(&mut unzipped)
        .expect("valid gzip");
    assert_eq!(unzipped, bytes);
    let br = blobs
        .get(&sha256, Encoding::Brotli)
        .await
        .unwrap()
        .expect("br");
    let mut unbrotlied = Vec::new();
    brotli::Decompressor::new(&br[..], 4096)
        .read_to_end(&mut unbrotlied)
        .expect("valid brotli");
    assert_eq!(unbrotlied, bytes);
    assert!(gzip.len() < bytes.len() / 4 && br.len() < bytes.len() / 4);

    // The bucket holds exactly the three content-addressed objects.
    let keys = ["", ".gz", ".br"].map(|suffix| Key::from(format!("sha256/{sha256}{suffix}")));
    let mut heads = Vec::new();
    for key in &keys {
        let meta = raw.head(key).await.expect("stored under its hash");
        heads.push((meta.size, meta.e_tag, meta.last_modified));
    }

    // The server refuses to overwrite, which is what "written once" rests on.
    let overwrite = raw
        .put_opts(
            &keys[0],
            Bytes::from_static(b"switched").into(),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(overwrite, Err(object_store::Error::AlreadyExists { .. })),
        "{overwrite:?}"
    );

    // Second registration of the same bytes: reused, nothing rewritten
    // (S3's Last-Modified has whole seconds: wait past one).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = blobs.put(&bytes).await.expect("stored again");
    assert!(second.reused);
    assert_eq!(
        (second.sha256, second.integrity),
        (sha256.clone(), integrity)
    );
    for (key, before) in keys.iter().zip(&heads) {
        let meta = raw.head(key).await.expect("still there");
        assert_eq!(
            &(meta.size, meta.e_tag, meta.last_modified),
            before,
            "{key}"
        );
    }
    assert_eq!(
        blobs.get(&sha256, Encoding::Identity).await.unwrap(),
        Some(bytes)
    );

    // Unknown and malformed hashes.
    let unknown = digest(b"never stored").0;
    assert_eq!(blobs.get(&unknown, Encoding::Gzip).await.unwrap(), None);
    assert!(matches!(
        blobs.get("../../etc/passwd", Encoding::Identity).await,
        Err(StoreError::BadSha256 { .. })
    ));

    // A bucket that does not exist is an error, not a hang or a panic.
    let missing = Blobs::open(&server.config("no-such-bucket")).expect("opens lazily");
    let err = missing
        .put(&Bytes::from_static(b"x"))
        .await
        .expect_err("no bucket");
    assert!(matches!(err, StoreError::Object { .. }), "{err}");
}
