//! Go `text/template` templates, as kube-burner workloads write them.
//!
//! A template is parsed once ([`GoTemplate::parse`]) and rendered per iteration
//! ([`GoTemplate::render`]). Supported: text and actions with `{{-`/`-}}` trimming and
//! comments; `.`, fields `.a.b`, variables (`$x := ...`, `$x = ...`, `$`), pipelines with
//! `|` and parentheses; `if`/`else if`/`else`, `range` (lists, maps, integers, with one or
//! two variables, `else`, `break`, `continue`) and `with`/`else with`; named templates:
//! `define` (at the top level only), `template` with or without a pipeline (which becomes
//! both `.` and `$` inside; the caller's variables are not visible) and `block`; the
//! functions in [`funcs`].
//!
//! Named templates can also come from a library of function-template files (kube-burner's
//! `global.functionTemplates`): parse each with [`GoTemplate::parse_library`] and the
//! templates that use them with [`GoTemplate::parse_with_library`]. Which definition a name
//! means follows Go where Go decides: within one file a name is defined once (an empty body
//! may be redefined). Across files, a `define` replaces a `block` of the same name wherever
//! either is written, and among definitions of the same kind the template's own wins over
//! the library's, a later library file over an earlier one; an empty body never replaces a
//! non-empty one. A `{{template}}` call of a name nobody defines is an error when the
//! template is parsed, and nesting deeper than [`MAX_TEMPLATE_DEPTH`] calls (Go allows
//! 100000 on its growable stacks) is an error when it renders.

mod exec;
pub mod format;
pub mod funcs;
mod lex;
mod named;
mod parse;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

pub use exec::{MAX_TEMPLATE_DEPTH, MissingKey};

use super::TemplateError;
use funcs::Functions;
use named::Templates;
use parse::{Definition, Node, Operand, Pipeline};

/// A parsed template.
#[derive(Debug, Clone)]
pub struct GoTemplate {
    name: String,
    /// What [`GoTemplate::render`] runs: the file's top level, or, as in Go, a `define` of
    /// the file's own name when the top level is only whitespace.
    main: Arc<Definition>,
    /// The templates this file names: its defines and blocks, and its top level under the
    /// file's name. This is what the file lends when it is used as a library.
    own: Templates,
    /// What `{{template}}` calls find: `own` merged with the library's.
    templates: Templates,
}

impl GoTemplate {
    /// Parses `source`; `name` (usually the file's path) goes into every error. Every
    /// `{{template}}` call must name a template the source defines.
    pub fn parse(name: &str, source: &str) -> Result<Self, TemplateError> {
        Self::parse_with_library(name, source, &[])
    }

    /// Parses `source` as [`GoTemplate::parse`] does, with the named templates of
    /// `library` (files parsed with [`GoTemplate::parse_library`]) also callable, from the
    /// template and from each other. Every call the template can reach must name a
    /// template that exists, here or in the library.
    pub fn parse_with_library(
        name: &str,
        source: &str,
        library: &[GoTemplate],
    ) -> Result<Self, TemplateError> {
        let mut template = Self::parse_library(name, source)?;
        template.templates = named::merge(&template.own, library.iter().map(|t| &t.own));
        named::check_calls(&template.main, &template.templates, |name| {
            let files: Vec<&str> = library.iter().map(|t| t.name.as_str()).collect();
            named::undefined(name, &template.name, &files)
        })?;
        Ok(template)
    }

    /// Parses a function-template file: one whose `define`s other templates call.
    /// Its own `{{template}}` calls are checked only when it is attached to a template
    /// with [`GoTemplate::parse_with_library`], as they may name templates that another
    /// file of the library, or the template using it, defines.
    pub fn parse_library(name: &str, source: &str) -> Result<Self, TemplateError> {
        let pieces = lex::split(name, source)?;
        let parsed = parse::parse(name, pieces)?;
        let mut own: Templates = parsed
            .definitions
            .into_iter()
            .map(|(name, definition)| (name, Arc::new(definition)))
            .collect();
        let top_level = Definition {
            file: name.to_string(),
            line: 1,
            block: false,
            body: parsed.nodes,
        };
        // As Go's `parse.Tree.add`: the top level is one more template, named like the file.
        let main = match own.get(name) {
            Some(defined) if !defined.is_empty() && top_level.is_empty() => defined.clone(),
            Some(defined) if !defined.is_empty() => {
                return Err(TemplateError {
                    template: name.to_string(),
                    line: defined.line,
                    message: format!(
                        "multiple definition of template {name:?}: the file's top level is \
                         a template of that name too"
                    ),
                });
            }
            _ => {
                let main = Arc::new(top_level);
                own.insert(name.to_string(), main.clone());
                main
            }
        };
        for definition in own.values() {
            check_functions(definition)?;
        }
        Ok(Self {
            name: name.to_string(),
            main,
            templates: own.clone(),
            own,
        })
    }

    /// Renders the template with `data` as `.` and `$`.
    pub fn render(&self, data: &Value, options: &RenderOptions) -> Result<String, TemplateError> {
        let exec = exec::Exec::new(options.missing, &options.functions, &self.templates, data);
        exec.run(&self.main.body, data)
            .map_err(|error| match error.inside {
                None => TemplateError {
                    template: self.name.clone(),
                    line: error.line,
                    message: error.message,
                },
                Some(inside) => TemplateError {
                    template: inside.file,
                    line: error.line,
                    message: format!("executing {:?}: {}", inside.template, error.message),
                },
            })
    }
}

/// How templates render: what a missing key gives, and the function table.
pub struct RenderOptions {
    pub missing: MissingKey,
    functions: Functions,
}

impl RenderOptions {
    /// `read_root` is the folder `ReadFile` may read below (the config file's).
    pub fn new(missing: MissingKey, read_root: Option<PathBuf>) -> Self {
        Self {
            missing,
            functions: Functions::new(read_root),
        }
    }

    /// The function table, which the handlebars front end shares.
    pub(crate) fn functions(&self) -> &Functions {
        &self.functions
    }
}

/// Fails at parse time, as Go does, when a template calls a function nobody defined.
fn check_functions(definition: &Definition) -> Result<(), TemplateError> {
    fn pipeline(file: &str, p: &Pipeline) -> Result<(), TemplateError> {
        for command in &p.commands {
            for operand in &command.operands {
                match operand {
                    Operand::Function(f) if !Functions::has(f) => {
                        return Err(TemplateError {
                            template: file.to_string(),
                            line: p.line,
                            message: format!("function {f:?} not defined"),
                        });
                    }
                    Operand::Group(inner, _) => pipeline(file, inner)?,
                    _ => {}
                }
            }
        }
        Ok(())
    }
    Node::walk(&definition.body, &mut |node| {
        node.pipelines()
            .into_iter()
            .try_for_each(|p| pipeline(&definition.file, p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "Iteration": 3, "Replica": 1, "JobName": "density", "UUID": "u-1",
            "name": "web", "count": 0, "ratio": 1.5, "empty": "", "tags": ["a", "b", "c"],
            "labels": {"zone": "z1", "app": "web"}, "nested": {"inner": {"value": 7}},
            "html": "<b>&</b>", "yes": true, "no": false, "nothing": null,
        })
    }

    fn render(source: &str) -> String {
        render_with(source, MissingKey::Error).unwrap_or_else(|e| panic!("{source:?}: {e}"))
    }

    fn render_with(source: &str, missing: MissingKey) -> Result<String, TemplateError> {
        GoTemplate::parse("t.yml", source)?.render(&data(), &RenderOptions::new(missing, None))
    }

    /// Each case is what Go's text/template with sprig v3 prints for the same input
    /// (written from their documented semantics).
    #[test]
    fn renders_as_go_text_template_and_sprig_do() {
        let cases: &[(&str, &str)] = &[
            ("name: {{.name}}-{{.Iteration}}", "name: web-3"),
            ("{{ .Replica }}/{{.JobName}}/{{ .UUID }}", "1/density/u-1"),
            ("{{ .nested.inner.value }}", "7"),
            (
                "{{ .ratio }} {{ .yes }} {{ .tags }} {{ .labels }}",
                "1.5 true [a b c] map[app:web zone:z1]",
            ),
            ("{{ .name | quote }} {{ .name | squote }}", "\"web\" 'web'"),
            ("{{ .name | upper | printf \"%s!\" }}", "WEB!"),
            ("{{ printf \"%05d\" .Iteration }}", "00003"),
            ("{{ printf \"%s-%d-%v\" .name 7 .yes }}", "web-7-true"),
            (
                "{{ add .Iteration 2 }} {{ sub 10 .Iteration }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 3 }}",
                "5 7 24 3 1",
            ),
            (
                "{{ add \"2\" 3 }} {{ add 1.9 1 }} {{ max 3 9 2 }} {{ min 3 9 2 }} {{ add1 1 }}",
                "5 2 9 2 2",
            ),
            ("{{ if eq .name \"web\" }}yes{{ else }}no{{ end }}", "yes"),
            (
                "{{ if gt .Iteration 5 }}big{{ else if gt .Iteration 2 }}mid{{ else }}small{{ end }}",
                "mid",
            ),
            (
                "{{ if and .yes .no }}a{{ else if or .no .count .name }}o{{ end }}",
                "o",
            ),
            (
                "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ or 0 false }} {{ not .count }}",
                "0 x false true",
            ),
            ("{{ if eq .Iteration 1 2 3 }}in{{ end }}", "in"),
            (
                "{{ if ne .name \"x\" }}ne{{ end }}{{ if le 2 2 }}le{{ end }}{{ if lt \"a\" \"b\" }}lt{{ end }}",
                "nelelt",
            ),
            ("{{ range .tags }}[{{ . }}]{{ end }}", "[a][b][c]"),
            (
                "{{ range $i, $t := .tags }}{{ $i }}={{ $t }} {{ end }}",
                "0=a 1=b 2=c ",
            ),
            (
                "{{ range $k, $v := .labels }}{{ $k }}:{{ $v }};{{ end }}",
                "app:web;zone:z1;",
            ),
            ("{{ range until 3 }}{{ . }}{{ end }}", "012"),
            (
                "{{ range $i := until 5 }}{{ if eq $i 3 }}{{ break }}{{ end }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ $i }}{{ end }}",
                "02",
            ),
            ("{{ range list }}x{{ else }}none{{ end }}", "none"),
            ("{{ range 3 }}{{ . }}{{ end }}", "012"),
            ("{{ with .nested.inner }}{{ .value }}{{ end }}", "7"),
            ("{{ with .empty }}set{{ else }}unset{{ end }}", "unset"),
            ("{{ $x := 5 }}{{ $x }}{{ $x = add $x 1 }} {{ $x }}", "5 6"),
            ("{{ range .tags }}{{ $.name }}{{ end }}", "webwebweb"),
            (
                "{{ $n := .name }}{{ with .labels }}{{ $n }}-{{ .zone }}{{ end }}",
                "web-z1",
            ),
            ("a  {{- .name -}}  b", "awebb"),
            ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
            ("{{ (printf \"%s-%s\" .name \"x\") | upper }}", "WEB-X"),
            (
                "{{ len .tags }} {{ len .name }} {{ index .tags 1 }} {{ index .labels \"zone\" }}",
                "3 3 b z1",
            ),
            (
                "{{ default \"d\" .empty }} {{ default \"d\" .name }} {{ empty .count }} {{ empty .tags }}",
                "d web true false",
            ),
            ("{{ ternary \"y\" \"n\" .yes }}", "y"),
            (
                "{{ trim \"  x \" }}|{{ trimPrefix \"we\" .name }}|{{ trimSuffix \"b\" .name }}|{{ replace \"e\" \"E\" .name }}",
                "x|b|we|wEb",
            ),
            (
                "{{ contains \"e\" .name }} {{ hasPrefix \"w\" .name }} {{ hasSuffix \"x\" .name }}",
                "true true false",
            ),
            (
                "{{ title \"hello world\" }} {{ lower \"ABC\" }} {{ repeat 3 \"ab\" }}",
                "Hello World abc ababab",
            ),
            (
                "{{ trunc 3 \"abcdef\" }} {{ trunc -2 \"abcdef\" }} {{ trunc 9 \"ab\" }} {{ substr 1 3 \"abcdef\" }}",
                "abc ef ab bc",
            ),
            (
                "{{ (split \"-\" \"a-b-c\")._1 }} {{ join \",\" .tags }} {{ splitList \"-\" \"a-b\" }}",
                "b a,b,c [a b]",
            ),
            (
                "{{ list 1 \"a\" }} {{ (dict \"k\" \"v\").k }} {{ get .labels \"app\" }} {{ hasKey .labels \"x\" }}",
                "[1 a] v web false",
            ),
            (
                "{{ toJson .labels }} {{ toJson .html }}",
                "{\"app\":\"web\",\"zone\":\"z1\"} \"\\u003cb\\u003e\\u0026\\u003c/b\\u003e\"",
            ),
            ("{{ toYaml .labels }}", "app: web\nzone: z1"),
            (
                "x:{{ toYaml .labels | nindent 2 }}",
                "x:\n  app: web\n  zone: z1",
            ),
            ("{{ indent 2 \"a\\nb\" }}", "  a\n  b"),
            (
                "{{ atoi \"42\" }} {{ int \"7\" }} {{ int 2.9 }} {{ float64 \"1.5\" }} {{ toString 5 }}",
                "42 7 2 1.5 5",
            ),
            (
                "{{ b64enc \"burner\" }} {{ b64dec \"YnVybmVy\" }}",
                "YnVybmVy burner",
            ),
            (
                "{{ sha256sum \"abc\" }}",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "{{ seq 3 }}|{{ seq 2 4 }}|{{ seq 1 2 6 }}",
                "1 2 3|2 3 4|1 3 5",
            ),
            (
                "{{ Binomial 5 2 }} {{ IndexToCombination nil 3 4 2 }}",
                "10 [1 2]",
            ),
            ("{{ GetSubnet24 70000 }}", "2.17.112.0/24"),
            ("{{ GetIPAddress \"a b c d e f\" 1 2 }}", "c d"),
            ("{{ print 1 2 \"x\" 3 }}{{ println \"a\" 1 }}", "1 2x3a 1\n"),
            ("{{ .nothing }}", "<no value>"),
            (
                "{{ 'a' }} {{ 0x10 }} {{ 1e3 }} {{ -2 }} {{ 1e6 }}",
                "97 16 1000 -2 1e+06",
            ),
        ];
        for (source, expected) in cases {
            assert_eq!(render(source), *expected, "{source}");
        }
    }

    #[test]
    fn random_helpers_produce_the_asked_shape() {
        let out =
            render("{{ randAlphaNum 12 }} {{ randNumeric 4 }} {{ randInt 5 6 }} {{ uuidv4 }}");
        let parts: Vec<&str> = out.split(' ').collect();
        assert_eq!(parts[0].len(), 12);
        assert!(parts[0].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(parts[1].len() == 4 && parts[1].chars().all(|c| c.is_ascii_digit()));
        assert_eq!(parts[2], "5");
        assert_eq!(parts[3].len(), 36);
        assert_eq!(&parts[3][14..15], "4");
    }

    #[test]
    fn missing_keys_are_errors_unless_asked_to_be_zero() {
        let error = render_with("a\n{{ .nope }}", MissingKey::Error).unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.yml:2: map has no entry for key \"nope\""
        );
        assert_eq!(
            render_with("{{ .nope }}", MissingKey::Zero).unwrap(),
            "<no value>"
        );
        assert_eq!(
            render_with("{{ .nope | default 5 }}", MissingKey::Zero).unwrap(),
            "5"
        );
        assert_eq!(
            render_with("{{ .nope.deeper }}", MissingKey::Zero).unwrap(),
            "<no value>"
        );
    }

    #[test]
    fn bad_templates_name_the_construct_and_line() {
        let cases: &[(&str, &str)] = &[
            ("{{ if .yes }}x", "t.yml:1: {{if}} has no matching {{end}}"),
            ("x\n{{ end }}", "t.yml:2: unexpected {{end}}"),
            ("{{ nosuch 1 }}", "t.yml:1: function \"nosuch\" not defined"),
            (
                "{{ template \"x\" }}",
                "t.yml:1: template \"x\" not defined: no {{define \"x\"}} or {{block \"x\"}} in t.yml",
            ),
            ("{{ break }}", "t.yml:1: {{break}} outside {{range}}"),
            (
                "{{ .name 1 }}",
                "t.yml:1: field .name is not a function and can't take arguments",
            ),
            ("{{ $y }}", "t.yml:1: undefined variable: $y"),
            (
                "{{ div 1 0 }}",
                "t.yml:1: error calling div: integer divide by zero",
            ),
            ("{{ \"x\" | }}", "t.yml:1: missing command in pipeline"),
            (
                "{{ range .name }}{{ end }}",
                "t.yml:1: range can't iterate over web",
            ),
            (
                "{{ eq .name 1 }}",
                "t.yml:1: error calling eq: incompatible types for comparison: web and 1",
            ),
        ];
        for (source, expected) in cases {
            let error = render_with(source, MissingKey::Error).unwrap_err();
            assert_eq!(error.to_string(), *expected, "{source}");
        }
    }

    #[test]
    fn read_file_stays_inside_the_config_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.txt"), "hello").unwrap();
        let options = RenderOptions::new(MissingKey::Error, Some(dir.path().to_path_buf()));
        let template = GoTemplate::parse("t", "{{ ReadFile \"data.txt\" }}").unwrap();
        assert_eq!(template.render(&json!({}), &options).unwrap(), "hello");
        let escape = GoTemplate::parse("t", "{{ ReadFile \"../etc/passwd\" }}").unwrap();
        assert!(
            escape
                .render(&json!({}), &options)
                .unwrap_err()
                .message
                .contains("leaves it")
        );
    }
}
