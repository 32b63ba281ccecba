//! HTML written inside a bundle's string literals (`el.innerHTML =
//! '<form action=…>'`, `document.write('<script src=…>')`): the tags and
//! attributes the analysis cares about. Pure. A tolerant scanner, not an
//! HTML parser: it reads what a browser would read from well-formed markup
//! and never fails on the rest.

/// Stands for a template literal's `${…}` in the text handed to [`scan`]:
/// whatever follows it is computed at run time.
pub const HOLE: char = '\u{FFFF}';

/// One thing in the markup that a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Markup {
    /// `<input type="password">`.
    PasswordInput,
    /// `<form action=…>`, or `formaction=…` on a button or input: where a
    /// submitted form goes. `complete` is false when the URL's end is
    /// computed at run time.
    FormAction { url: String, complete: bool },
    /// `src=…` on `<script>`, `<img>` or `<iframe>`: a request the browser
    /// makes as soon as the markup is inserted.
    Source {
        tag: String,
        url: String,
        complete: bool,
    },
}

/// Everything of interest in `text`, in order.
pub fn scan(text: &str) -> Vec<Markup> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find('<') {
        let name_start = at + offset + 1;
        let name_len = text[name_start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
            .count();
        let name_end = name_start + name_len;
        let tag = text[name_start..name_end].to_ascii_lowercase();
        if !matches!(
            tag.as_str(),
            "input" | "form" | "button" | "script" | "img" | "iframe"
        ) {
            at = name_end;
            continue;
        }
        let (attributes, end) = attributes(text, name_end);
        at = end;
        for attribute in attributes {
            let markup = match (tag.as_str(), attribute.name.as_str()) {
                ("input", "type") if attribute.value.trim().eq_ignore_ascii_case("password") => {
                    Markup::PasswordInput
                }
                ("form", "action") | ("button" | "input", "formaction") => Markup::FormAction {
                    url: attribute.value,
                    complete: attribute.complete,
                },
                ("script" | "img" | "iframe", "src") => Markup::Source {
                    tag: tag.clone(),
                    url: attribute.value,
                    complete: attribute.complete,
                },
                _ => continue,
            };
            found.push(markup);
        }
    }
    found
}

struct Attribute {
    /// Lowercased.
    name: String,
    /// With character references decoded; cut at a [`HOLE`].
    value: String,
    /// False when the value runs into a [`HOLE`] or the end of the text.
    complete: bool,
}

/// The attributes of a start tag whose name ends at `at`, and where the tag
/// ends.
fn attributes(text: &str, mut at: usize) -> (Vec<Attribute>, usize) {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let is_space = |b: u8| b.is_ascii_whitespace();
    loop {
        while at < bytes.len() && (is_space(bytes[at]) || bytes[at] == b'/') {
            at += 1;
        }
        match bytes.get(at) {
            None => return (found, at),
            Some(b'>') => return (found, at + 1),
            Some(_) => {}
        }
        let name_len = text[at..]
            .bytes()
            .take_while(|&b| !is_space(b) && !matches!(b, b'=' | b'>' | b'/'))
            .count()
            .max(1);
        // A name may start with `=` or hold any character; step by whole
        // characters so every slice stays on a boundary.
        let name_end = ceil_char_boundary(text, at + name_len);
        let name = text[at..name_end].to_ascii_lowercase();
        at = name_end;
        while at < bytes.len() && is_space(bytes[at]) {
            at += 1;
        }
        if bytes.get(at) != Some(&b'=') {
            found.push(Attribute {
                name,
                value: String::new(),
                complete: true,
            });
            continue;
        }
        at += 1;
        while at < bytes.len() && is_space(bytes[at]) {
            at += 1;
        }
        let (raw, complete) = match bytes.get(at) {
            Some(&quote @ (b'"' | b'\'')) => match text[at + 1..].find(quote as char) {
                Some(len) => {
                    let raw = &text[at + 1..at + 1 + len];
                    at += len + 2;
                    (raw, true)
                }
                None => {
                    let raw = &text[at + 1..];
                    at = bytes.len();
                    (raw, false)
                }
            },
            _ => {
                let len = text[at..]
                    .bytes()
                    .take_while(|&b| !is_space(b) && b != b'>')
                    .count();
                let raw = &text[at..at + len];
                at += len;
                (raw, at < bytes.len())
            }
        };
        let (raw, complete) = match raw.find(HOLE) {
            Some(hole) => (&raw[..hole], false),
            None => (raw, complete),
        };
        found.push(Attribute {
            name,
            value: decode_references(raw),
            complete,
        });
    }
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// Numeric character references and the few named ones that spell a URL
/// (`&colon;`, `&sol;`, …), which a browser decodes in attribute values
/// and which would otherwise hide a host from the scan.
fn decode_references(raw: &str) -> String {
    if !raw.contains('&') {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        match reference(rest) {
            Some((decoded, len)) => {
                out.push(decoded);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The character a reference at the start of `text` stands for and its
/// length, the `;` included when present.
fn reference(text: &str) -> Option<(char, usize)> {
    let body = &text[1..];
    let (digits, radix, skip) =
        if let Some(hex) = body.strip_prefix("#x").or_else(|| body.strip_prefix("#X")) {
            (hex, 16, 3)
        } else if let Some(dec) = body.strip_prefix('#') {
            (dec, 10, 2)
        } else {
            const NAMED: &[(&str, char)] = &[
                ("amp;", '&'),
                ("colon;", ':'),
                ("sol;", '/'),
                ("bsol;", '\\'),
                ("period;", '.'),
                ("quot;", '"'),
                ("apos;", '\''),
                ("commat;", '@'),
                ("quest;", '?'),
                ("num;", '#'),
            ];
            return NAMED
                .iter()
                .find(|(name, _)| body.starts_with(name))
                .map(|(name, c)| (*c, name.len() + 1));
        };
    let len = digits
        .bytes()
        .take_while(|b| (*b as char).is_digit(radix))
        .count();
    if len == 0 {
        return None;
    }
    let code = u32::from_str_radix(&digits[..len.min(8)], radix).ok()?;
    let decoded = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
    let semicolon = usize::from(digits[len..].starts_with(';'));
    Some((decoded, skip + len + semicolon))
}
