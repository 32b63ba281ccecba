//! The rules: one pass over a parsed, scope-resolved bundle that turns
//! what it sees into [`Hit`]s. The module above documents each rule.

use std::cell::RefCell;
use std::collections::HashMap;

use oxc_ast::ast::{
    Argument, AssignmentExpression, AssignmentTarget, BinaryOperator, CallExpression,
    ComputedMemberExpression, ExportAllDeclaration, ExportNamedDeclaration, Expression,
    IdentifierReference, ImportDeclaration, ImportExpression, NewExpression, ObjectProperty,
    StaticMemberExpression, StringLiteral, TemplateLiteral, VariableDeclarator,
};
use oxc_ast_visit::{Visit, walk};
use oxc_semantic::{AstNodes, IsGlobalReference, Scoping, SymbolId};
use oxc_span::Span;

use super::destination::{self, DeclaredHosts, Destination};
use super::markup::{self, Markup};
use super::values::{Alias, Element, UrlText, member, quasi_text, string_value};
use super::{Hit, Rule};

/// How many `new URL(…)`s and constants [`Analyser::destination`] sees
/// through.
const DESTINATION_DEPTH: u8 = 8;
const FRAME_NAMES: &[&str] = &["top", "parent", "opener", "frameElement"];
const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// One pass over a parsed bundle, collecting [`Hit`]s.
pub struct Analyser<'a, 's> {
    pub(super) scoping: &'s Scoping,
    pub(super) nodes: &'s AstNodes<'a>,
    declared: &'s DeclaredHosts,
    hits: Vec<Hit>,
    /// Variables assigned an [`Alias`] in the code seen so far.
    pub(super) aliases: HashMap<SymbolId, Alias>,
    /// Constants' initialisers, and what they are, once looked up.
    pub(super) constants: RefCell<HashMap<SymbolId, Option<&'a Expression<'a>>>>,
    pub(super) constant_aliases: RefCell<HashMap<SymbolId, Option<Alias>>>,
    pub(super) constant_texts: RefCell<HashMap<SymbolId, UrlText>>,
    /// Whether the bundle names `XMLHttpRequest` at all.
    uses_xhr: bool,
    /// `x.open(method, url)` calls whose method is not a literal: requests
    /// only if the bundle uses `XMLHttpRequest`, known at the end.
    untyped_opens: Vec<Hit>,
}

impl<'a, 's> Analyser<'a, 's> {
    /// An analyser of the program that `scoping` and `nodes` describe,
    /// adding to `hits`.
    pub fn new(
        scoping: &'s Scoping,
        nodes: &'s AstNodes<'a>,
        declared: &'s DeclaredHosts,
        hits: Vec<Hit>,
    ) -> Self {
        Self {
            scoping,
            nodes,
            declared,
            hits,
            aliases: HashMap::new(),
            constants: RefCell::default(),
            constant_aliases: RefCell::default(),
            constant_texts: RefCell::default(),
            uses_xhr: false,
            untyped_opens: Vec::new(),
        }
    }
}

impl<'a> Analyser<'a, '_> {
    /// The hits of the pass, once the program has been visited.
    pub fn finish(mut self) -> Vec<Hit> {
        if self.uses_xhr {
            self.hits.append(&mut self.untyped_opens);
        }
        self.hits
    }

    fn hit(&mut self, span: Span, rule: Rule, message: String) {
        self.hits.push(Hit {
            offset: span.start,
            rule,
            message,
        });
    }

    pub fn is_global(&self, id: &IdentifierReference) -> bool {
        id.is_global_reference(self.scoping)
    }

    /// Whether `expr` is the parent, top or opener window.
    fn is_frame(&self, expr: &Expression<'a>) -> bool {
        self.global_name(expr)
            .is_some_and(|name| FRAME_NAMES.contains(&name))
    }

    fn remember(&mut self, symbol: Option<SymbolId>, value: &Expression<'a>) {
        if let Some(symbol) = symbol
            && let Some(alias) = self.alias(value)
        {
            self.aliases.insert(symbol, alias);
        }
    }

    /// Where a request to the URL `expr` goes.
    fn destination(&self, expr: &Expression<'a>) -> Destination {
        self.destination_within(expr, DESTINATION_DEPTH)
    }

    /// [`Self::destination`], seeing through at most `depth` `new URL(…)`,
    /// `new Request(…)` and constants holding them.
    fn destination_within(&self, expr: &Expression<'a>, depth: u8) -> Destination {
        let Some(depth) = depth.checked_sub(1) else {
            return Destination::Unknown;
        };
        let inner = match expr.get_inner_expression() {
            Expression::Identifier(id) if !self.is_global(id) => {
                self.symbol(id).and_then(|symbol| self.constant(symbol))
            }
            _ => None,
        };
        if let Some(Expression::NewExpression(new)) =
            inner.or(Some(expr)).map(Expression::get_inner_expression)
        {
            let argument = |i: usize| new.arguments.get(i).and_then(Argument::as_expression);
            match self.global_name(&new.callee) {
                // `new URL(path, base)`: the base decides when the path is relative.
                Some("URL") => {
                    let url = argument(0).map_or(Destination::Unknown, |url| {
                        self.destination_within(url, depth)
                    });
                    return match (url, argument(1)) {
                        (Destination::Local, Some(base)) => self.destination_within(base, depth),
                        (url, _) => url,
                    };
                }
                Some("Request") => {
                    return argument(0).map_or(Destination::Unknown, |url| {
                        self.destination_within(url, depth)
                    });
                }
                _ => {}
            }
        }
        let url = self.url_text(expr);
        destination::classify(&url.text, url.complete)
    }

    /// A request made by `what` to the URL in `argument`.
    fn request(&mut self, span: Span, what: &str, argument: Option<&Argument<'a>>) {
        if let Some(hit) = self.request_hit(span, what, argument) {
            self.hits.push(hit);
        }
    }

    fn request_hit(&self, span: Span, what: &str, argument: Option<&Argument<'a>>) -> Option<Hit> {
        let destination = match argument?.as_expression() {
            Some(url) => self.destination(url),
            None => Destination::Unknown,
        };
        let (rule, message) = self.judge(what, destination)?;
        Some(Hit {
            offset: span.start,
            rule,
            message,
        })
    }

    fn judge(&self, what: &str, destination: Destination) -> Option<(Rule, String)> {
        match destination {
            Destination::Local => None,
            Destination::Host(host) if self.declared.allows(&host) => None,
            Destination::Host(host) => Some((
                Rule::NetworkUndeclaredHost,
                format!("{what} to {host}, which is not a declared host"),
            )),
            Destination::Unknown => Some((
                Rule::NetworkUnknownDestination,
                format!("{what} to a URL computed at run time"),
            )),
        }
    }

    /// An element's `src` set to `value`: a request when the URL is
    /// literal; an unknown one only for a script, since images with
    /// computed sources are everywhere and mostly harmless.
    fn source(&mut self, span: Span, object: Option<&Expression<'a>>, value: &Expression<'a>) {
        let destination = self.destination(value);
        let is_script =
            object.is_some_and(|o| self.alias(o) == Some(Alias::Element(Element::Script)));
        if destination == Destination::Unknown && !is_script {
            return;
        }
        let what = if is_script {
            "a script's src"
        } else {
            "an element's src"
        };
        if let Some((rule, message)) = self.judge(what, destination) {
            self.hit(span, rule, message);
        }
    }

    /// A form's `action` set to `value`. `.action` is a common property
    /// name (Redux actions, routers), so a computed value counts only on a
    /// known form element.
    fn form_action(&mut self, span: Span, object: Option<&Expression<'a>>, value: &Expression<'a>) {
        match self.destination(value) {
            Destination::Local => {}
            Destination::Host(host) if self.declared.allows(&host) => {}
            Destination::Host(host) => self.hit(
                span,
                Rule::ExternalFormPost,
                format!("a form submits to {host}, which is not a declared host"),
            ),
            Destination::Unknown => {
                if object.is_some_and(|o| self.alias(o) == Some(Alias::Element(Element::Form))) {
                    self.hit(
                        span,
                        Rule::NetworkUnknownDestination,
                        "a form submits to a URL computed at run time".to_owned(),
                    );
                }
            }
        }
    }

    fn password(&mut self, span: Span, value: &Expression<'a>) {
        if string_value(value).is_some_and(|v| v.trim().eq_ignore_ascii_case("password")) {
            self.hit(
                span,
                Rule::PasswordInput,
                "creates a password field".to_owned(),
            );
        }
    }

    /// A property of an element, or of props handed to an element factory
    /// (compiled JSX, `h()`, `Object.assign(el, …)`), set to `value`.
    fn property(
        &mut self,
        span: Span,
        object: Option<&Expression<'a>>,
        name: &str,
        value: &Expression<'a>,
    ) {
        match name {
            "src" => self.source(span, object, value),
            "type" => self.password(span, value),
            "action" | "formAction" | "formaction" => self.form_action(span, object, value),
            _ => {}
        }
    }

    fn markup(&mut self, span: Span, text: &str) {
        for found in markup::scan(text) {
            match found {
                Markup::PasswordInput => self.hit(
                    span,
                    Rule::PasswordInput,
                    "markup with a password field".to_owned(),
                ),
                Markup::FormAction { url, complete } => {
                    match destination::classify(&url, complete) {
                        Destination::Host(host) if !self.declared.allows(&host) => self.hit(
                            span,
                            Rule::ExternalFormPost,
                            format!("markup with a form that submits to {host}, which is not a declared host"),
                        ),
                        Destination::Unknown => self.hit(
                            span,
                            Rule::NetworkUnknownDestination,
                            "markup with a form that submits to a URL computed at run time"
                                .to_owned(),
                        ),
                        _ => {}
                    }
                }
                Markup::Source { tag, url, complete } => {
                    let destination = destination::classify(&url, complete);
                    if destination == Destination::Unknown && tag != "script" {
                        continue;
                    }
                    if let Some((rule, message)) =
                        self.judge(&format!("markup with <{tag} src>"), destination)
                    {
                        self.hit(span, rule, message);
                    }
                }
            }
        }
    }

    fn member_access(&mut self, span: Span, object: &Expression<'a>, name: &str) {
        match (self.alias(object), name) {
            (Some(Alias::Window), name) if FRAME_NAMES.contains(&name) => self.hit(
                span,
                Rule::SandboxEscape,
                format!("reaches the embedding page through window.{name}"),
            ),
            (Some(Alias::Window), "eval") => self.hit(
                span,
                Rule::Eval,
                "window.eval runs a string as code".to_owned(),
            ),
            (Some(Alias::Document), "cookie" | "domain") => self.hit(
                span,
                Rule::SandboxEscape,
                format!("touches document.{name}"),
            ),
            _ => {}
        }
    }

    /// `import … from source` or `export … from source`.
    fn static_import(&mut self, span: Span, source: &StringLiteral<'a>) {
        let destination = destination::classify(source.value.as_str(), true);
        if let Some((rule, message)) = self.judge("import", destination) {
            self.hit(span, rule, message);
        }
    }

    /// Checks a call; false when its callee must not be walked (it was
    /// judged whole here).
    fn call(&mut self, call: &CallExpression<'a>) -> bool {
        let arguments = &call.arguments;
        let span = call.span;
        if let Some(name) = self.global_name(&call.callee) {
            match name {
                "fetch" => self.request(span, "fetch()", arguments.first()),
                "importScripts" => {
                    for argument in arguments {
                        self.request(span, "importScripts()", Some(argument));
                    }
                }
                "open" => self.request(span, "window.open()", arguments.first()),
                "Function" => self.hit(
                    span,
                    Rule::NewFunction,
                    "Function(…) compiles a string into code".to_owned(),
                ),
                "setTimeout" | "setInterval"
                    if arguments
                        .first()
                        .and_then(Argument::as_expression)
                        .is_some_and(is_string) =>
                {
                    self.hit(
                        span,
                        Rule::Eval,
                        format!("{name} with a string runs it as code"),
                    );
                }
                _ => {}
            }
            return true;
        }
        let Some((object, method)) = member(&call.callee) else {
            return true;
        };
        let first = arguments.first().and_then(Argument::as_expression);
        let second = arguments.get(1).and_then(Argument::as_expression);
        match method {
            "sendBeacon" => self.request(span, "navigator.sendBeacon()", arguments.first()),
            "open" if arguments.len() >= 2 => match first.and_then(string_value) {
                Some(verb) if HTTP_METHODS.iter().any(|m| m.eq_ignore_ascii_case(verb)) => {
                    self.request(span, "XMLHttpRequest.open()", arguments.get(1));
                }
                Some(_) => {}
                None => {
                    let hit = self.request_hit(span, "XMLHttpRequest.open()", arguments.get(1));
                    self.untyped_opens.extend(hit);
                }
            },
            "setAttribute" => {
                if let (Some(name), Some(value)) = (first.and_then(string_value), second) {
                    let name = name.to_ascii_lowercase();
                    self.property(span, Some(object), &name, value);
                }
            }
            "postMessage" if self.is_frame(object) => {
                self.hit(
                    span,
                    Rule::CrossFrameMessage,
                    "posts a message to the embedding page".to_owned(),
                );
                // `parent` here is the sanctioned channel, not an escape.
                return false;
            }
            _ => {}
        }
        true
    }
}

impl<'a> Visit<'a> for Analyser<'a, '_> {
    fn visit_identifier_reference(&mut self, id: &IdentifierReference<'a>) {
        if !self.is_global(id) {
            return;
        }
        match id.name.as_str() {
            "eval" => self.hit(id.span, Rule::Eval, "eval runs a string as code".to_owned()),
            "XMLHttpRequest" => self.uses_xhr = true,
            name if FRAME_NAMES.contains(&name) => self.hit(
                id.span,
                Rule::SandboxEscape,
                format!("reaches the embedding page through {name}"),
            ),
            _ => {}
        }
    }

    fn visit_static_member_expression(&mut self, it: &StaticMemberExpression<'a>) {
        self.member_access(it.span, &it.object, it.property.name.as_str());
        walk::walk_static_member_expression(self, it);
    }

    fn visit_computed_member_expression(&mut self, it: &ComputedMemberExpression<'a>) {
        if let Some(name) = it.static_property_name() {
            self.member_access(it.span, &it.object, name.as_str());
        }
        walk::walk_computed_member_expression(self, it);
    }

    fn visit_call_expression(&mut self, it: &CallExpression<'a>) {
        if self.call(it) {
            walk::walk_call_expression(self, it);
        } else {
            self.visit_arguments(&it.arguments);
        }
    }

    fn visit_new_expression(&mut self, it: &NewExpression<'a>) {
        let first = it.arguments.first();
        match self.global_name(&it.callee) {
            Some(name @ ("WebSocket" | "EventSource")) => {
                self.request(it.span, &format!("new {name}()"), first);
            }
            Some("Function") => self.hit(
                it.span,
                Rule::NewFunction,
                "new Function(…) compiles a string into code".to_owned(),
            ),
            _ => {}
        }
        walk::walk_new_expression(self, it);
    }

    fn visit_import_expression(&mut self, it: &ImportExpression<'a>) {
        let destination = self.destination(&it.source);
        if let Some((rule, message)) = self.judge("import()", destination) {
            self.hit(it.span, rule, message);
        }
        walk::walk_import_expression(self, it);
    }

    fn visit_import_declaration(&mut self, it: &ImportDeclaration<'a>) {
        self.static_import(it.span, &it.source);
        walk::walk_import_declaration(self, it);
    }

    fn visit_export_all_declaration(&mut self, it: &ExportAllDeclaration<'a>) {
        self.static_import(it.span, &it.source);
        walk::walk_export_all_declaration(self, it);
    }

    fn visit_export_named_declaration(&mut self, it: &ExportNamedDeclaration<'a>) {
        if let Some(source) = &it.source {
            self.static_import(it.span, source);
        }
        walk::walk_export_named_declaration(self, it);
    }

    fn visit_assignment_expression(&mut self, it: &AssignmentExpression<'a>) {
        match &it.left {
            AssignmentTarget::AssignmentTargetIdentifier(id) => {
                self.remember(self.symbol(id), &it.right);
            }
            target => {
                if let Some(member) = target.as_member_expression()
                    && let Some(name) = member.static_property_name()
                {
                    self.property(it.span, Some(member.object()), name, &it.right);
                }
            }
        }
        walk::walk_assignment_expression(self, it);
    }

    fn visit_variable_declarator(&mut self, it: &VariableDeclarator<'a>) {
        if let (Some(id), Some(init)) = (it.id.get_binding_identifier(), &it.init) {
            self.remember(id.symbol_id.get(), init);
        }
        walk::walk_variable_declarator(self, it);
    }

    fn visit_object_property(&mut self, it: &ObjectProperty<'a>) {
        if !it.method
            && let Some(name) = it.key.static_name()
        {
            self.property(it.span, None, &name, &it.value);
        }
        walk::walk_object_property(self, it);
    }

    fn visit_string_literal(&mut self, it: &StringLiteral<'a>) {
        if it.value.contains('<') {
            self.markup(it.span, it.value.as_str());
        }
    }

    fn visit_template_literal(&mut self, it: &TemplateLiteral<'a>) {
        if it.quasis.iter().any(|q| quasi_text(q).contains('<')) {
            let mut joined = String::new();
            for (i, quasi) in it.quasis.iter().enumerate() {
                if i > 0 {
                    joined.push(markup::HOLE);
                }
                joined.push_str(quasi_text(quasi));
            }
            self.markup(it.span, &joined);
        }
        walk::walk_template_literal(self, it);
    }
}

/// A string, or a template or concatenation that makes one: what a timer
/// would run as code.
fn is_string(expr: &Expression) -> bool {
    match expr.get_inner_expression() {
        Expression::StringLiteral(_) | Expression::TemplateLiteral(_) => true,
        Expression::BinaryExpression(binary) => {
            binary.operator == BinaryOperator::Addition
                && (is_string(&binary.left) || is_string(&binary.right))
        }
        _ => false,
    }
}
