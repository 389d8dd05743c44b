//! Handlebars templates: burner's native syntax, beside the Go front end.
//!
//! A template is compiled once ([`HandlebarsTemplate::parse`]) and rendered per iteration
//! ([`HandlebarsTemplate::render`]) with the same data the Go front end gets, so
//! `{{Iteration}}`, `{{JobName}}` and input variables are top-level names. Strict mode (a
//! missing variable is an error) or missing-as-empty follows [`MissingKey`]; nothing is
//! HTML-escaped, because the output is YAML, not HTML.
//!
//! Functions: every function of the Go front end's table is a helper with the same name and
//! arguments (`{{add Iteration 1}}`, `{{upper (trim name)}}`), and each call goes through
//! [`Functions::call`], so the two syntaxes cannot drift apart. Where a function shares its
//! name with a handlebars built-in (`eq ne lt gt and or not len`), the function wins: one
//! template language has one meaning of `eq`. Handlebars' block built-ins (`if`, `unless`,
//! `each`, `with`), `lookup`, `raw`, `log` and the comparisons Go lacks (`gte`, `lte`) stay
//! as handlebars defines them. A function called as a block (`{{#eq a b}}…{{else}}…{{/eq}}`)
//! renders its block when the result is true by Go's rules, else its `{{else}}`. As in
//! handlebars, `{{title}}` calls the function `title`; a variable of that name is
//! `{{this.title}}` or `{{./title}}` (arguments, as in `{{upper title}}`, are always values).
//!
//! Values print as Go prints them (`1e+06`, `[a b]`, `map[k:v]`), so a workload renders the
//! same in both syntaxes; the one difference is that a null value prints as nothing, as
//! handlebars users expect, where Go prints `<no value>`.
//!
//! The function table comes with each render, in [`RenderOptions`]: `ReadFile`'s folder and
//! the random source belong to a job, not to a template. Handlebars registries take helpers
//! once, so the functions a template calls are registered per render as helpers local to
//! that render, bound to the options' table; the registries themselves are built once and
//! shared by every template.
//!
//! Not supported (reported at parse time with the line): partials (`{{> name}}`) and
//! decorators (`{{* name}}`), since a template is one file; calls to helpers nobody defined;
//! `key=value` arguments to functions, which take positional arguments only.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use ::handlebars::template::{HelperTemplate, Parameter, Subexpression, TemplateElement};
use ::handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, ScopedJson, Template,
};
use serde_json::Value;

use super::go::MissingKey;
use super::go::format;
use super::go::funcs::{self, Functions};
use super::{RenderOptions, TemplateError};

/// The helpers `Handlebars::new()` registers (its `setup_builtins`). A name here that is
/// also a Go function is shadowed by the function (see the module docs).
const BUILT_INS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "raw", "log", "eq", "ne", "gt", "gte", "lt", "lte",
    "and", "or", "not", "len",
];

/// Functions that exist to test for absence, so a missing variable reaches them as null even
/// in strict mode (`{{default "x" size}}`), as a missing variable reaches handlebars' `if`.
const TOLERATE_MISSING: &[&str] = &["default", "empty"];

/// The helper every value printed into the output goes through (see [`PrintValue`]). The
/// space makes it a name no template can spell.
const PRINT: &str = "burner print";

/// Registries hold settings and helpers but no templates, so all templates share two: one
/// per [`MissingKey`], since strict mode is a registry setting and `missing` is chosen per
/// render.
static STRICT: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(true));
static LENIENT: LazyLock<Handlebars<'static>> = LazyLock::new(|| registry(false));

fn registry(strict: bool) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(strict);
    registry.register_escape_fn(::handlebars::no_escape);
    registry.register_helper(PRINT, Box::new(PrintValue));
    registry
}

/// A compiled handlebars template.
#[derive(Debug, Clone)]
pub struct HandlebarsTemplate {
    name: String,
    template: Template,
    /// The Go functions the template calls, registered per render (see the module docs).
    functions: Vec<String>,
    /// What the output's buffer starts with: about the source's length.
    capacity: usize,
}

impl HandlebarsTemplate {
    /// Compiles `source`; `name` (usually the file's path) goes into every error.
    pub fn parse(name: &str, source: &str) -> Result<Self, TemplateError> {
        let mut template = Template::compile_with_name(source, name.to_string())
            .map_err(|error| syntax_error(name, source, &error))?;
        let mut functions = BTreeSet::new();
        prepare(name, &mut template, 1, &mut functions)?;
        Ok(Self {
            name: name.to_string(),
            template,
            functions: functions.into_iter().collect(),
            capacity: source.len() + 64,
        })
    }

    /// Renders the template with `data` as its context.
    pub fn render(&self, data: &Value, options: &RenderOptions) -> Result<String, TemplateError> {
        let registry: &Handlebars<'static> = match options.missing() {
            MissingKey::Error => &STRICT,
            MissingKey::Zero => &LENIENT,
        };
        // Handlebars owns its context's data; one copy per render is the price.
        let context = Context::from(data.clone());
        let mut render_context = RenderContext::new(None);
        for name in &self.functions {
            render_context.register_local_helper(
                name,
                Box::new(GoFunction {
                    functions: options.functions(),
                }),
            );
        }
        let mut out = Buffer(String::with_capacity(self.capacity));
        self.template
            .render(registry, &context, &mut render_context, &mut out)
            .map_err(|error| self.error(&error))?;
        Ok(out.0)
    }

    /// Handlebars' render error in burner's words. Its errors carry the line and column of
    /// the element that failed, which finds the helper call they are about.
    fn error(&self, error: &RenderError) -> TemplateError {
        let call = match (error.line_no, error.column_no) {
            (Some(line), Some(column)) => call_at(&self.template, line, column),
            _ => None,
        };
        let callee = call.and_then(|call| call.name.as_name());
        let missing = |path: &str| {
            format!(
                "variable {path:?} not found (missing variables are errors unless the job sets \
                 defaultMissingKeysWithZero or burner runs with --allow-missing; \
                 `{{{{#if {path}}}}}` or `default` test for one)"
            )
        };
        let message = match error.reason() {
            RenderErrorReason::MissingVariable(Some(path)) => match callee {
                // Handlebars reports these as missing in strict mode even when present.
                Some("each") => {
                    format!("{{{{#each {path}}}}}: {path:?} is missing or not a list or map")
                }
                Some("with") => format!("{{{{#with {path}}}}}: {path:?} is missing or empty"),
                _ => missing(path),
            },
            RenderErrorReason::MissingVariable(None) => match callee {
                Some(callee) => format!("{callee} found no value (strict mode)"),
                None => "a value was not found (strict mode)".to_string(),
            },
            RenderErrorReason::ParamNotFoundForIndex(helper, index) => {
                match call.and_then(|call| call.params.get(*index)) {
                    Some(path @ Parameter::Path(_)) if callee == Some(*helper) => {
                        missing(path.as_name().unwrap_or_default())
                    }
                    _ => format!("{helper} needs argument {}", index + 1),
                }
            }
            RenderErrorReason::Other(message) => message.clone(),
            other => other.to_string(),
        };
        TemplateError {
            template: self.name.clone(),
            // Handlebars gives every element of a compiled template its line.
            line: error.line_no.unwrap_or(1),
            message,
        }
    }
}

/// The helper call of the element at `line`:`column`, looking through [`PRINT`]'s wrapper.
fn call_at(template: &Template, line: usize, column: usize) -> Option<&HelperTemplate> {
    for (element, mapping) in template.elements.iter().zip(&template.mapping) {
        let call = match element {
            TemplateElement::Expression(call)
            | TemplateElement::HtmlExpression(call)
            | TemplateElement::HelperBlock(call) => call,
            _ => continue,
        };
        if (mapping.0, mapping.1) == (line, column) {
            let wrapped = match (call.name.as_name(), call.params.first()) {
                (Some(PRINT), Some(Parameter::Subexpression(inner))) => match inner.as_element() {
                    TemplateElement::Expression(inner) => Some(inner.as_ref()),
                    _ => None,
                },
                _ => None,
            };
            return Some(wrapped.unwrap_or(call));
        }
        let nested = [call.template.as_ref(), call.inverse.as_ref()];
        if let Some(found) = nested
            .into_iter()
            .flatten()
            .find_map(|nested| call_at(nested, line, column))
        {
            return Some(found);
        }
    }
    None
}

/// Handlebars' parse error in burner's words. Its parser reports a block left open as an
/// unexpected end of the file; a scan for the open block names it and its line instead.
fn syntax_error(name: &str, source: &str, error: &::handlebars::TemplateError) -> TemplateError {
    let block_name = |rest: &str| {
        let rest = rest.trim_start_matches(['>', '*']).trim_end_matches('~');
        rest.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut stray_close = None;
    for action in super::actions(source) {
        let inner = action.inner.trim_start_matches('~').trim_start();
        if let Some(block) = inner.strip_prefix('#').or_else(|| inner.strip_prefix('^')) {
            open.push((block_name(block), action.line));
        } else if let Some(block) = inner.strip_prefix('/').filter(|_| !inner.starts_with("/*"))
            && open.pop().is_none()
        {
            stray_close.get_or_insert((block_name(block), action.line));
        }
    }
    let reported = error.pos().map_or(1, |(line, _)| line);
    let at = |line: usize, message: String| TemplateError {
        template: name.to_string(),
        line,
        message,
    };
    match (open.last(), stray_close) {
        (_, Some((block, line))) if line == reported => {
            at(line, format!("{{{{/{block}}}}} closes no open block"))
        }
        (Some((block, line)), _) if reported >= source.lines().count() => at(
            *line,
            format!("{{{{#{block}}}}} has no matching {{{{/{block}}}}}"),
        ),
        _ => at(reported, error.reason().to_string()),
    }
}

/// Checks what can be checked before rendering, and rewrites each value printed into the
/// output into a call of [`PRINT`], so it prints as Go prints it. Collects the Go functions
/// called into `functions`. `line` is the enclosing element's, for elements without one.
fn prepare(
    name: &str,
    template: &mut Template,
    line: usize,
    functions: &mut BTreeSet<String>,
) -> Result<(), TemplateError> {
    for (index, element) in template.elements.iter_mut().enumerate() {
        let line = template
            .mapping
            .get(index)
            .map_or(line, |mapping| mapping.0);
        let error = |message: String| TemplateError {
            template: name.to_string(),
            line,
            message,
        };
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(helper) | TemplateElement::HtmlExpression(helper) => {
                check_arguments(helper, &error, functions)?;
                let callee = helper.name.as_name().map(str::to_string);
                let name_only = helper.params.is_empty() && helper.hash.is_empty();
                match callee {
                    // `{{name}}`: a call when a function or helper has that name, else a value.
                    Some(callee) if name_only && !is_helper(&callee) => {
                        if matches!(helper.name, Parameter::Path(_)) {
                            let value = std::mem::replace(
                                &mut helper.name,
                                Parameter::Name(PRINT.to_string()),
                            );
                            helper.params.push(value);
                        }
                    }
                    Some(callee) => {
                        check_callee(&callee, helper, &error, functions)?;
                        // A built-in's value prints through PRINT as well (`{{lookup m "k"}}`).
                        if !Functions::has(&callee) {
                            print_call_result(helper);
                        }
                    }
                    None => {}
                }
            }
            TemplateElement::HelperBlock(helper) => {
                check_arguments(helper, &error, functions)?;
                if let Some(callee) = helper.name.as_name().map(str::to_string) {
                    check_callee(&callee, helper, &error, functions)?;
                }
                if let Some(body) = helper.template.as_mut() {
                    prepare(name, body, line, functions)?;
                }
                if let Some(otherwise) = helper.inverse.as_mut() {
                    prepare(name, otherwise, line, functions)?;
                }
            }
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(error(
                    "partials (`{{> name}}`) are not supported in burner templates: a template \
                     is one file"
                        .to_string(),
                ));
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(error(
                    "decorators (`{{* name}}`) are not supported in burner templates".to_string(),
                ));
            }
            // Elements a later handlebars adds render as handlebars renders them.
            _ => {}
        }
    }
    Ok(())
}

fn is_helper(name: &str) -> bool {
    Functions::has(name) || BUILT_INS.contains(&name)
}

/// `callee` must be a function or a built-in helper; functions take positional arguments only.
fn check_callee(
    callee: &str,
    helper: &HelperTemplate,
    error: &impl Fn(String) -> TemplateError,
    functions: &mut BTreeSet<String>,
) -> Result<(), TemplateError> {
    if Functions::has(callee) {
        if let Some(key) = helper.hash.keys().next() {
            return Err(error(format!(
                "function {callee:?} takes positional arguments only, not `{key}=...`"
            )));
        }
        functions.insert(callee.to_string());
    } else if !BUILT_INS.contains(&callee) {
        return Err(error(format!("function or helper {callee:?} not defined")));
    }
    Ok(())
}

/// Checks the subexpressions among a helper's arguments, recursively.
fn check_arguments(
    helper: &HelperTemplate,
    error: &impl Fn(String) -> TemplateError,
    functions: &mut BTreeSet<String>,
) -> Result<(), TemplateError> {
    for argument in helper.params.iter().chain(helper.hash.values()) {
        if let Parameter::Subexpression(inner) = argument
            && let TemplateElement::Expression(inner) = inner.element.as_ref()
        {
            if let Some(callee) = inner.name.as_name() {
                check_callee(callee, inner, error, functions)?;
            }
            check_arguments(inner, error, functions)?;
        }
    }
    Ok(())
}

/// Turns `{{helper args}}` into `{{PRINT (helper args)}}`.
fn print_call_result(helper: &mut HelperTemplate) {
    let call = Subexpression::new(
        std::mem::replace(&mut helper.name, Parameter::Name(PRINT.to_string())),
        std::mem::take(&mut helper.params),
        std::mem::take(&mut helper.hash),
    );
    helper.params.push(Parameter::Subexpression(call));
}

/// A value as it lands in the output: as Go prints it, except that null is empty.
fn printed(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => format::print(other),
    }
}

/// Prints its one argument; in strict mode a missing one is an error.
struct PrintValue;

impl HelperDef for PrintValue {
    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let Some(value) = helper.param(0) else {
            return Ok(());
        };
        if value.is_value_missing() && registry.strict_mode() {
            return Err(RenderError::strict_error(value.relative_path()));
        }
        match value.value() {
            Value::String(text) => out.write(text)?,
            other => out.write(&printed(other))?,
        }
        Ok(())
    }
}

/// A Go function as a helper: its arguments go to [`Functions::call`] as JSON values, its
/// result comes back as one (for subexpressions), prints as Go prints it (in the output), or
/// chooses between a block and its `{{else}}` (as a block helper).
struct GoFunction<'a> {
    functions: &'a Functions,
}

impl GoFunction<'_> {
    fn evaluate(
        &self,
        helper: &Helper<'_>,
        registry: &Handlebars<'_>,
    ) -> Result<Value, RenderError> {
        let name = helper.name();
        let mut arguments = Vec::with_capacity(helper.params().len());
        for argument in helper.params() {
            if argument.is_value_missing()
                && registry.strict_mode()
                && !TOLERATE_MISSING.contains(&name)
            {
                return Err(RenderError::strict_error(argument.relative_path()));
            }
            arguments.push(argument.value().clone());
        }
        self.functions.call(name, &arguments).map_err(|message| {
            RenderErrorReason::Other(format!("error calling {name}: {message}")).into()
        })
    }
}

impl HelperDef for GoFunction<'_> {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        self.evaluate(helper, registry).map(ScopedJson::Derived)
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        helper: &Helper<'rc>,
        registry: &'reg Handlebars<'reg>,
        context: &'rc Context,
        render_context: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let value = self.evaluate(helper, registry)?;
        if helper.is_block() {
            let branch = if funcs::truthy(&value) {
                helper.template()
            } else {
                helper.inverse()
            };
            return match branch {
                Some(branch) => branch.render(registry, context, render_context, out),
                None => Ok(()),
            };
        }
        out.write(&printed(&value))?;
        Ok(())
    }
}

/// The rendered text, sized from the template rather than handlebars' fixed 8 KiB.
struct Buffer(String);

impl Output for Buffer {
    fn write(&mut self, segment: &str) -> Result<(), std::io::Error> {
        self.0.push_str(segment);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "Iteration": 3, "Replica": 1, "JobName": "density", "UUID": "u-1", "RunID": "r-9",
            "name": "web", "count": 0, "ratio": 1.5, "big": 1e6, "whole": 2.0, "empty": "",
            "tags": ["a", "b", "c"], "labels": {"zone": "z1", "app": "web"},
            "nested": {"inner": {"value": 7}}, "html": "<b>&</b> \"q\" 'a'", "yes": true,
            "no": false, "nothing": null, "padded": "  web  ",
            "containers": [
                {"name": "app", "image": "nginx:1.27", "port": 8080},
                {"name": "sidecar", "image": "busybox", "port": 9090},
            ],
        })
    }

    fn render(source: &str) -> String {
        render_with(source, MissingKey::Error).unwrap_or_else(|e| panic!("{source:?}: {e}"))
    }

    fn render_with(source: &str, missing: MissingKey) -> Result<String, TemplateError> {
        HandlebarsTemplate::parse("t.yml", source)?
            .render(&data(), &RenderOptions::new(missing, None))
    }

    #[test]
    fn renders_handlebars_with_burner_functions() {
        let cases: &[(&str, &str)] = &[
            // Variables, paths, the standard data.
            ("name: {{name}}-{{Iteration}}", "name: web-3"),
            (
                "{{JobName}}/{{Replica}}/{{UUID}}/{{RunID}}",
                "density/1/u-1/r-9",
            ),
            (
                "{{nested.inner.value}} {{labels.zone}} {{tags.[1]}}",
                "7 z1 b",
            ),
            ("{{#with nested.inner}}{{value}}{{/with}}", "7"),
            ("{{#with labels as |l|}}{{l.app}}{{/with}}", "web"),
            ("{{#with empty}}set{{else}}unset{{/with}}", "unset"),
            // Values print as Go prints them; null prints as nothing.
            (
                "{{ratio}} {{big}} {{whole}} {{yes}} {{tags}} {{labels}}",
                "1.5 1e+06 2 true [a b c] map[app:web zone:z1]",
            ),
            ("[{{nothing}}]", "[]"),
            ("{{lookup labels \"zone\"}} {{lookup tags 2}}", "z1 c"),
            // No HTML escaping, with double or triple braces.
            (
                "{{html}} {{{html}}}",
                "<b>&</b> \"q\" 'a' <b>&</b> \"q\" 'a'",
            ),
            // each over lists and maps, with @index, @key, @first, @last and this.
            ("{{#each tags}}[{{this}}]{{/each}}", "[a][b][c]"),
            (
                "{{#each tags}}{{@index}}={{this}}{{#unless @last}},{{/unless}}{{/each}}",
                "0=a,1=b,2=c",
            ),
            (
                "{{#each labels}}{{@key}}:{{this}};{{/each}}",
                "app:web;zone:z1;",
            ),
            ("{{#each tags as |t i|}}{{i}}{{t}}{{/each}}", "0a1b2c"),
            (
                "{{#each containers}}{{name}}@{{../name}} {{/each}}",
                "app@web sidecar@web ",
            ),
            ("{{#each (list)}}x{{else}}none{{/each}}", "none"),
            ("{{#each (until 3)}}{{this}}{{/each}}", "012"),
            // if / else if / else, unless.
            (
                "{{#if yes}}y{{else}}n{{/if}} {{#if count}}y{{else}}n{{/if}}",
                "y n",
            ),
            (
                "{{#if no}}a{{else if count}}b{{else if name}}c{{else}}d{{/if}}",
                "c",
            ),
            ("{{#unless empty}}blank{{/unless}}", "blank"),
            ("{{#if nothing}}x{{else}}no{{/if}}", "no"),
            // Functions with arguments, subexpressions and literals.
            (
                "{{add Iteration 1}} {{sub 10 Iteration}} {{mul 2 3 4}}",
                "4 7 24",
            ),
            ("{{div 7 2}} {{mod 7 3}} {{add1 Replica}}", "3 1 2"),
            ("{{upper (trim padded)}}", "WEB"),
            ("{{printf \"%s-%05d\" JobName Iteration}}", "density-00003"),
            ("{{default \"x\" empty}} {{default \"x\" name}}", "x web"),
            ("{{default \"fallback\" notThere}}", "fallback"),
            (
                "{{toJson labels}} {{toJson tags}}",
                "{\"app\":\"web\",\"zone\":\"z1\"} [\"a\",\"b\",\"c\"]",
            ),
            (
                "{{toJson html}}",
                "\"\\u003cb\\u003e\\u0026\\u003c/b\\u003e \\\"q\\\" 'a'\"",
            ),
            (
                "x:{{nindent 2 (toYaml labels)}}",
                "x:\n  app: web\n  zone: z1",
            ),
            (
                "{{join \",\" tags}} {{len tags}} {{index tags 1}}",
                "a,b,c 3 b",
            ),
            ("{{float64 \"1.5\"}} {{int 2.9}} {{max 3 9 2}}", "1.5 2 9"),
            (
                "{{quote name}} {{squote name}} {{title \"hello world\"}}",
                "\"web\" 'web' Hello World",
            ),
            (
                "{{list 1 \"a\" yes}} {{dict \"k\" \"v\"}}",
                "[1 a true] map[k:v]",
            ),
            ("{{get (dict \"k\" \"v\") \"k\"}}", "v"),
            ("{{ternary \"big\" \"small\" (gt Iteration 2)}}", "big"),
            (
                "{{b64enc JobName}} {{sha256sum \"abc\"}}",
                "ZGVuc2l0eQ== ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            // Clashing names are the Go functions: value-returning `or`, numeric `eq`.
            ("{{or empty \"d\"}} {{and 1 0 2}} {{not count}}", "d 0 true"),
            (
                "{{#if (eq whole 2)}}eq{{/if}} {{#if (and yes (ne name \"x\"))}}and{{/if}}",
                "eq and",
            ),
            (
                "{{#if (or no (le Iteration 3))}}le{{/if}} {{#if (gte Iteration 3)}}gte{{/if}}",
                "le gte",
            ),
            ("{{#eq name \"web\"}}web{{else}}other{{/eq}}", "web"),
            ("{{#gt count 1}}many{{else}}few{{/gt}}", "few"),
            ("{{eq Iteration 1 2 3}} {{len name}}", "true 3"),
            // A variable named like a function is reached with `this.` or `./`.
            (
                "{{#with (dict \"title\" \"x\")}}{{this.title}}{{./title}} {{title \"a b\"}}{{/with}}",
                "xx A B",
            ),
            // Comments and whitespace control.
            ("a{{! a comment }}b{{!-- {{not}} rendered --}}c", "abc"),
            ("a  {{~name~}}  b", "awebb"),
            // Standalone block lines vanish, as YAML needs.
            (
                "x:\n{{#each tags}}\n- {{this}}\n{{/each}}\ny: 1\n",
                "x:\n- a\n- b\n- c\ny: 1\n",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(render(source), *expected, "{source}");
        }
    }

    #[test]
    fn renders_a_pod() {
        let source = r#"apiVersion: v1
kind: Pod
metadata:
  name: {{JobName}}-{{Iteration}}-{{Replica}}
  labels:
    {{#each labels}}
    {{@key}}: {{this}}
    {{/each}}
  annotations:
    burner.io/uuid: {{UUID}}
spec:
  {{#if nodeSelector}}
  nodeSelector: {{toJson nodeSelector}}
  {{/if}}
  containers:
  {{#each containers}}
  - name: {{name}}
    image: {{image}}
    ports:
    - containerPort: {{port}}
    env:
    - name: INDEX
      value: "{{@index}}"
    - name: POD
      value: {{quote (printf "%s-%d" ../JobName ../Iteration)}}
  {{/each}}
"#;
        let expected = r#"apiVersion: v1
kind: Pod
metadata:
  name: density-3-1
  labels:
    app: web
    zone: z1
  annotations:
    burner.io/uuid: u-1
spec:
  containers:
  - name: app
    image: nginx:1.27
    ports:
    - containerPort: 8080
    env:
    - name: INDEX
      value: "0"
    - name: POD
      value: "density-3"
  - name: sidecar
    image: busybox
    ports:
    - containerPort: 9090
    env:
    - name: INDEX
      value: "1"
    - name: POD
      value: "density-3"
"#;
        assert_eq!(render(source), expected);
    }

    #[test]
    fn random_functions_produce_the_asked_shape() {
        let out = render("{{randAlphaNum 12}} {{randNumeric 4}} {{randInt 5 6}} {{uuidv4}}");
        let parts: Vec<&str> = out.split(' ').collect();
        assert_eq!(parts[0].len(), 12);
        assert!(parts[0].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(parts[1].len() == 4 && parts[1].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(parts[2], "5");
        assert_eq!(parts[3].len(), 36);
    }

    #[test]
    fn missing_variables_are_errors_unless_asked_to_be_empty() {
        let error = render_with("a: 1\nb: {{nope}}\n", MissingKey::Error).unwrap_err();
        assert_eq!(error.template, "t.yml");
        assert_eq!(error.line, 2);
        assert!(
            error
                .to_string()
                .starts_with("t.yml:2: variable \"nope\" not found"),
            "{error}"
        );
        let cases: &[(&str, usize, &str)] = &[
            ("{{upper nope}}", 1, "variable \"nope\" not found"),
            (
                "x\n{{#each tags}}\n{{this}} {{nope.deeper}}\n{{/each}}",
                3,
                "variable \"nope.deeper\" not found",
            ),
            (
                "\n\n{{#each nope}}x{{/each}}",
                3,
                "{{#each nope}}: \"nope\" is missing or not a list or map",
            ),
            (
                "{{#each name}}x{{/each}}",
                1,
                "{{#each name}}: \"name\" is missing or not a list or map",
            ),
            (
                "{{#with empty}}x{{/with}}",
                1,
                "{{#with empty}}: \"empty\" is missing or empty",
            ),
            (
                "{{#each tags}}\n{{lookup ../labels \"nope\"}}{{/each}}",
                2,
                "lookup found no value (strict mode)",
            ),
            ("{{#gte nope 1}}x{{/gte}}", 1, "variable \"nope\" not found"),
            (
                "{{#if yes}}\n\n{{add (upper nope) 1}}{{/if}}",
                3,
                "variable \"nope\" not found",
            ),
        ];
        for (source, line, message) in cases {
            let error = render_with(source, MissingKey::Error).unwrap_err();
            assert_eq!(error.line, *line, "{source}: {error}");
            assert!(error.message.starts_with(message), "{source}: {error}");
        }
        // `if` tests for a missing variable without failing, as in handlebars.
        assert_eq!(render("{{#if nope}}x{{else}}none{{/if}}"), "none");

        let zero = |source| render_with(source, MissingKey::Zero).unwrap();
        assert_eq!(zero("[{{nope}}] [{{nope.deeper}}]"), "[] []");
        assert_eq!(zero("{{#each nope}}x{{/each}}{{upper nope}}."), ".");
        assert_eq!(zero("{{default 5 nope}}"), "5");
    }

    #[test]
    fn function_errors_name_the_function_and_line() {
        let cases: &[(&str, &str)] = &[
            (
                "a\n{{div 1 0}}",
                "t.yml:2: error calling div: integer divide by zero",
            ),
            (
                "{{#if (eq name 1)}}x{{/if}}",
                "t.yml:1: error calling eq: incompatible types for comparison: web and 1",
            ),
            (
                "{{add1 1 2}}",
                "t.yml:1: error calling add1: wrong number of args: want 1 got 2",
            ),
            (
                "{{ReadFile \"x\"}}",
                "t.yml:1: error calling ReadFile: ReadFile is only available in templates read from a config file",
            ),
        ];
        for (source, expected) in cases {
            let error = render_with(source, MissingKey::Error).unwrap_err();
            assert_eq!(error.to_string(), *expected, "{source}");
        }
    }

    #[test]
    fn bad_templates_name_the_construct_and_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "a\n{{nosuch 1}}",
                2,
                "function or helper \"nosuch\" not defined",
            ),
            (
                "{{upper (nosuch name)}}",
                1,
                "function or helper \"nosuch\" not defined",
            ),
            (
                "x\n\n{{#nosuch}}a{{/nosuch}}",
                3,
                "function or helper \"nosuch\" not defined",
            ),
            (
                "{{#if yes}}\n{{#each tags}}\n{{nosuch this}}{{/each}}{{/if}}",
                3,
                "not defined",
            ),
            (
                "{{> header}}",
                1,
                "partials (`{{> name}}`) are not supported",
            ),
            (
                "{{add 1 x=2}}",
                1,
                "function \"add\" takes positional arguments only, not `x=...`",
            ),
            (
                "line 1\n{{#if yes}}\nx\n{{/each}}",
                4,
                "helper \"if\" was opened, but \"each\" is closing",
            ),
            ("a\n{{name", 2, "invalid handlebars syntax"),
            ("a\n{{#if yes}}\nb\n", 2, "{{#if}} has no matching {{/if}}"),
            ("a\n{{/each}}", 2, "{{/each}} closes no open block"),
        ];
        for (source, line, message) in cases {
            let error = HandlebarsTemplate::parse("t.yml", source).unwrap_err();
            assert_eq!(error.template, "t.yml");
            assert_eq!(error.line, *line, "{source}: {error}");
            assert!(error.message.contains(message), "{source}: {error}");
        }
    }

    #[test]
    fn read_file_reads_below_the_render_options_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.txt"), "hello").unwrap();
        let options = RenderOptions::new(MissingKey::Error, Some(dir.path().to_path_buf()));
        let template = HandlebarsTemplate::parse("t", "{{ReadFile \"data.txt\"}}").unwrap();
        assert_eq!(template.render(&json!({}), &options).unwrap(), "hello");
    }
}
