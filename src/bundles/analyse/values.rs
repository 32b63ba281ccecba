//! What an expression in the bundle is known to hold without running it:
//! the global object, the document or a new element ([`Alias`]), or the
//! text of a URL ([`UrlText`]), following constants (`const API =
//! 'https://…'; fetch(API + '/x')`). Every lookup is bounded, so the pass
//! stays linear on hostile chains (`a.b.b.b…`, `a = a = a…`, `const b = a
//! + a + a…` nested many times).

use std::cell::Cell;

use oxc_ast::AstKind;
use oxc_ast::ast::{BinaryOperator, Expression, IdentifierReference, TemplateElement};
use oxc_semantic::SymbolId;

use super::rules::Analyser;

/// What a variable or expression is known to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    /// The global object (`window`, `self`, `const w = window`).
    Window,
    /// The document (`document`, `window.document`, `const d = document`).
    Document,
    /// An element made by `createElement` or `new Image`.
    Element(Element),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Element {
    Script,
    Form,
    Other,
}

/// The text of a URL as far as the source fixes it: all of it, or a
/// prefix when the rest is computed at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlText {
    pub text: String,
    pub complete: bool,
}

impl UrlText {
    fn unknown() -> Self {
        Self {
            text: String::new(),
            complete: false,
        }
    }

    fn literal(text: &str) -> Self {
        let mut url = Self {
            text: String::new(),
            complete: true,
        };
        url.append(Self {
            text: text.to_owned(),
            complete: true,
        });
        url
    }

    /// Appends `next` if this text is complete so far; a prefix stays a
    /// prefix. Past [`TEXT_CAP`] bytes the rest cannot change the host.
    fn append(&mut self, next: UrlText) {
        if !self.complete {
            return;
        }
        let room = TEXT_CAP.saturating_sub(self.text.len());
        if next.text.len() > room {
            let mut cut = room;
            while !next.text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.text.push_str(&next.text[..cut]);
            self.complete = false;
        } else {
            self.text.push_str(&next.text);
            self.complete = next.complete;
        }
    }
}

/// Bytes of URL text kept: far more than any scheme and host.
const TEXT_CAP: usize = 2048;

/// Expressions looked at for one URL before giving up on the rest.
const TEXT_STEPS: u32 = 4096;

/// How deep [`Analyser::alias`] looks.
const ALIAS_DEPTH: u8 = 4;

pub const WINDOW_NAMES: &[&str] = &["window", "self", "globalThis", "frames"];

impl<'a> Analyser<'a, '_> {
    /// What `expr` is known to be.
    pub fn alias(&self, expr: &Expression<'a>) -> Option<Alias> {
        self.alias_within(expr, ALIAS_DEPTH)
    }

    /// [`Self::alias`], looking at most `depth` expressions deep: enough
    /// for `window.document` or `a = b = createElement(…)`.
    fn alias_within(&self, expr: &Expression<'a>, depth: u8) -> Option<Alias> {
        let depth = depth.checked_sub(1)?;
        match expr.get_inner_expression() {
            Expression::Identifier(id) => {
                if self.is_global(id) {
                    return match id.name.as_str() {
                        name if WINDOW_NAMES.contains(&name) => Some(Alias::Window),
                        "document" => Some(Alias::Document),
                        _ => None,
                    };
                }
                let symbol = self.symbol(id)?;
                if let Some(alias) = self.aliases.get(&symbol) {
                    return Some(*alias);
                }
                if let Some(known) = self.constant_aliases.borrow().get(&symbol) {
                    return *known;
                }
                let alias = self
                    .constant(symbol)
                    .and_then(|init| self.alias_within(init, depth));
                self.constant_aliases.borrow_mut().insert(symbol, alias);
                alias
            }
            Expression::CallExpression(call) => {
                let (_, method) = member(&call.callee)?;
                if method != "createElement" {
                    return None;
                }
                let tag = string_value(call.arguments.first()?.as_expression()?)?;
                Some(Alias::Element(match tag.to_ascii_lowercase().as_str() {
                    "script" => Element::Script,
                    "form" => Element::Form,
                    _ => Element::Other,
                }))
            }
            Expression::NewExpression(new) => {
                let image = match new.callee.get_inner_expression() {
                    Expression::Identifier(id) => id.name == "Image" && self.is_global(id),
                    _ => false,
                };
                image.then_some(Alias::Element(Element::Other))
            }
            Expression::SequenceExpression(sequence) => {
                self.alias_within(sequence.expressions.last()?, depth)
            }
            Expression::AssignmentExpression(assignment) => {
                self.alias_within(&assignment.right, depth)
            }
            inner => {
                let (object, name) = member(inner)?;
                match (self.alias_within(object, depth)?, name) {
                    (Alias::Window, name) if WINDOW_NAMES.contains(&name) => Some(Alias::Window),
                    (Alias::Window, "document") => Some(Alias::Document),
                    _ => None,
                }
            }
        }
    }

    /// The name of the global `expr` denotes: `fetch` for `fetch` and for
    /// `window.fetch`, when neither is shadowed by a local.
    pub fn global_name(&self, expr: &Expression<'a>) -> Option<&'a str> {
        match expr.get_inner_expression() {
            Expression::Identifier(id) if self.is_global(id) => Some(id.name.as_str()),
            inner => {
                let (object, name) = member(inner)?;
                (self.alias(object) == Some(Alias::Window)).then_some(name)
            }
        }
    }

    /// The symbol a local reference resolves to.
    pub fn symbol(&self, id: &IdentifierReference) -> Option<SymbolId> {
        self.scoping
            .get_reference(id.reference_id.get()?)
            .symbol_id()
    }

    /// The initialiser of a variable that is never assigned again.
    pub fn constant(&self, symbol: SymbolId) -> Option<&'a Expression<'a>> {
        if let Some(known) = self.constants.borrow().get(&symbol) {
            return *known;
        }
        // Remembered: whether a `var` is assigned again takes a look at
        // all its references.
        let init = self.initialiser(symbol);
        self.constants.borrow_mut().insert(symbol, init);
        init
    }

    fn initialiser(&self, symbol: SymbolId) -> Option<&'a Expression<'a>> {
        let declaration = self.scoping.symbol_declaration(symbol);
        let AstKind::VariableDeclarator(declarator) = self.nodes.kind(declaration) else {
            return None;
        };
        let binding = declarator.id.get_binding_identifier()?;
        if binding.symbol_id.get() != Some(symbol) || self.scoping.symbol_is_mutated(symbol) {
            return None;
        }
        declarator.init.as_ref()
    }

    /// The URL text `expr` fixes.
    pub fn url_text(&self, expr: &Expression<'a>) -> UrlText {
        let steps = Cell::new(TEXT_STEPS);
        self.text_within(expr, &steps)
    }

    fn text_within(&self, expr: &Expression<'a>, steps: &Cell<u32>) -> UrlText {
        let Some(left) = steps.get().checked_sub(1) else {
            return UrlText::unknown();
        };
        steps.set(left);
        match expr.get_inner_expression() {
            Expression::StringLiteral(literal) => UrlText::literal(literal.value.as_str()),
            Expression::TemplateLiteral(template) => {
                let mut url = UrlText::literal("");
                for (i, quasi) in template.quasis.iter().enumerate() {
                    url.append(UrlText::literal(quasi_text(quasi)));
                    if let Some(expr) = template.expressions.get(i) {
                        if !url.complete {
                            break;
                        }
                        url.append(self.text_within(expr, steps));
                    }
                }
                url
            }
            Expression::BinaryExpression(binary) if binary.operator == BinaryOperator::Addition => {
                let mut url = self.text_within(&binary.left, steps);
                if url.complete {
                    url.append(self.text_within(&binary.right, steps));
                }
                url
            }
            Expression::Identifier(id) => self.constant_text(id, steps),
            _ => UrlText::unknown(),
        }
    }

    /// The URL text of a constant, worked out once per constant.
    fn constant_text(&self, id: &IdentifierReference, steps: &Cell<u32>) -> UrlText {
        let Some(symbol) = self.symbol(id) else {
            return UrlText::unknown();
        };
        if let Some(known) = self.constant_texts.borrow().get(&symbol) {
            return known.clone();
        }
        let Some(init) = self.constant(symbol) else {
            return UrlText::unknown();
        };
        // Unknown while being worked out, so `var a = b, b = a` ends.
        self.constant_texts
            .borrow_mut()
            .insert(symbol, UrlText::unknown());
        let text = self.text_within(init, steps);
        self.constant_texts
            .borrow_mut()
            .insert(symbol, text.clone());
        text
    }
}

/// `(object, property)` of `object.property`, `object['property']` or
/// `object?.property`.
pub fn member<'b, 'a>(expr: &'b Expression<'a>) -> Option<(&'b Expression<'a>, &'a str)> {
    match expr.get_inner_expression() {
        Expression::StaticMemberExpression(m) => Some((&m.object, m.property.name.as_str())),
        Expression::ComputedMemberExpression(m) => {
            Some((&m.object, m.static_property_name()?.as_str()))
        }
        Expression::ChainExpression(chain) => {
            let m = chain.expression.as_member_expression()?;
            Some((m.object(), m.static_property_name()?))
        }
        _ => None,
    }
}

/// A template's text between `${}`s, escapes applied when they are valid.
pub fn quasi_text<'a>(quasi: &TemplateElement<'a>) -> &'a str {
    quasi.value.cooked.unwrap_or(quasi.value.raw).as_str()
}

/// The value of a string literal or of a template with no `${}`.
pub fn string_value<'a>(expr: &Expression<'a>) -> Option<&'a str> {
    match expr.get_inner_expression() {
        Expression::StringLiteral(literal) => Some(literal.value.as_str()),
        Expression::TemplateLiteral(template) if template.expressions.is_empty() => {
            template.quasis.first().map(quasi_text)
        }
        _ => None,
    }
}
