//! Named templates: which `define` or `block` a name means when a template and its
//! library of function-template files each define some, and whether every
//! `{{template}}` call finds one. Parsing a single file's definitions is `parse`'s job;
//! running them is `exec`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::super::TemplateError;
use super::parse::{Definition, Node};

/// Named templates, as `{{template "name"}}` finds them.
pub type Templates = BTreeMap<String, Arc<Definition>>;

/// One namespace from a template's own definitions and its library's (in file order).
/// Sources apply from weakest to strongest: blocks before defines, and within each the
/// library files in order before the template itself. A stronger definition replaces a
/// weaker one of the same name unless its body is empty (Go's `associate` keeps the
/// non-empty one). So a library `define` fills in a template's `block`, while a
/// template's own `define` wins over the library's.
pub fn merge<'a>(
    own: &'a Templates,
    library: impl Iterator<Item = &'a Templates> + Clone,
) -> Templates {
    let mut merged = Templates::new();
    for blocks in [true, false] {
        for source in library.clone().chain([own]) {
            for (name, definition) in source.iter().filter(|(_, d)| d.block == blocks) {
                let keep = merged
                    .get(name)
                    .is_some_and(|weaker| definition.is_empty() && !weaker.is_empty());
                if !keep {
                    merged.insert(name.clone(), definition.clone());
                }
            }
        }
    }
    merged
}

/// Fails, as Go would when it got there, if a `{{template}}` call reachable from `main`
/// names a template `templates` does not have; `undefined` words the message. Calls in
/// definitions nothing reaches are left alone: they never run.
pub fn check_calls(
    main: &Definition,
    templates: &Templates,
    undefined: impl Fn(&str) -> String,
) -> Result<(), TemplateError> {
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut pending: Vec<&Definition> = vec![main];
    while let Some(definition) = pending.pop() {
        Node::walk(&definition.body, &mut |node| {
            let Node::Template { name, line, .. } = node else {
                return Ok(());
            };
            match templates.get(name) {
                Some(called) => {
                    if reached.insert(name) {
                        pending.push(called);
                    }
                    Ok(())
                }
                None => Err(TemplateError {
                    template: definition.file.clone(),
                    line: *line,
                    message: undefined(name),
                }),
            }
        })?;
    }
    Ok(())
}

/// Go says `no template "x" associated with template "y"`; this also says where a
/// definition was looked for.
pub fn undefined(name: &str, template: &str, library: &[&str]) -> String {
    let mut message = format!(
        "template {name:?} not defined: no {{{{define {name:?}}}}} or {{{{block {name:?}}}}} in {template}"
    );
    if !library.is_empty() {
        message.push_str(&format!(
            " or its function templates ({})",
            library.join(", ")
        ));
    }
    message
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::super::TemplateError;
    use super::super::{GoTemplate, MissingKey, RenderOptions};

    /// Function-template files: (name, source).
    type Library<'a> = &'a [(&'a str, &'a str)];

    fn data() -> Value {
        json!({
            "name": "web", "Iteration": 3, "yes": true,
            "tags": ["a", "b", "c"], "labels": {"zone": "z1", "app": "web"},
        })
    }

    fn render_with_library(source: &str, library: Library) -> Result<String, TemplateError> {
        let library = library
            .iter()
            .map(|(name, source)| GoTemplate::parse_library(name, source))
            .collect::<Result<Vec<_>, _>>()?;
        GoTemplate::parse_with_library("t.yml", source, &library)?
            .render(&data(), &RenderOptions::new(MissingKey::Error, None))
    }

    fn render(source: &str) -> Result<String, TemplateError> {
        render_with_library(source, &[])
    }

    /// Each case is what Go's text/template prints for the same input (written from its
    /// documented semantics).
    #[test]
    fn define_template_and_block_render_as_go_does() {
        let cases: &[(&str, &str)] = &[
            ("{{define \"a\"}}A{{end}}{{template \"a\"}}", "A"),
            // A define prints nothing where it stands; the text around it stays.
            ("x{{define \"a\"}}A{{end}}y{{template \"a\"}}z", "xyAz"),
            // Definitions are known before anything runs, so a call may come first.
            (
                "{{template \"later\" .name}}{{define \"later\"}}L{{.}}{{end}}",
                "Lweb",
            ),
            // Without a pipeline, dot and $ are nil inside.
            (
                "{{define \"d\"}}[{{.}}|{{$}}]{{end}}{{template \"d\"}}",
                "[<no value>|<no value>]",
            ),
            // With one, its value is both dot and $.
            (
                "{{define \"d\"}}{{.}}/{{$}}{{end}}{{template \"d\" .name}}",
                "web/web",
            ),
            (
                "{{define \"d\"}}{{.zone}}-{{$.app}}{{end}}{{template \"d\" .labels}}",
                "z1-web",
            ),
            (
                "{{define \"up\"}}{{upper .}}{{end}}{{template \"up\" printf \"%s-%d\" .name .Iteration}}",
                "WEB-3",
            ),
            (
                "{{define \"item\"}}<{{.}}>{{end}}{{range .tags}}{{template \"item\" .}}{{end}}",
                "<a><b><c>",
            ),
            // The caller's $ is back after the call.
            (
                "{{define \"d\"}}{{$}}{{end}}{{template \"d\" 1}}{{$.name}}",
                "1web",
            ),
            (
                "{{define \"inner\"}}({{.}}){{end}}{{define \"outer\"}}[{{template \"inner\" .}}]{{end}}{{template \"outer\" 1}}",
                "[(1)]",
            ),
            (
                "{{define \"count\"}}{{.}}{{if gt . 0}}{{template \"count\" sub . 1}}{{end}}{{end}}{{template \"count\" 3}}",
                "3210",
            ),
            // A block is a define and a call in one.
            ("<{{block \"b\" .name}}[{{.}}]{{end}}>", "<[web]>"),
            ("{{if .yes}}{{block \"b\" .}}in{{end}}{{end}}", "in"),
            ("{{block \"b\" .}}x{{end}}{{template \"b\" 1}}", "xx"),
            // Within one file an empty body neither replaces nor blocks a non-empty one.
            (
                "{{block \"b\" .}}default{{end}}{{define \"b\"}} {{end}}",
                "default",
            ),
            ("{{define \"b\"}}{{end}}{{block \"b\" .}}x{{end}}", "x"),
            // A template whose file-level text is only whitespace renders its own-named define.
            ("{{define \"t.yml\"}}self{{end}}\n", "self"),
        ];
        for (source, expected) in cases {
            let rendered = render(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            assert_eq!(rendered, *expected, "{source}");
        }
    }

    #[test]
    fn trimming_works_around_define_template_and_block() {
        let cases: &[(&str, &str)] = &[
            (
                "{{define \"x\"}}\n  body\n{{end}}\n{{template \"x\"}}",
                "\n\n  body\n",
            ),
            (
                "{{- define \"x\" -}}\n  body\n{{- end -}}\n{{ template \"x\" }}",
                "body",
            ),
            (
                "{{define \"x\"}}X{{end}}a \n {{- template \"x\" -}} \n b",
                "aXb",
            ),
            ("a\n{{- block \"b\" . -}}\n  B\n{{- end }}\nc", "aB\nc"),
        ];
        for (source, expected) in cases {
            let rendered = render(source).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            assert_eq!(rendered, *expected, "{source}");
        }
    }

    #[test]
    fn library_definitions_are_callable_and_the_templates_own_defines_win() {
        let labels = ("lib.yml", "{{define \"labels\"}}app: {{.name}}{{end}}\n");
        let cases: &[(&str, Library, &str)] = &[
            (
                "metadata: {{template \"labels\" .}}",
                &[labels],
                "metadata: app: web",
            ),
            // A library define fills in the template's block.
            (
                "{{block \"b\" .}}default{{end}}",
                &[("lib.yml", "{{define \"b\"}}override{{end}}")],
                "override",
            ),
            // ... but not with an empty body.
            (
                "{{block \"b\" .}}default{{end}}",
                &[("lib.yml", "{{define \"b\"}}  {{end}}")],
                "default",
            ),
            // The template's own define wins over the library's.
            (
                "{{define \"x\"}}main{{end}}{{template \"x\"}}",
                &[("lib.yml", "{{define \"x\"}}lib{{end}}")],
                "main",
            ),
            // A later library file wins over an earlier one.
            (
                "{{template \"x\"}}",
                &[
                    ("one.yml", "{{define \"x\"}}one{{end}}"),
                    ("two.yml", "{{define \"x\"}}two{{end}}"),
                ],
                "two",
            ),
            // Library files call each other, and templates the user defines.
            (
                "{{template \"outer\" 1}}",
                &[
                    (
                        "one.yml",
                        "{{define \"outer\"}}<{{template \"inner\" .}}>{{end}}",
                    ),
                    ("two.yml", "{{define \"inner\"}}{{.}}{{end}}"),
                ],
                "<1>",
            ),
            (
                "{{define \"content\"}}c{{end}}{{template \"frame\"}}",
                &[(
                    "lib.yml",
                    "{{define \"frame\"}}[{{template \"content\" .}}]{{end}}",
                )],
                "[c]",
            ),
        ];
        for (source, library, expected) in cases {
            let rendered =
                render_with_library(source, library).unwrap_or_else(|e| panic!("{source:?}: {e}"));
            assert_eq!(rendered, *expected, "{source}");
        }
    }

    #[test]
    fn calling_an_undefined_template_fails_at_parse_time_naming_it() {
        let cases: &[(&str, Library, &str)] = &[
            (
                "a\n{{ template \"nope\" }}",
                &[],
                "t.yml:2: template \"nope\" not defined: no {{define \"nope\"}} or {{block \"nope\"}} in t.yml",
            ),
            (
                "{{ template \"nope\" . }}",
                &[("one.yml", ""), ("two.yml", "")],
                "t.yml:1: template \"nope\" not defined: no {{define \"nope\"}} or {{block \"nope\"}} \
                 in t.yml or its function templates (one.yml, two.yml)",
            ),
            // The error is where the call is written, here in the library.
            (
                "{{ template \"frame\" }}",
                &[(
                    "lib.yml",
                    "\n{{define \"frame\"}}\n{{template \"nope\"}}{{end}}",
                )],
                "lib.yml:3: template \"nope\" not defined: no {{define \"nope\"}} or {{block \"nope\"}} \
                 in t.yml or its function templates (lib.yml)",
            ),
        ];
        for (source, library, expected) in cases {
            let library = library
                .iter()
                .map(|(name, source)| GoTemplate::parse_library(name, source).unwrap())
                .collect::<Vec<_>>();
            let error = GoTemplate::parse_with_library("t.yml", source, &library).unwrap_err();
            assert_eq!(error.to_string(), *expected, "{source}");
        }
    }

    #[test]
    fn undefined_calls_that_cannot_run_fail_only_when_they_do() {
        // As in Go, a definition nothing calls may call anything.
        assert_eq!(
            render("{{define \"unused\"}}{{template \"nope\"}}{{end}}ok").unwrap(),
            "ok"
        );
        // A library file alone is not checked; rendering it reaches the call.
        let library = GoTemplate::parse_library("lib.yml", "x\n{{template \"nope\"}}").unwrap();
        let error = library
            .render(&data(), &RenderOptions::new(MissingKey::Error, None))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "lib.yml:2: template \"nope\" not defined"
        );
    }

    #[test]
    fn runaway_recursion_is_an_error_naming_the_template_and_line() {
        let source = "{{template \"loop\" .}}\n{{define \"loop\"}}x{{template \"loop\" .}}{{end}}";
        assert_eq!(
            render(source).unwrap_err().to_string(),
            "t.yml:2: executing \"loop\": exceeded maximum template depth (100) \
             calling template \"loop\""
        );
        let library = [(
            "lib.yml",
            "{{define \"a\"}}{{template \"b\"}}{{end}}\n{{define \"b\"}}{{template \"a\"}}{{end}}",
        )];
        assert_eq!(
            render_with_library("{{template \"a\"}}", &library)
                .unwrap_err()
                .to_string(),
            "lib.yml:2: executing \"b\": exceeded maximum template depth (100) \
             calling template \"a\""
        );
    }

    #[test]
    fn recursion_reaches_the_depth_limit_without_overflowing_the_stack() {
        // Each level nests if, with and range, so it takes more stack than a bare call.
        let down = "{{define \"down\"}}{{if gt . 0}}{{with .}}{{range $i := until 1}}\
                    {{template \"down\" sub $ 1}}{{end}}{{end}}{{else}}done{{end}}{{end}}";
        // 99 down to 0 is 100 nested calls, the most the limit allows ...
        assert_eq!(
            render(&format!("{down}{{{{template \"down\" 99}}}}")).unwrap(),
            "done"
        );
        // ... and one more is too many.
        assert_eq!(
            render(&format!("{down}{{{{template \"down\" 100}}}}"))
                .unwrap_err()
                .to_string(),
            "t.yml:1: executing \"down\": exceeded maximum template depth (100) \
             calling template \"down\""
        );
    }

    #[test]
    fn errors_inside_a_called_template_name_its_file_and_line() {
        let cases: &[(&str, Library, &str)] = &[
            (
                "{{template \"labels\" .}}",
                &[("lib.yml", "{{define \"labels\"}}\napp: {{.nope}}{{end}}")],
                "lib.yml:2: executing \"labels\": map has no entry for key \"nope\"",
            ),
            // No dynamic scoping: the caller's variables are not visible inside.
            (
                "{{$x := 1}}{{define \"d\"}}\n{{$x}}{{end}}{{template \"d\"}}",
                &[],
                "t.yml:2: executing \"d\": undefined variable: $x",
            ),
        ];
        for (source, library, expected) in cases {
            let error = render_with_library(source, library).unwrap_err();
            assert_eq!(error.to_string(), *expected, "{source}");
        }
    }

    #[test]
    fn misplaced_or_malformed_definitions_are_parse_errors() {
        let nested = "unexpected {{define}}: templates can only be defined at the top level, \
                      outside every other action";
        let cases: &[(&str, String)] = &[
            (
                "{{if .yes}}{{define \"x\"}}y{{end}}{{end}}",
                format!("t.yml:1: {nested}"),
            ),
            (
                "{{range .tags}}\n{{define \"x\"}}{{end}}{{end}}",
                format!("t.yml:2: {nested}"),
            ),
            (
                "{{with .name}}{{define \"x\"}}{{end}}{{end}}",
                format!("t.yml:1: {nested}"),
            ),
            (
                "{{define \"a\"}}{{define \"b\"}}{{end}}{{end}}",
                format!("t.yml:1: {nested}"),
            ),
            (
                "{{block \"a\" .}}{{define \"b\"}}{{end}}{{end}}",
                format!("t.yml:1: {nested}"),
            ),
            (
                "{{define \"a\"}}1{{end}}\n{{define \"a\"}}2{{end}}",
                "t.yml:2: multiple definition of template \"a\" (first defined on line 1)".into(),
            ),
            (
                "{{block \"a\" .}}1{{end}}{{define \"a\"}}2{{end}}",
                "t.yml:1: multiple definition of template \"a\" (first defined on line 1)".into(),
            ),
            (
                "{{define \"a\"}}a{{else}}b{{end}}",
                "t.yml:1: unexpected {{else}} in {{define}}".into(),
            ),
            (
                "{{define \"a\"}}a",
                "t.yml:1: {{define}} has no matching {{end}}".into(),
            ),
            (
                "{{template .name}}",
                "t.yml:1: {{template}} needs a quoted template name: {{template \"name\"}}".into(),
            ),
            (
                "{{block \"b\"}}x{{end}}",
                "t.yml:1: missing value for {{block}}: write {{block \"name\" .}}".into(),
            ),
            // A body starts afresh, so break cannot leave a range around a block.
            (
                "{{range .tags}}{{block \"b\" .}}{{break}}{{end}}{{end}}",
                "t.yml:1: {{break}} outside {{range}}".into(),
            ),
            (
                "{{define \"a\"}}{{ nosuch }}{{end}}",
                "t.yml:1: function \"nosuch\" not defined".into(),
            ),
        ];
        for (source, expected) in cases {
            let error = render(source).unwrap_err();
            assert_eq!(error.to_string(), *expected, "{source}");
        }
    }
}
