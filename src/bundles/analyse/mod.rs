//! Static analysis of a widget bundle at registration (issue 12, item 6):
//! takes the bundle's JavaScript and the network hosts its developer
//! declared; gives [`Finding`]s, each a [`Rule`], a [`Severity`] and a
//! 1-based position. Pure: no I/O, no clock, no state kept between calls;
//! any input, however broken or deeply nested, gives findings and never a
//! panic or a crash. CPU-bound (about 50 ms for 500 KB in a release build),
//! so an async caller runs it under `spawn_blocking`; it does its work on a
//! thread of its own whose stack fits the input (`guard.rs` says why).
//!
//! oxc parses the bundle (as a module if it uses `import`/`export`, as a
//! classic script otherwise) and resolves its scopes, so `parent` the
//! function parameter is not mistaken for `parent` the frame, nor a local
//! `fetch` for the browser's. One pass over the syntax tree then applies
//! the rules below (`rules.rs`), reading literal URLs and markup
//! (`destination.rs`, `markup.rs`) and following constants and aliases such
//! as `const API = 'https://…'` or `const s = document.createElement('script')`
//! (`values.rs`).
//!
//! | rule | severity | fires on |
//! |---|---|---|
//! | `parse_error` | high | a bundle that is not valid JavaScript, or that could not be analysed: a browser would not run it, and nothing here can vouch for it |
//! | `network_undeclared_host` | high | `fetch` (of a URL or a `new Request`), `XMLHttpRequest#open`, `WebSocket`, `EventSource`, `navigator.sendBeacon`, `import()`/`import … from`, `importScripts`, `window.open`, a `src` set on an element (property, `setAttribute`, `{src: …}` props, `<script|img|iframe src>` markup) to a literal URL whose host is not declared |
//! | `network_unknown_destination` | medium | the same calls with a URL computed at run time (for `src`, only on a `<script>`; for `action`, only on a known `<form>`) |
//! | `sandbox_escape` | high | `top`, `parent`, `opener`, `frameElement` (bare or on `window`/`self`/`globalThis`/`frames`), `document.cookie`, `document.domain` |
//! | `cross_frame_message` | low | `postMessage` on `parent`/`top`/`opener`: the channel a sandboxed widget is meant to use, noted for the reviewer |
//! | `eval` | high | any reference to the global `eval`; `setTimeout`/`setInterval` with a string |
//! | `new_function` | high | `new Function(…)`, `Function(…)` |
//! | `password_input` | high | `type = "password"` set by property, `setAttribute` or `{type: "password"}` props, or `<input type=password>` markup |
//! | `external_form_post` | high | a form `action`/`formAction` (property, `setAttribute`, props, markup) to a literal URL whose host is not declared |
//!
//! Why these severities: a high finding holds the version in `pending` for
//! a person, so high is kept for what a person must see before users run
//! the code. Data sent to a host nobody declared is the bait-and-switch the
//! proxy exists to stop; `eval` and `new Function` run code that was never
//! reviewed; reaching the embedding page breaks the iframe's sandbox;
//! password fields and forms posting elsewhere are the shape of phishing.
//! A destination computed at run time is medium: it is how most API
//! clients are written (`fetch(base + path)`), so holding every such bundle
//! would make review the bottleneck the seed warns of, yet the reviewer
//! should know the analysis could not see where it goes. `postMessage` to
//! the parent is low: it is the sanctioned way out of a sandboxed frame.
//!
//! Destinations. A relative URL (`/api`, `api/x`, `?q=1`) goes to the
//! origin of the page running the widget, which this service serves, not
//! to a third party, so it is not reported; nor are `data:`, `blob:` and
//! the other schemes that never leave the browser. A URL whose host the
//! source fixes (`'https://h/x'`, `` `https://h/${id}` ``, `'https://h/?q=' + q`,
//! `` `${API}/x` `` with `const API = 'https://h'`, `new URL('/x', 'https://h')`)
//! is checked against the declared hosts (see `destination::DeclaredHosts`
//! for their syntax); anything else is an unknown destination. A prefix
//! decides only once the host is finished: `'https://h' + x` could still
//! be `https://h.evil.example`.
//!
//! Limits: this is a tripwire and a reviewer's map, not a proof. Code that
//! builds names at run time (`window['ev' + 'al']`), aliases the globals
//! through functions, or fetches code and runs it some other way gets past
//! it; the review and the re-verification of the origin are the other
//! layers. At most [`MAX_FINDINGS_PER_RULE`] findings of each rule are kept
//! (the first in source order), so a hostile bundle cannot blow up the
//! stored row.

mod destination;
mod guard;
mod markup;
mod rules;
#[cfg(test)]
mod tests;
mod values;

use std::collections::HashMap;

use oxc_allocator::Allocator;
use oxc_ast_visit::Visit;
use oxc_parser::{Parser, ParserReturn};
use oxc_semantic::SemanticBuilder;
use oxc_span::SourceType;
use serde::{Deserialize, Serialize};

use destination::DeclaredHosts;
use rules::Analyser;

/// One thing the analysis found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// 1-based line of the construct's start (`\n`, `\r\n`, `\r`, U+2028
    /// and U+2029 end lines, as in JavaScript).
    pub line: u32,
    /// 1-based column, in UTF-16 code units as browsers' developer tools
    /// count them.
    pub column: u32,
    /// For the reviewer: what was found, and where it goes.
    pub message: String,
}

impl Finding {
    /// A high finding keeps the version `pending` for review.
    pub fn is_high(&self) -> bool {
        self.severity == Severity::High
    }
}

/// Whether any finding keeps the version `pending` for review.
pub fn has_high(findings: &[Finding]) -> bool {
    findings.iter().any(Finding::is_high)
}

/// What a finding is about. The module documentation says what each fires
/// on and why it has its severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Not valid JavaScript, or too deeply nested to analyse.
    ParseError,
    /// A request to a literal URL whose host was not declared.
    NetworkUndeclaredHost,
    /// A request whose URL is computed at run time.
    NetworkUnknownDestination,
    /// Reaching the embedding page: `top`, `parent`, `opener`,
    /// `frameElement`, `document.cookie`, `document.domain`.
    SandboxEscape,
    /// `postMessage` to the parent, top or opener window.
    CrossFrameMessage,
    /// `eval`, or a timer given a string.
    Eval,
    /// `new Function(…)` or `Function(…)`.
    NewFunction,
    /// A password field.
    PasswordInput,
    /// A form that submits to a host that was not declared.
    ExternalFormPost,
}

impl Rule {
    pub const fn severity(self) -> Severity {
        match self {
            Rule::CrossFrameMessage => Severity::Low,
            Rule::NetworkUnknownDestination => Severity::Medium,
            Rule::ParseError
            | Rule::NetworkUndeclaredHost
            | Rule::SandboxEscape
            | Rule::Eval
            | Rule::NewFunction
            | Rule::PasswordInput
            | Rule::ExternalFormPost => Severity::High,
        }
    }
}

/// How much a finding matters: a high one holds the version for review.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

/// Findings kept of each rule, the first in source order.
pub const MAX_FINDINGS_PER_RULE: usize = 50;

/// The findings of `source`, in source order. `declared_hosts` are the
/// hosts the developer declared the bundle talks to.
pub fn analyse(source: &str, declared_hosts: &[String]) -> Vec<Finding> {
    let declared = DeclaredHosts::new(declared_hosts);
    let hits = match guard::run(source, |source| hits(source, &declared)) {
        Some(hits) => hits,
        None => vec![Hit {
            offset: 0,
            rule: Rule::ParseError,
            message: "the bundle could not be analysed".to_owned(),
        }],
    };
    locate(source, hits)
}

/// A finding before its offset becomes a line and column.
#[derive(Debug)]
struct Hit {
    offset: u32,
    rule: Rule,
    message: String,
}

fn hits(source: &str, declared: &DeclaredHosts) -> Vec<Hit> {
    let allocator = Allocator::default();
    let parsed = parse(&allocator, source);
    let mut hits = Vec::new();
    if let Some(first) = parsed.errors.first() {
        let offset = first
            .labels
            .as_ref()
            .and_then(|labels| labels.first())
            .map_or(0, |label| u32::try_from(label.offset()).unwrap_or(u32::MAX));
        let more = match parsed.errors.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more syntax errors)"),
        };
        hits.push(Hit {
            offset,
            rule: Rule::ParseError,
            message: format!("not valid JavaScript: {}{more}", first.message),
        });
    }
    if parsed.panicked {
        return hits;
    }
    // What the parser recovered is still worth a look: the reviewer sees
    // what the broken bundle was trying to do.
    let semantic = SemanticBuilder::new().build(&parsed.program).semantic;
    let mut analyser = Analyser::new(semantic.scoping(), semantic.nodes(), declared, hits);
    analyser.visit_program(&parsed.program);
    analyser.finish()
}

/// As a module when that parses (`import`/`export` decide, as for a
/// `<script type=module>`); else as a classic script, which also admits
/// sloppy-mode code. The first attempt's errors are the ones reported.
fn parse<'a>(allocator: &'a Allocator, source: &'a str) -> ParserReturn<'a> {
    let unambiguous = Parser::new(allocator, source, SourceType::unambiguous()).parse();
    if unambiguous.errors.is_empty() {
        return unambiguous;
    }
    let script = Parser::new(allocator, source, SourceType::script()).parse();
    if script.errors.is_empty() {
        script
    } else {
        unambiguous
    }
}

/// Lines and columns for `hits`, sorted by position and capped per rule.
fn locate(source: &str, mut hits: Vec<Hit>) -> Vec<Finding> {
    hits.sort_by_key(|hit| hit.offset);
    let mut kept: HashMap<Rule, usize> = HashMap::new();
    hits.retain(|hit| {
        let count = kept.entry(hit.rule).or_default();
        *count += 1;
        *count <= MAX_FINDINGS_PER_RULE
    });
    // One walk over the text for all hits: a minified bundle is one long
    // line, and counting from its start for every hit would be quadratic.
    let (mut line, mut column, mut at) = (1u32, 1u32, 0usize);
    let mut chars = source.char_indices().peekable();
    let mut findings = Vec::with_capacity(hits.len());
    for hit in hits {
        let offset = (hit.offset as usize).min(source.len());
        while at < offset {
            let Some((_, c)) = chars.next() else { break };
            at += c.len_utf8();
            match c {
                '\r' if chars.peek().is_some_and(|(_, next)| *next == '\n') => {}
                '\n' | '\r' | '\u{2028}' | '\u{2029}' => {
                    line = line.saturating_add(1);
                    column = 1;
                }
                _ => column = column.saturating_add(c.len_utf16() as u32),
            }
        }
        findings.push(Finding {
            rule: hit.rule,
            severity: hit.rule.severity(),
            line,
            column,
            message: hit.message,
        });
    }
    findings
}
