//! A fast reader for the plain YAML that object templates render to, with the full YAML
//! parser behind it.
//!
//! `burner check` and `burner init` parse every rendered object (a hundred thousand for a
//! large job), and a general YAML parser spends most of the rendering time on it. Rendered
//! Kubernetes objects almost always use a small part of YAML: block mappings and sequences,
//! one-line plain and quoted scalars, one-line flow collections, comments and `---`. This
//! reader handles exactly that part and answers `None` for anything else (block scalars,
//! anchors, tags, multi-line scalars, scalars whose type is not plain to see), so the caller
//! hands those to serde-saphyr. A test checks that both give the same values.

use serde_json::{Map, Number, Value};

/// The documents of `text`, or `None` when `text` leaves the part this reader handles.
pub fn parse_documents(text: &str) -> Option<Vec<Value>> {
    let mut documents = Vec::new();
    let mut lines: Vec<Line<'_>> = Vec::new();
    for raw in text.lines() {
        if raw.starts_with("---") && (raw.len() == 3 || raw[3..].trim_start().starts_with('#')) {
            // Empty documents are not documents, as the full parser has it.
            if !lines.is_empty() {
                documents.push(document(&lines)?);
            }
            lines.clear();
            continue;
        }
        if raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        let content = strip_comment(raw)?;
        let trimmed = content.trim_end();
        if trimmed.trim_start().is_empty() {
            continue;
        }
        let indent = trimmed.len() - trimmed.trim_start_matches(' ').len();
        if trimmed[indent..].starts_with('\t') {
            return None;
        }
        lines.push(Line {
            indent,
            text: &trimmed[indent..],
        });
    }
    if !lines.is_empty() {
        documents.push(document(&lines)?);
    }
    Some(documents)
}

#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

fn document(lines: &[Line<'_>]) -> Option<Value> {
    if lines.is_empty() {
        return Some(Value::Null);
    }
    let mut at = 0;
    let value = block(lines, &mut at, lines[0].indent)?;
    (at == lines.len()).then_some(value)
}

/// The block node starting at `lines[*at]`, whose lines are indented by `indent`.
fn block(lines: &[Line<'_>], at: &mut usize, indent: usize) -> Option<Value> {
    let first = lines[*at];
    if first.indent != indent {
        return None;
    }
    if is_sequence_item(first.text) {
        sequence(lines, at, indent)
    } else if split_key(first.text).is_some() {
        mapping(lines, at, indent)
    } else {
        // A lone scalar as a whole node: only on one line.
        *at += 1;
        if lines.get(*at).is_some_and(|l| l.indent > indent) {
            return None;
        }
        scalar_or_flow(first.text)
    }
}

fn is_sequence_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn sequence(lines: &[Line<'_>], at: &mut usize, indent: usize) -> Option<Value> {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return None;
        }
        if !is_sequence_item(line.text) {
            // The mapping a sequence sits in at its own indentation goes on.
            break;
        }
        let rest = line.text[1..].trim_start_matches(' ');
        if rest.is_empty() {
            // `-` alone: the item is the block below, or null.
            *at += 1;
            match lines.get(*at) {
                Some(next) if next.indent > indent => items.push(block(lines, at, next.indent)?),
                _ => items.push(Value::Null),
            }
            continue;
        }
        // `- something`: the item starts on this line, at the column after the dash.
        let item_indent = indent + (line.text.len() - rest.len());
        if is_sequence_item(rest) || split_key(rest).is_some() {
            // A compact nested collection: read it as if it began on a line of its own.
            let mut shifted: Vec<Line<'_>> = Vec::new();
            shifted.push(Line {
                indent: item_indent,
                text: rest,
            });
            let mut end = *at + 1;
            while let Some(next) = lines.get(end) {
                if next.indent <= indent {
                    break;
                }
                shifted.push(*next);
                end += 1;
            }
            let mut inner = 0;
            let value = block(&shifted, &mut inner, item_indent)?;
            if inner != shifted.len() {
                return None;
            }
            items.push(value);
            *at = end;
        } else {
            *at += 1;
            if lines.get(*at).is_some_and(|l| l.indent > indent) {
                return None;
            }
            items.push(scalar_or_flow(rest)?);
        }
    }
    Some(Value::Array(items))
}

fn mapping(lines: &[Line<'_>], at: &mut usize, indent: usize) -> Option<Value> {
    let mut map = Map::new();
    while let Some(line) = lines.get(*at) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return None;
        }
        let (key, rest) = split_key(line.text)?;
        if map.contains_key(&key) {
            return None;
        }
        *at += 1;
        let value = if rest.is_empty() {
            match lines.get(*at) {
                Some(next) if next.indent > indent => block(lines, at, next.indent)?,
                // A sequence may sit at the key's own indentation.
                Some(next) if next.indent == indent && is_sequence_item(next.text) => {
                    sequence(lines, at, indent)?
                }
                _ => Value::Null,
            }
        } else {
            if lines.get(*at).is_some_and(|l| l.indent > indent) {
                return None;
            }
            scalar_or_flow(rest)?
        };
        map.insert(key, value);
    }
    Some(Value::Object(map))
}

/// `key: rest` (or `key:` with nothing after), for plain or quoted keys that are strings.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, after) = if let Some(quote @ ('"' | '\'')) = text.chars().next() {
        let (key, used) = quoted(text, quote)?;
        (key, &text[used..])
    } else {
        let colon = find_key_colon(text)?;
        let key = text[..colon].trim_end();
        let is_string = matches!(plain(key), Some(Value::String(_)));
        if !is_string || key.starts_with(['[', '{', '-', '?']) {
            return None;
        }
        (key.to_string(), &text[colon..])
    };
    let rest = after.strip_prefix(':')?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((key, rest.trim_start_matches(' ')))
}

/// Where a plain key's `: ` (or final `:`) is.
fn find_key_colon(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len()).find(|&i| bytes[i] == b':' && (i + 1 == bytes.len() || bytes[i + 1] == b' '))
}

/// A line's content without its comment; `None` when a quote is left open.
fn strip_comment(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => {
                // '' inside single quotes is an escaped quote.
                if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None if b == b'#' && (i == 0 || bytes[i - 1] == b' ') => return Some(&line[..i]),
            // A quote opens a quoted scalar only where a scalar starts.
            None if (b == b'"' || b == b'\'') && starts_scalar(bytes, i) => quote = Some(b),
            None => {}
        }
        i += 1;
    }
    if quote.is_some() { None } else { Some(line) }
}

fn starts_scalar(bytes: &[u8], i: usize) -> bool {
    let before = bytes[..i].iter().rev().find(|b| **b != b' ');
    matches!(before, None | Some(b':' | b'-' | b'[' | b'{' | b','))
}

/// A value on one line: a flow collection or a scalar.
fn scalar_or_flow(text: &str) -> Option<Value> {
    match text.as_bytes()[0] {
        b'[' | b'{' => {
            let mut at = 0;
            let value = flow(text.as_bytes(), text, &mut at)?;
            skip_spaces(text.as_bytes(), &mut at);
            (at == text.len()).then_some(value)
        }
        b'"' | b'\'' => {
            let (value, used) = quoted(text, text.as_bytes()[0] as char)?;
            (used == text.len()).then_some(Value::String(value))
        }
        _ => plain(text),
    }
}

fn skip_spaces(bytes: &[u8], at: &mut usize) {
    while bytes.get(*at) == Some(&b' ') {
        *at += 1;
    }
}

/// A flow collection or scalar inside `[...]`/`{...}` starting at `*at`.
fn flow(bytes: &[u8], text: &str, at: &mut usize) -> Option<Value> {
    skip_spaces(bytes, at);
    match *bytes.get(*at)? {
        b'[' => {
            *at += 1;
            let mut items = Vec::new();
            loop {
                skip_spaces(bytes, at);
                if bytes.get(*at) == Some(&b']') {
                    *at += 1;
                    return Some(Value::Array(items));
                }
                items.push(flow(bytes, text, at)?);
                skip_spaces(bytes, at);
                match bytes.get(*at)? {
                    b',' => *at += 1,
                    b']' => {}
                    _ => return None,
                }
            }
        }
        b'{' => {
            *at += 1;
            let mut map = Map::new();
            loop {
                skip_spaces(bytes, at);
                if bytes.get(*at) == Some(&b'}') {
                    *at += 1;
                    return Some(Value::Object(map));
                }
                let key = match flow(bytes, text, at)? {
                    Value::String(key) => key,
                    _ => return None,
                };
                skip_spaces(bytes, at);
                if bytes.get(*at) != Some(&b':') {
                    return None;
                }
                *at += 1;
                skip_spaces(bytes, at);
                let value = match bytes.get(*at)? {
                    b',' | b'}' => Value::Null,
                    _ => flow(bytes, text, at)?,
                };
                if map.insert(key, value).is_some() {
                    return None;
                }
                skip_spaces(bytes, at);
                match bytes.get(*at)? {
                    b',' => *at += 1,
                    b'}' => {}
                    _ => return None,
                }
            }
        }
        quote @ (b'"' | b'\'') => {
            let (value, used) = quoted(&text[*at..], quote as char)?;
            *at += used;
            Some(Value::String(value))
        }
        _ => {
            // A plain scalar in flow context ends at `,`, `]`, `}` or `: `.
            let start = *at;
            while let Some(&b) = bytes.get(*at) {
                let ends_key = b == b':'
                    && matches!(bytes.get(*at + 1), None | Some(b' ' | b',' | b'}' | b']'));
                if b == b',' || b == b']' || b == b'}' || ends_key || b == b'[' || b == b'{' {
                    break;
                }
                *at += 1;
            }
            plain(text[start..*at].trim_end())
        }
    }
}

/// A quoted scalar at the start of `text`: its value and how many bytes it took.
fn quoted(text: &str, quote: char) -> Option<(String, usize)> {
    let mut value = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            ('\'', '\'') => {
                if text[i + 1..].starts_with('\'') {
                    chars.next();
                    value.push('\'');
                } else {
                    return Some((value, i + 1));
                }
            }
            ('"', '"') => return Some((value, i + 1)),
            ('"', '\\') => {
                let (_, escaped) = chars.next()?;
                value.push(match escaped {
                    '"' => '"',
                    '\\' => '\\',
                    '/' => '/',
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    '0' => '\0',
                    // Others (\x, \u, line folding) are left to the full parser.
                    _ => return None,
                });
            }
            _ => value.push(c),
        }
    }
    None
}

/// A plain scalar, typed as YAML's core schema types it, for the cases that are plain to
/// see; `None` for anything a reader could take more than one way.
fn plain(text: &str) -> Option<Value> {
    if text.is_empty() {
        return Some(Value::Null);
    }
    if text.starts_with("- ")
        || text.starts_with([
            '&', '*', '!', '|', '>', '%', '@', '`', '?', '[', ']', '{', '}', ',', '"', '\'', '#',
        ])
        || text.contains(" #")
        || text.contains(": ")
        || text.ends_with(':')
    {
        return None;
    }
    match text {
        "null" | "Null" | "NULL" | "~" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    if let Some(number) = simple_number(text) {
        return Some(Value::Number(number));
    }
    plain_is_string(text).then(|| Value::String(text.to_string()))
}

/// `0`, `-12`, `3.5`: integers without leading zeros and decimals with digits on both
/// sides of the point.
fn simple_number(text: &str) -> Option<Number> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || (whole.len() > 1 && whole.starts_with('0')) {
        return None;
    }
    match fraction {
        None => text
            .parse::<i64>()
            .ok()
            .map(Number::from)
            .or_else(|| text.parse::<u64>().ok().map(Number::from)),
        Some(fraction) if all_digits(fraction) => Number::from_f64(text.parse::<f64>().ok()?),
        Some(_) => None,
    }
}

/// Whether a plain scalar that is not null, a boolean or a simple number is surely a
/// string: not something some YAML reading takes for a number (`1e3`, `0x1F`, `0o17`,
/// `1_000`, `.5`, `+1`, `.inf`) or a YAML 1.1 boolean (`yes`, `off`).
fn plain_is_string(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "yes" | "no" | "on" | "off" | "y" | "n" | ".inf" | "-.inf" | "+.inf" | ".nan"
    ) {
        return false;
    }
    let numeric_start = text.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c));
    let number_like = text
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b"xXoO_.+-:".contains(&b));
    !(numeric_start && number_like)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> Vec<Value> {
        serde_saphyr::from_multiple(text).unwrap()
    }

    /// Each case is read the same by this reader and by serde-saphyr.
    #[test]
    fn the_fast_reader_agrees_with_the_full_parser() {
        let cases = [
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p-1\n  labels:\n    app: web\nspec:\n  containers:\n    - name: c\n      image: registry.k8s.io/pause:3.10\n      ports:\n        - containerPort: 8080\n          protocol: TCP\n",
            "a: 1\nb: -2\nc: 3.5\nd: true\ne: null\nf: ~\ng:\nh: 'it''s'\ni: \"q\\\"x\\n\"\nj: 10m\nk: 1Gi\nl: 0\n",
            "list:\n- a\n- b\n-\n  - nested\nmap: {cpu: 10m, memory: '1Gi', count: 3, e: {}}\nflow: [1, two, \"3\", [x]]\n",
            "# comment\nkey: value # trailing\nurl: http://example.com/#anchor\nhash: a#b\n",
            "---\na: 1\n---\nb: 2\n",
            "---\n# only a comment\n---\nc: 3\n",
            "",
            "# nothing but a comment\n",
            "items:\n  - key: a\n    value: b\n  - key: c\n    nested:\n      - 1\n      - 2\n",
            "- - a\n  - b\n- c\n",
            "\"quoted key\": v\n'single': w\nempty: \"\"\n",
            "command: [\"/bin/sh\", \"-c\", \"echo hi; sleep 1\"]\nargs: [\"--port=8080\"]\n",
            "env:\n  - {name: A, value: \"1\"}\n  - name: B\n    value: x y z\n",
        ];
        for text in cases {
            let fast = parse_documents(text)
                .unwrap_or_else(|| panic!("the fast reader gave up on:\n{text}"));
            assert_eq!(fast, full(text), "{text}");
        }
    }

    /// What could be read more than one way goes to the full parser.
    #[test]
    fn what_is_not_plain_to_see_is_left_to_the_full_parser() {
        let cases = [
            "a: |\n  block\n",
            "a: >\n  folded\n",
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: 1e3\n",
            "a: 0x1F\n",
            "a: 0o17\n",
            "a: 012\n",
            "a: 1_000\n",
            "a: yes\n",
            "a: .inf\n",
            "a: +1\n",
            "a: b\n  c\n",
            "a: 1\na: 2\n",
            "a: \"\\u00e9\"\n",
            "? complex\n: key\n",
            "a: \"open\n",
            "1: numeric key\n",
            "%YAML 1.2\n---\na: 1\n",
        ];
        for text in cases {
            assert_eq!(parse_documents(text), None, "{text}");
        }
    }

    #[test]
    fn every_shipped_template_renders_to_yaml_the_fast_reader_reads() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads");
        let mut checked = 0;
        for workload in std::fs::read_dir(&root).unwrap() {
            let config = workload.unwrap().path().join("config.yml");
            if !config.is_file() {
                continue;
            }
            let options = crate::config::LoadOptions {
                uuid: "00000000-0000-4000-8000-000000000000".into(),
                allow_missing: true,
                ..crate::config::LoadOptions::default()
            };
            let config = crate::config::load(&config, &options).unwrap();
            for job in &config.jobs {
                let data_options = crate::template::RenderOptions::new(
                    crate::template::MissingKey::Zero,
                    config.file.parent().map(|p| p.to_path_buf()),
                );
                for object in job
                    .objects
                    .iter()
                    .filter_map(|o| o.template.as_ref().map(|t| (t, &o.raw.input_vars)))
                {
                    let (template, vars) = object;
                    let mut data = serde_json::json!({"Iteration": 3, "Replica": 1,
                        "JobName": job.name(), "UUID": config.uuid, "RunID": "r"});
                    data.as_object_mut().unwrap().extend(vars.clone());
                    let text = template.parsed.render(&data, &data_options).unwrap();
                    let fast = parse_documents(&text).unwrap_or_else(|| {
                        panic!("{} left the fast path:\n{text}", template.file.display())
                    });
                    assert_eq!(fast, full(&text), "{}", template.file.display());
                    checked += 1;
                }
            }
        }
        assert!(checked >= 10, "{checked}");
    }
}
