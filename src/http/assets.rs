//! The pages' files (`src/http/pages/`): three HTML documents and the
//! modules, styles and icons they load, each asset served under a name
//! that holds its content hash, so browsers may keep it forever.
//!
//! Pure: takes the files' names and bytes, gives the served set. A page or
//! an asset refers to an asset as `/assets/<name>` (HTML, CSS) or as
//! `'./<name>'` (a module's static import); both are rewritten to the
//! hashed name. A file's hash covers its rewritten text, so it changes
//! whenever anything it loads changes. References must not form a cycle.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The documents served at routes rather than as assets.
pub const PAGES: [(&str, &str); 3] = [
    ("/", "index.html"),
    ("/playground", "playground.html"),
    ("/admin", "admin.html"),
];

/// Hex digits of the SHA-256 kept in a hashed name.
const HASH_LEN: usize = 12;

/// One served file, with its compressed variants.
#[derive(Debug)]
pub struct File {
    pub content_type: &'static str,
    pub identity: Bytes,
    pub gzip: Bytes,
    pub brotli: Bytes,
    /// Quoted, for `ETag`.
    pub etag: String,
}

/// What the pages need served.
#[derive(Debug, Default)]
pub struct Site {
    /// By route (`/`, `/playground`, `/admin`).
    pub pages: HashMap<&'static str, File>,
    /// By hashed name (`dashboard-0123456789ab.js`).
    pub assets: HashMap<String, File>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SiteError {
    #[error("{0} is missing")]
    MissingPage(&'static str),
    #[error("{file} refers to {reference}, which is not among the pages' files")]
    Unresolved { file: String, reference: String },
    #[error("the pages' files refer to each other in a cycle through {0}")]
    Cycle(String),
    #[error("{0}: not a file name the pages may use (letters, digits, '-', '_', one '.')")]
    BadName(String),
}

impl Site {
    /// Builds the served set from the pages' directory's files.
    pub fn build(files: BTreeMap<String, Vec<u8>>) -> Result<Self, SiteError> {
        for name in files.keys() {
            if !plain_name(name) {
                return Err(SiteError::BadName(name.clone()));
            }
        }
        let mut hashed: HashMap<String, String> = HashMap::new();
        let mut rewritten: HashMap<String, Vec<u8>> = HashMap::new();
        let mut visiting = Vec::new();
        for name in files.keys() {
            resolve(name, &files, &mut hashed, &mut rewritten, &mut visiting)?;
        }
        let mut site = Site::default();
        for (route, page) in PAGES {
            let body = rewritten.remove(page).ok_or(SiteError::MissingPage(page))?;
            site.pages.insert(route, File::new(page, body));
        }
        for (name, body) in rewritten {
            let served = hashed[&name].clone();
            site.assets.insert(served, File::new(&name, body));
        }
        Ok(site)
    }

    /// Every asset's bytes of the given type, uncompressed and gzipped.
    pub fn total(&self, content_type: &str) -> (usize, usize) {
        self.assets
            .values()
            .filter(|f| f.content_type == content_type)
            .fold((0, 0), |(raw, gz), f| {
                (raw + f.identity.len(), gz + f.gzip.len())
            })
    }
}

impl File {
    fn new(name: &str, body: Vec<u8>) -> Self {
        let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..HASH_LEN * 2]);
        let gzip = compress_gzip(&body);
        let brotli = compress_brotli(&body);
        Self {
            content_type: content_type(name),
            identity: Bytes::from(body),
            gzip: Bytes::from(gzip),
            brotli: Bytes::from(brotli),
            etag,
        }
    }
}

/// Rewrites `name`'s references (after its dependencies') and records its
/// hashed name.
fn resolve(
    name: &str,
    files: &BTreeMap<String, Vec<u8>>,
    hashed: &mut HashMap<String, String>,
    rewritten: &mut HashMap<String, Vec<u8>>,
    visiting: &mut Vec<String>,
) -> Result<(), SiteError> {
    if hashed.contains_key(name) {
        return Ok(());
    }
    if visiting.iter().any(|v| v == name) {
        return Err(SiteError::Cycle(name.to_owned()));
    }
    let body = &files[name];
    let text = String::from_utf8_lossy(body);
    let textual = is_text(name);
    let mut out = textual.then(|| text.clone().into_owned());
    if let Some(out) = out.as_mut() {
        for reference in references(&text) {
            let Some(target) = files.keys().find(|k| k.as_str() == reference.name) else {
                return Err(SiteError::Unresolved {
                    file: name.to_owned(),
                    reference: reference.written,
                });
            };
            if PAGES.iter().any(|(_, page)| page == target) {
                return Err(SiteError::Unresolved {
                    file: name.to_owned(),
                    reference: reference.written,
                });
            }
            visiting.push(name.to_owned());
            let resolved = resolve(target, files, hashed, rewritten, visiting);
            visiting.pop();
            resolved?;
            let replacement = reference
                .written
                .replacen(&reference.name, &hashed[target], 1);
            *out = out.replace(&reference.written, &replacement);
        }
    }
    let bytes = out.map(String::into_bytes).unwrap_or_else(|| body.clone());
    let digest = hex(&Sha256::digest(&bytes));
    let served = match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}-{}.{ext}", &digest[..HASH_LEN]),
        None => format!("{name}-{}", &digest[..HASH_LEN]),
    };
    hashed.insert(name.to_owned(), served);
    rewritten.insert(name.to_owned(), bytes);
    Ok(())
}

/// One reference as written (with its delimiters, so that replacing it
/// touches nothing else) and the file it names.
struct Reference {
    written: String,
    name: String,
}

/// `/assets/<name>` followed by a quote or `)`, and `'./<name>'` or
/// `"./<name>"`.
fn references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut push = |written: String, name: &str| {
        if seen.insert(written.clone()) {
            found.push(Reference {
                written,
                name: name.to_owned(),
            });
        }
    };
    for (at, _) in text.match_indices("/assets/") {
        let rest = &text[at + "/assets/".len()..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(rest.len());
        let end = rest[len..].chars().next();
        if len > 0 && matches!(end, Some('"' | '\'' | ')')) {
            let name = &rest[..len];
            push(format!("/assets/{name}{}", end.unwrap_or('"')), name);
        }
    }
    for quote in ['\'', '"'] {
        let open = format!("{quote}./");
        for (at, _) in text.match_indices(&open) {
            let rest = &text[at + open.len()..];
            if let Some(len) = rest.find(quote) {
                let name = &rest[..len];
                if plain_name(name) {
                    push(format!("{quote}./{name}{quote}"), name);
                }
            }
        }
    }
    found
}

fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.matches('.').count() == 1
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_text(name: &str) -> bool {
    matches!(
        name.rsplit_once('.').map(|(_, ext)| ext),
        Some("html" | "js" | "css" | "svg" | "json" | "txt")
    )
}

pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn compress_gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

fn compress_brotli(body: &[u8]) -> Vec<u8> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 9,
        lgwin: 22,
        size_hint: body.len(),
        ..Default::default()
    };
    let mut out = Vec::new();
    let _ = brotli::BrotliCompress(&mut &body[..], &mut out, &params);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        list.iter()
            .map(|(n, b)| (n.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    fn pages_with(index: &str, rest: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        let mut all = vec![
            ("index.html", index),
            ("playground.html", "<p>play</p>"),
            ("admin.html", "<p>admin</p>"),
        ];
        all.extend_from_slice(rest);
        files(&all)
    }

    fn page(site: &Site, route: &str) -> String {
        String::from_utf8(site.pages[route].identity.to_vec()).unwrap()
    }

    /// The asset made from `stem.ext`: its served name and text.
    fn asset<'s>(site: &'s Site, stem: &str, ext: &str) -> (&'s String, String) {
        let (name, file) = site
            .assets
            .iter()
            .find(|(n, _)| n.starts_with(&format!("{stem}-")) && n.ends_with(&format!(".{ext}")))
            .unwrap();
        (name, String::from_utf8(file.identity.to_vec()).unwrap())
    }

    #[test]
    fn references_are_rewritten_to_hashed_names_through_imports() {
        let site = Site::build(pages_with(
            r#"<script type="module" src="/assets/app.js"></script><link href='/assets/app.css'>"#,
            &[
                ("app.js", "import { x } from './lib.js';\nx();"),
                ("lib.js", "export const x = () => 1;"),
                ("app.css", "body { background: url(/assets/dot.svg) }"),
                ("dot.svg", "<svg/>"),
            ],
        ))
        .unwrap();
        let (app, app_text) = asset(&site, "app", "js");
        let (lib, _) = asset(&site, "lib", "js");
        let (dot, _) = asset(&site, "dot", "svg");
        assert!(app.ends_with(".js") && app.len() == "app-.js".len() + HASH_LEN);
        assert!(app_text.contains(&format!("from './{lib}'")), "{app_text}");
        let index = page(&site, "/");
        assert!(index.contains(&format!("src=\"/assets/{app}\"")), "{index}");
        let (_, css_text) = asset(&site, "app", "css");
        assert!(
            css_text.contains(&format!("url(/assets/{dot})")),
            "{css_text}"
        );
    }

    #[test]
    fn a_change_in_an_imported_module_changes_its_importers_name() {
        let build = |lib: &str| {
            let site = Site::build(pages_with(
                "",
                &[("app.js", "import './lib.js';"), ("lib.js", lib)],
            ))
            .unwrap();
            asset(&site, "app", "js").0.clone()
        };
        assert_ne!(build("export const a = 1;"), build("export const a = 2;"));
    }

    #[test]
    fn unknown_references_cycles_and_missing_pages_are_errors() {
        assert_eq!(
            Site::build(pages_with(
                r#"<script src="/assets/gone.js"></script>"#,
                &[]
            ))
            .unwrap_err(),
            SiteError::Unresolved {
                file: "index.html".into(),
                reference: "/assets/gone.js\"".into()
            }
        );
        assert!(matches!(
            Site::build(pages_with(
                "",
                &[("a.js", "import './b.js';"), ("b.js", "import './a.js';")]
            )),
            Err(SiteError::Cycle(_))
        ));
        assert_eq!(
            Site::build(files(&[("index.html", ""), ("admin.html", "")])).unwrap_err(),
            SiteError::MissingPage("playground.html")
        );
        assert!(matches!(
            Site::build(pages_with("", &[("a.b.js", "")])),
            Err(SiteError::BadName(_))
        ));
    }
}
