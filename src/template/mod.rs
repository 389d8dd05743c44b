//! Templates: rendering object templates (and the config file itself) per iteration.
//!
//! Two front ends share one function table and one data object:
//! - [`handlebars`], burner's native syntax (`{{JobName}}-{{Iteration}}`, `{{#each}}`);
//! - [`go`], burner's own interpreter for Go's `text/template` syntax with sprig functions,
//!   which kube-burner workloads are written in (`{{.JobName}}-{{.Iteration}}`).
//!
//! Both parse a template once and render it many times; anything unsupported is an error
//! naming the construct, the template and the line. [`Template`] holds either, and
//! [`detect`] tells them apart when a template does not say which it is.

pub mod go;
pub mod handlebars;

use std::path::PathBuf;

use serde_json::Value;

use self::handlebars::HandlebarsTemplate;
use go::GoTemplate;
pub use go::MissingKey;
use go::funcs::Functions;

/// Where a template error is: the template's name (its file) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}:{line}: {message}")]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub message: String,
}

/// The two template syntaxes burner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Go's `text/template`, as kube-burner workloads are written.
    Go,
    /// Handlebars, burner's native syntax.
    Handlebars,
}

/// A parsed template of either syntax, so callers hold one type.
#[derive(Debug, Clone)]
pub enum Template {
    Go(GoTemplate),
    Handlebars(HandlebarsTemplate),
}

impl Template {
    /// Parses `source` in `syntax`, or in the syntax [`detect`] finds when `syntax` is `None`.
    /// A Go template sees the `{{define}}`s of `library` (`global.functionTemplates`).
    pub fn parse(
        name: &str,
        source: &str,
        syntax: Option<Syntax>,
        library: &[GoTemplate],
    ) -> Result<Self, TemplateError> {
        let syntax = match syntax {
            Some(syntax) => syntax,
            None => detect(name, source)?,
        };
        Ok(match syntax {
            Syntax::Go => Self::Go(GoTemplate::parse_with_library(name, source, library)?),
            Syntax::Handlebars => Self::Handlebars(HandlebarsTemplate::parse(name, source)?),
        })
    }

    pub fn syntax(&self) -> Syntax {
        match self {
            Self::Go(_) => Syntax::Go,
            Self::Handlebars(_) => Syntax::Handlebars,
        }
    }

    /// Renders the template with `data` (`Iteration`, `Replica`, `JobName`, `UUID`, `RunID`
    /// and the input variables).
    pub fn render(&self, data: &Value, options: &RenderOptions) -> Result<String, TemplateError> {
        match self {
            Self::Go(template) => template.render(data, &options.go),
            Self::Handlebars(template) => template.render(data, options),
        }
    }
}

/// How templates of either syntax render: what a missing variable gives, and the function
/// table (with the folder `ReadFile` may read below), which both front ends share.
pub struct RenderOptions {
    go: go::RenderOptions,
}

impl RenderOptions {
    /// `read_root` is the folder `ReadFile` may read below (the config file's).
    pub fn new(missing: MissingKey, read_root: Option<PathBuf>) -> Self {
        Self {
            go: go::RenderOptions::new(missing, read_root),
        }
    }

    pub fn missing(&self) -> MissingKey {
        self.go.missing
    }

    /// The options as the Go front end takes them, for callers holding a [`GoTemplate`].
    pub fn go(&self) -> &go::RenderOptions {
        &self.go
    }

    fn functions(&self) -> &Functions {
        self.go.functions()
    }
}

/// Which syntax `source` is written in, from its actions (`{{ … }}`):
///
/// - **Handlebars** when an action uses a construct only handlebars has: a block
///   `{{#…}}`/`{{/…}}` (other than a Go comment `{{/* … */}}`), `{{^`, `{{~`/`~}}`, a comment
///   `{{! … }}`, a partial `{{>`, `{{&`, a decorator `{{*`, triple braces `{{{`; or a bare name
///   that is neither a Go function nor a Go keyword, first or as an argument (`{{Iteration}}`,
///   `{{add Iteration 1}}`), or `this`, `@index`, `../name`, `key=value`.
/// - **Go** when an action starts with `.`, `$`, `(`, a trim marker `{{- `/` -}}`, a comment
///   `/*`, a Go keyword (`if range with end define template block break continue`), uses a
///   pipe `|`, or passes `.x`/`$x` to a function.
/// - Neither: literals, `{{else}}`, and functions called with literals only
///   (`{{randAlphaNum 8}}`), which mean the same in both. A template with no action of either
///   kind is Go (it renders the same in both).
///
/// A template with markers of both syntaxes is an error naming the file, the line where the
/// second syntax appeared, and one construct of each.
pub fn detect(name: &str, source: &str) -> Result<Syntax, TemplateError> {
    let mut first_go: Option<Action<'_>> = None;
    let mut first_handlebars: Option<(Action<'_>, Option<&str>)> = None;
    for action in actions(source) {
        let line = action.line;
        match classify(action.inner) {
            None => continue,
            Some(Clue::Go) => {
                first_go.get_or_insert(action);
            }
            Some(Clue::Handlebars) => {
                first_handlebars.get_or_insert((action, None));
            }
            Some(Clue::BareName(bare)) => {
                first_handlebars.get_or_insert((action, Some(bare)));
            }
        }
        if let (Some(go), Some((handlebars, bare))) = (&first_go, &first_handlebars) {
            // A bare name is also what a Go function burner lacks looks like; say why it counts.
            let why = bare.map_or(String::new(), |bare| {
                format!(", where `{bare}` is neither a Go function nor a Go keyword")
            });
            return Err(TemplateError {
                template: name.to_string(),
                line,
                message: format!(
                    "mixes Go template syntax ({} on line {}) with handlebars syntax ({} on \
                     line {}{why}); write the template in one of them",
                    go.shown(),
                    go.line,
                    handlebars.shown(),
                    handlebars.line
                ),
            });
        }
    }
    Ok(if first_handlebars.is_some() {
        Syntax::Handlebars
    } else {
        Syntax::Go
    })
}

/// Go's keywords that can start an action (`else` starts actions of both syntaxes).
const GO_KEYWORDS: &[&str] = &[
    "if", "range", "with", "end", "define", "template", "block", "break", "continue",
];

/// One `{{ … }}` as the detector sees it.
struct Action<'a> {
    line: usize,
    /// Between the opening `{{` and the closing `}}`: `#each tags`, `- .name -`, `{html`.
    inner: &'a str,
    /// The whole action, braces included.
    text: &'a str,
}

impl Action<'_> {
    /// The action for a message, shortened when long.
    fn shown(&self) -> String {
        let text = self.text.replace('\n', " ");
        match text.char_indices().nth(40) {
            Some((cut, _)) => format!("`{}…`", &text[..cut]),
            None => format!("`{text}`"),
        }
    }
}

/// The actions of `source`, in order. Quoted strings and comments may hold `}}`.
fn actions(source: &str) -> Vec<Action<'_>> {
    let mut found = Vec::new();
    let mut position = 0;
    let mut line = 1;
    while let Some(offset) = source[position..].find("{{") {
        let start = position + offset;
        line += source[position..start].matches('\n').count();
        let inner_start = start + 2;
        let inner_end = action_end(source, inner_start);
        let end = (inner_end + 2).min(source.len());
        found.push(Action {
            line,
            inner: &source[inner_start..inner_end],
            text: &source[start..end],
        });
        line += source[start..end].matches('\n').count();
        position = end;
    }
    found
}

/// Where the `}}` closing the action whose inside starts at `from` is (or the source's end).
fn action_end(source: &str, from: usize) -> usize {
    let rest = &source[from..];
    let close_after = |skip: usize| rest[skip..].find("}}").map(|i| from + skip + i);
    let unmarked = rest.trim_start_matches(['-', '~', ' ', '\t', '\r', '\n']);
    // Handlebars' long comment `{{!-- … --}}` and Go's `{{/* … */}}` may hold `}}`.
    let comment_end = if unmarked.starts_with("!--") {
        rest.find("--}}").or_else(|| rest.find("--~}}"))
    } else if unmarked.starts_with("/*") {
        rest.find("*/")
    } else if unmarked.starts_with('!') {
        Some(0)
    } else {
        None
    };
    if let Some(skip) = comment_end {
        return close_after(skip).unwrap_or(source.len());
    }
    let mut quote: Option<char> = None;
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match quote {
            Some('`') if c == '`' => quote = None,
            Some('"' | '\'') if c == '\\' => {
                chars.next();
            }
            // Go strings end at the line; an apostrophe in text must not swallow the file.
            Some(open) if c == open || (c == '\n' && open != '`') => quote = None,
            Some(_) => {}
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None if c == '}' && rest[i..].starts_with("}}") => return from + i,
            None => {}
        }
    }
    source.len()
}

/// What an action or a word of one says about the syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clue<'a> {
    Go,
    Handlebars,
    /// A name that is neither a Go function nor a keyword: a variable in handlebars, and in Go
    /// a function burner does not have.
    BareName(&'a str),
}

/// The syntax one action is clearly written in, if any. Within an action a Go clue (`.x`,
/// `$x`, `|`) outweighs a bare name, which in a Go action is an unknown function.
fn classify(inner: &str) -> Option<Clue<'_>> {
    let first = inner.chars().next()?;
    match first {
        '{' | '~' | '!' | '#' | '>' | '^' | '&' | '*' => return Some(Clue::Handlebars),
        '/' if inner.starts_with("/*") => return Some(Clue::Go),
        '/' => return Some(Clue::Handlebars),
        '-' if inner[1..].starts_with(char::is_whitespace) => return Some(Clue::Go),
        _ => {}
    }
    if inner.ends_with('~') {
        return Some(Clue::Handlebars);
    }
    if inner.ends_with('-') && inner[..inner.len() - 1].ends_with(char::is_whitespace) {
        return Some(Clue::Go);
    }
    let words = words(inner);
    let (&head, mut arguments) = words.split_first()?;
    if head == "else" {
        // `{{else}}`, `{{else if …}}`, `{{else with …}}`: only the arguments can tell.
        arguments = match arguments.split_first() {
            Some((&("if" | "with"), rest)) => rest,
            _ => arguments,
        };
    } else if GO_KEYWORDS.contains(&head) || head == "(" {
        return Some(Clue::Go);
    } else {
        arguments = &words;
    }
    let clues: Vec<Clue<'_>> = arguments
        .iter()
        .filter_map(|word| word_clue(word))
        .collect();
    [Clue::Go, Clue::Handlebars]
        .into_iter()
        .find(|strong| clues.contains(strong))
        .or_else(|| clues.first().copied())
}

/// What one word of an action says about its syntax.
fn word_clue(word: &str) -> Option<Clue<'_>> {
    let first = word.chars().next()?;
    if first == '"' || first == '\'' || first == '`' || first.is_ascii_digit() {
        return None;
    }
    if word == "this"
        || word.starts_with("this.")
        || word.starts_with("this/")
        || word.starts_with("../")
        || word.starts_with("./")
        || first == '@'
    {
        return Some(Clue::Handlebars);
    }
    if first == '.' || first == '$' || matches!(word, "|" | ":=" | "=") {
        return Some(Clue::Go);
    }
    if word.contains('=') {
        // `key=value`, a handlebars hash argument.
        return Some(Clue::Handlebars);
    }
    if matches!(word, "true" | "false" | "nil" | "null" | "(" | ")")
        || Functions::has(word)
        || GO_KEYWORDS.contains(&word)
        || first == '-'
    {
        return None;
    }
    (first.is_alphabetic() || first == '_').then_some(Clue::BareName(word))
}

/// The words of an action: quoted strings whole, `(`, `)` and `|` apart.
fn words(inner: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && open != '`' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => {
                start.get_or_insert(i);
                quote = Some(c);
            }
            '(' | ')' | '|' => {
                if let Some(s) = start.take() {
                    words.push(&inner[s..i]);
                }
                words.push(&inner[i..i + 1]);
            }
            c if c.is_whitespace() => {
                if let Some(s) = start.take() {
                    words.push(&inner[s..i]);
                }
            }
            _ => {
                start.get_or_insert(i);
            }
        }
    }
    if let Some(s) = start {
        words.push(&inner[s..]);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped like kube-burner's own workloads (cluster-density, node-density).
    const KUBE_BURNER_DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: server-{{.Replica}}-{{ .Iteration }}
  labels:
    kube-burner-job: {{.JobName}}
spec:
  replicas: {{.podReplicas}}
  template:
    spec:
      {{- if .nodeSelector }}
      nodeSelector: {{ .nodeSelector | toJson }}
      {{- end }}
      containers:
      - name: server
        image: {{ .image | default "quay.io/cloud-bulldozer/sampleapp:latest" }}
        env:
        - name: ENVVAR1_{{.Replica}}
          value: {{randAlphaNum 250}}
        volumeMounts:
        {{ range $index, $element := until (int .configmaps) }}
        - name: cm-{{$element}}
          mountPath: /configmap{{ $element }}
        {{ end }}
"#;

    const KUBE_BURNER_SECRET: &str = r#"{{/* a secret of random data: "}}" is fine in here */}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ printf "%s-%d" .JobName .Iteration }}
data:
  key: {{ randAlphaNum 2048 | b64enc }}
"#;

    const HANDLEBARS_POD: &str = r#"{{! a pod per iteration, with every container listed }}
apiVersion: v1
kind: Pod
metadata:
  name: {{JobName}}-{{Iteration}}
spec:
  containers:
  {{#each containers}}
  - name: {{name}}
    image: {{image}}
    args: [{{{args}}}]
  {{/each}}
"#;

    #[test]
    fn detects_kube_burner_workloads_as_go() {
        for source in [KUBE_BURNER_DEPLOYMENT, KUBE_BURNER_SECRET] {
            assert_eq!(detect("t.yml", source).unwrap(), Syntax::Go, "{source}");
        }
        let cases = [
            "name: {{.JobName}}-{{.Iteration}}",
            "{{ $n := .name }}{{ $n }}",
            "{{- .name -}}",
            "{{ range .tags }}[{{ . }}]{{ else }}none{{ end }}",
            "{{ if eq .name \"web\" }}a{{ else if gt .count 2 }}b{{ end }}",
            "{{ (split \"-\" .name)._0 }}",
            "{{ template \"x\" }}",
            "{{ with .labels }}{{ .zone }}{{ end }}",
            "{{ .name -}}",
            "{{ add .Iteration 1 }}",
            // An unknown function beside Go arguments: Go, and the Go parser names it.
            "{{ slice .tags 1 2 }}",
            // Neither syntax's markers: Go, and it would render the same as handlebars.
            "{{ randAlphaNum 8 }}-{{ uuidv4 }}",
            "{{ \"literal\" }} {{ 5 }} {{ -3 }}",
            "no actions at all",
            "",
        ];
        for source in cases {
            assert_eq!(detect("t.yml", source).unwrap(), Syntax::Go, "{source}");
        }
    }

    #[test]
    fn detects_handlebars_templates() {
        assert_eq!(detect("t.yml", HANDLEBARS_POD).unwrap(), Syntax::Handlebars);
        let cases = [
            "name: {{JobName}}-{{Iteration}}",
            "{{#each tags}}{{this}}{{/each}}",
            "{{#if yes}}a{{else}}b{{/if}}",
            "{{^ items}}none{{/ items}}",
            "{{{raw}}}",
            "{{~name~}}",
            "{{! comment }}",
            "{{!-- long }} comment --}}",
            "{{> partial}}",
            "{{add Iteration 1}}",
            "{{upper (trim name)}}",
            "{{randAlphaNum 8}} {{@index}}",
            "{{lookup labels \"zone\"}}",
            "{{default \"x\" size}}",
            "{{../name}}",
            "{{printf \"%d\" count}}",
        ];
        for source in cases {
            assert_eq!(
                detect("t.yml", source).unwrap(),
                Syntax::Handlebars,
                "{source}"
            );
        }
    }

    #[test]
    fn a_template_mixing_both_syntaxes_is_an_error_naming_both() {
        let error = detect(
            "pod.yml",
            "name: {{.JobName}}\nspec:\n{{#each items}}\n- x\n{{/each}}",
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "pod.yml:3: mixes Go template syntax (`{{.JobName}}` on line 1) with handlebars \
             syntax (`{{#each items}}` on line 3); write the template in one of them"
        );
        let error = detect(
            "pod.yml",
            "a: {{Iteration}}\nb: {{ printf \"%s}}\" .name }}",
        )
        .unwrap_err();
        assert_eq!(error.line, 2);
        assert!(
            error
                .message
                .contains("`{{ printf \"%s}}\" .name }}` on line 2"),
            "{error}"
        );
        assert!(
            error.message.contains("`{{Iteration}}` on line 1"),
            "{error}"
        );
        // A Go function burner lacks reads as a handlebars variable, and the error says so.
        let error = detect("t.yml", "a: {{ .name }}\nb: {{ now }}").unwrap_err();
        assert!(
            error
                .message
                .ends_with("where `now` is neither a Go function nor a Go keyword); write the template in one of them"),
            "{error}"
        );
        // Long actions are shortened.
        let long = format!("{{{{ .a }}}}{{{{ x {} }}}}", "y".repeat(80));
        let error = detect("t", &long).unwrap_err();
        assert!(error.message.contains("yyy…`"), "{error}");
    }

    #[test]
    fn one_template_type_renders_either_syntax_with_the_same_data() {
        let data = json!({"Iteration": 3, "JobName": "density", "tags": ["a", "b"], "ratio": 1e6});
        let options = RenderOptions::new(MissingKey::Error, None);
        let go = Template::parse(
            "go.yml",
            "{{.JobName}}-{{.Iteration}} {{ range .tags }}{{.}}{{ end }} {{.ratio}}",
            None,
            &[],
        )
        .unwrap();
        let handlebars = Template::parse(
            "hbs.yml",
            "{{JobName}}-{{Iteration}} {{#each tags}}{{this}}{{/each}} {{ratio}}",
            None,
            &[],
        )
        .unwrap();
        assert_eq!(go.syntax(), Syntax::Go);
        assert_eq!(handlebars.syntax(), Syntax::Handlebars);
        assert_eq!(go.render(&data, &options).unwrap(), "density-3 ab 1e+06");
        assert_eq!(
            handlebars.render(&data, &options).unwrap(),
            "density-3 ab 1e+06"
        );

        // A syntax given wins over detection.
        let forced =
            Template::parse("t", "{{ randAlphaNum 4 }}", Some(Syntax::Handlebars), &[]).unwrap();
        assert_eq!(forced.syntax(), Syntax::Handlebars);
        assert_eq!(forced.render(&data, &options).unwrap().len(), 4);
        let error = Template::parse("t", "{{.x}}", Some(Syntax::Handlebars), &[]).unwrap_err();
        assert_eq!(error.template, "t");

        let zero = RenderOptions::new(MissingKey::Zero, None);
        assert_eq!(zero.missing(), MissingKey::Zero);
        assert_eq!(
            Template::parse("t", "[{{nope}}]", None, &[])
                .unwrap()
                .render(&data, &zero)
                .unwrap(),
            "[]"
        );
        assert_eq!(
            Template::parse("t", "[{{.nope}}]", None, &[])
                .unwrap()
                .render(&data, &zero)
                .unwrap(),
            "[<no value>]"
        );
    }
}
