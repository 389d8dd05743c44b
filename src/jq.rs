//! The small part of jq that `waitOptions.customStatusPaths` keys use: paths into a value
//! (`.a.b`, `.a[0]`, `."a-b"`), iteration (`.[]`, `.a[]`, `.a.[]`), pipes, parentheses,
//! `select(X == Y)` and `select(X != Y)` with paths or literals, and the filters
//! `tostring` and `ascii_downcase`. kube-burner evaluates these keys with a full jq; burner
//! parses them when the config loads, so an expression outside this part is an error
//! before anything runs, not a wait that never ends.
//!
//! For example `(.conditions.[] | select(.type == "Available")).status`.

use serde_json::Value;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Vec<Stage>);

/// One stage of a pipe.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    /// A path from the input: a list of steps.
    Path(Vec<Step>),
    /// `( filter )` followed by steps.
    Group(Box<Filter>, Vec<Step>),
    Select {
        left: Box<Stage>,
        equal: bool,
        right: Box<Stage>,
    },
    Literal(Value),
    ToString,
    AsciiDowncase,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Each,
}

impl Filter {
    pub fn parse(source: &str) -> Result<Filter, String> {
        let mut parser = Parser {
            chars: source.chars().collect(),
            at: 0,
        };
        let filter = parser.filter()?;
        parser.skip_space();
        if parser.at < parser.chars.len() {
            return Err(parser.error("expected the end of the expression"));
        }
        Ok(filter)
    }

    /// Every output of the filter on `input`, in order.
    pub fn eval(&self, input: &Value) -> Vec<Value> {
        let mut values = vec![input.clone()];
        for stage in &self.0 {
            values = values.iter().flat_map(|v| stage.eval(v)).collect();
        }
        values
    }
}

impl Stage {
    fn eval(&self, input: &Value) -> Vec<Value> {
        match self {
            Stage::Path(steps) => walk(vec![input.clone()], steps),
            Stage::Group(filter, steps) => walk(filter.eval(input), steps),
            Stage::Select { left, equal, right } => {
                let l = left.eval(input);
                let r = right.eval(input);
                let matches = l.iter().any(|a| r.iter().any(|b| (a == b) == *equal));
                if matches {
                    vec![input.clone()]
                } else {
                    Vec::new()
                }
            }
            Stage::Literal(value) => vec![value.clone()],
            Stage::ToString => vec![Value::String(as_text(input))],
            Stage::AsciiDowncase => match input {
                Value::String(s) => vec![Value::String(s.to_ascii_lowercase())],
                _ => Vec::new(),
            },
        }
    }
}

fn walk(mut values: Vec<Value>, steps: &[Step]) -> Vec<Value> {
    for step in steps {
        values = values
            .into_iter()
            .flat_map(|value| match (step, value) {
                (Step::Field(name), Value::Object(mut map)) => {
                    vec![map.remove(name).unwrap_or(Value::Null)]
                }
                (Step::Index(i), Value::Array(items)) => {
                    let at = if *i < 0 { items.len() as i64 + i } else { *i };
                    vec![
                        usize::try_from(at)
                            .ok()
                            .and_then(|a| items.get(a).cloned())
                            .unwrap_or(Value::Null),
                    ]
                }
                (Step::Each, Value::Array(items)) => items,
                (Step::Each, Value::Object(map)) => map.into_iter().map(|(_, v)| v).collect(),
                (Step::Field(_) | Step::Index(_), Value::Null) => vec![Value::Null],
                _ => Vec::new(),
            })
            .collect();
    }
    values
}

/// A value as jq's `tostring` gives it: strings as they are, anything else as JSON.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn error(&self, expected: &str) -> String {
        let rest: String = self.chars[self.at.min(self.chars.len())..].iter().collect();
        if rest.is_empty() {
            format!("{expected}, found the end")
        } else {
            format!("{expected} at `{rest}`")
        }
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, text: &str) -> bool {
        self.skip_space();
        let wanted: Vec<char> = text.chars().collect();
        if self.chars[self.at..].starts_with(&wanted) {
            self.at += wanted.len();
            true
        } else {
            false
        }
    }

    fn filter(&mut self) -> Result<Filter, String> {
        let mut stages = vec![self.stage()?];
        while self.eat("|") {
            stages.push(self.stage()?);
        }
        Ok(Filter(stages))
    }

    fn stage(&mut self) -> Result<Stage, String> {
        let stage = self.term()?;
        self.skip_space();
        if self.chars[self.at..].starts_with(&['=', '='])
            || self.chars[self.at..].starts_with(&['!', '='])
        {
            return Err(self.error("a comparison only inside select(...)"));
        }
        Ok(stage)
    }

    fn term(&mut self) -> Result<Stage, String> {
        match self.peek() {
            Some('.') => Ok(Stage::Path(self.steps()?)),
            Some('(') => {
                self.at += 1;
                let inner = self.filter()?;
                if !self.eat(")") {
                    return Err(self.error("expected `)`"));
                }
                Ok(Stage::Group(Box::new(inner), self.steps()?))
            }
            Some('"') => Ok(Stage::Literal(Value::String(self.string()?))),
            Some(c) if c.is_ascii_digit() || c == '-' => {
                let start = self.at;
                self.at += 1;
                while self
                    .chars
                    .get(self.at)
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    self.at += 1;
                }
                let text: String = self.chars[start..self.at].iter().collect();
                let number: serde_json::Number = text
                    .parse()
                    .map_err(|_| format!("`{text}` is not a number"))?;
                Ok(Stage::Literal(Value::Number(number)))
            }
            _ => {
                let word = self.word();
                match word.as_str() {
                    "select" => {
                        if !self.eat("(") {
                            return Err(self.error("expected `(` after select"));
                        }
                        let left = self.term()?;
                        let equal = if self.eat("==") {
                            true
                        } else if self.eat("!=") {
                            false
                        } else {
                            return Err(self.error("expected == or != in select"));
                        };
                        let right = self.term()?;
                        if !self.eat(")") {
                            return Err(self.error("expected `)` closing select"));
                        }
                        Ok(Stage::Select {
                            left: Box::new(left),
                            equal,
                            right: Box::new(right),
                        })
                    }
                    "tostring" => Ok(Stage::ToString),
                    "ascii_downcase" => Ok(Stage::AsciiDowncase),
                    "true" => Ok(Stage::Literal(Value::Bool(true))),
                    "false" => Ok(Stage::Literal(Value::Bool(false))),
                    "null" => Ok(Stage::Literal(Value::Null)),
                    "" => Err(self.error("expected a path such as .field")),
                    other => Err(format!(
                        "`{other}` is not supported (paths, select(a == b), tostring and ascii_downcase are)"
                    )),
                }
            }
        }
    }

    fn word(&mut self) -> String {
        self.skip_space();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    fn string(&mut self) -> Result<String, String> {
        // At the opening quote.
        self.at += 1;
        let mut text = String::new();
        loop {
            match self.chars.get(self.at) {
                None => return Err(self.error("a string that ends with `\"`")),
                Some('"') => {
                    self.at += 1;
                    return Ok(text);
                }
                Some('\\') => {
                    text.push(*self.chars.get(self.at + 1).unwrap_or(&'\\'));
                    self.at += 2;
                }
                Some(c) => {
                    text.push(*c);
                    self.at += 1;
                }
            }
        }
    }

    /// Steps of a path: `.a`, `."a"`, `[0]`, `[]`, `.[]`; a lone `.` is no steps.
    fn steps(&mut self) -> Result<Vec<Step>, String> {
        let mut steps = Vec::new();
        loop {
            // No space skipping inside a path: `.a .b` is not `.a.b`.
            match self.chars.get(self.at) {
                Some('.') => {
                    self.at += 1;
                    match self.chars.get(self.at) {
                        Some('"') => steps.push(Step::Field(self.string()?)),
                        Some('[') => {}
                        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
                            steps.push(Step::Field(self.word()));
                        }
                        _ => {}
                    }
                }
                Some('[') => {
                    self.at += 1;
                    if self.eat("]") {
                        steps.push(Step::Each);
                        continue;
                    }
                    let start = self.at;
                    while self
                        .chars
                        .get(self.at)
                        .is_some_and(|c| c.is_ascii_digit() || *c == '-')
                    {
                        self.at += 1;
                    }
                    let text: String = self.chars[start..self.at].iter().collect();
                    let index = text
                        .parse()
                        .map_err(|_| self.error("expected an index or `]`"))?;
                    if !self.eat("]") {
                        return Err(self.error("expected `]`"));
                    }
                    steps.push(Step::Index(index));
                }
                _ => return Ok(steps),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(expression: &str, input: Value) -> Vec<Value> {
        Filter::parse(expression).unwrap().eval(&input)
    }

    #[test]
    fn paths_iteration_and_select_give_what_jq_gives() {
        let status = json!({
            "phase": "Bound",
            "readyToUse": true,
            "replicas": 3,
            "conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Available", "status": "False"},
            ],
            "weird-key": {"x": 1},
        });
        let cases: &[(&str, Vec<Value>)] = &[
            (".phase", vec![json!("Bound")]),
            (".", vec![status.clone()]),
            (".missing", vec![Value::Null]),
            (".missing.deeper", vec![Value::Null]),
            (".conditions[1].type", vec![json!("Available")]),
            (".conditions[-1].type", vec![json!("Available")]),
            (
                ".conditions[].type",
                vec![json!("Progressing"), json!("Available")],
            ),
            (
                ".conditions.[].type",
                vec![json!("Progressing"), json!("Available")],
            ),
            (
                r#"(.conditions.[] | select(.type == "Available")).status"#,
                vec![json!("False")],
            ),
            (
                r#".conditions[] | select(.type != "Available") | .status"#,
                vec![json!("True")],
            ),
            (".readyToUse | tostring", vec![json!("true")]),
            (".replicas | tostring", vec![json!("3")]),
            (".phase | ascii_downcase", vec![json!("bound")]),
            (r#"."weird-key".x"#, vec![json!(1)]),
            (r#".conditions[] | select(.type == "Nope")"#, vec![]),
        ];
        for (expression, expected) in cases {
            assert_eq!(&run(expression, status.clone()), expected, "{expression}");
        }
    }

    #[test]
    fn what_is_outside_the_supported_part_is_an_error_at_parse_time() {
        for (expression, message) in [
            (".a | length", "`length` is not supported"),
            ("(.a", "expected `)`"),
            (".a[x]", "expected an index"),
            ("select(.a)", "expected == or != in select"),
            (".a == 1", "a comparison only inside select"),
            (".a )", "expected the end of the expression"),
            ("", "expected a path"),
        ] {
            let error = Filter::parse(expression).unwrap_err();
            assert!(error.contains(message), "{expression}: {error}");
        }
    }
}
