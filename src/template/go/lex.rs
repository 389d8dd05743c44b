//! Splitting a Go template into text and actions, and an action into tokens.

use super::super::TemplateError;

/// A piece of the template: literal text, or the inside of one `{{ }}` action.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Action { tokens: Vec<Token>, line: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// `.` alone.
    Dot,
    /// `.Name`; `chained` when it follows the previous token without a space (`.a.b`, `$x.a`).
    Field {
        name: String,
        chained: bool,
    },
    /// `$name`, or `$` alone (the root data).
    Variable(String),
    /// A function name or keyword.
    Ident(String),
    String(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
}

/// Splits `source` into pieces, applying `{{-` and `-}}` trimming and dropping comments.
pub fn split(template: &str, source: &str) -> Result<Vec<Piece>, TemplateError> {
    let error = |line: usize, message: String| TemplateError {
        template: template.to_string(),
        line,
        message,
    };
    let mut pieces = Vec::new();
    let mut rest = source;
    let mut line = 1;
    let mut trim_next_text = false;
    while let Some(open) = rest.find("{{") {
        let mut text = &rest[..open];
        if trim_next_text {
            text = text.trim_start();
        }
        let after_open = &rest[open + 2..];
        let trim_before = after_open.starts_with("- ")
            || after_open.starts_with("-\t")
            || after_open.starts_with("-\n")
            || after_open.starts_with("-\r");
        if trim_before {
            text = text.trim_end();
        }
        line += rest[..open].matches('\n').count();
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_string()));
        }
        let inner_start = if trim_before { 2 } else { 0 };
        let close = find_close(after_open)
            .ok_or_else(|| error(line, "unclosed action: no `}}` after `{{`".into()))?;
        let mut inner = &after_open[inner_start..close];
        trim_next_text = inner.ends_with(" -")
            || inner.ends_with("\t-")
            || inner.ends_with("\n-")
            || inner.ends_with("\r-");
        if trim_next_text {
            inner = &inner[..inner.len() - 1];
        }
        let action_line = line;
        line += after_open[..close].matches('\n').count();
        rest = &after_open[close + 2..];
        let trimmed = inner.trim();
        if trimmed.starts_with("/*") {
            if !trimmed.ends_with("*/") {
                return Err(error(
                    action_line,
                    "unclosed comment: a comment must be `{{/* ... */}}`".into(),
                ));
            }
            continue;
        }
        let tokens = tokenize(inner).map_err(|message| error(action_line, message))?;
        if tokens.is_empty() {
            return Err(error(action_line, "empty action `{{ }}`".into()));
        }
        pieces.push(Piece::Action {
            tokens,
            line: action_line,
        });
    }
    let text = if trim_next_text {
        rest.trim_start()
    } else {
        rest
    };
    if !text.is_empty() {
        pieces.push(Piece::Text(text.to_string()));
    }
    Ok(pieces)
}

/// The position of the `}}` that closes an action, skipping strings and comments.
fn find_close(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'/' if s[i..].starts_with("/*") => {
                let end = s[i + 2..].find("*/")?;
                i += end + 3;
            }
            b'}' if s[i..].starts_with("}}") => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn tokenize(action: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = action.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let after_space = i == 0 || chars[i - 1].is_whitespace();
        match c {
            _ if c.is_whitespace() => i += 1,
            '|' => {
                tokens.push(Token::Pipe);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LeftParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RightParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                i += 2;
            }
            '=' => {
                tokens.push(Token::Assign);
                i += 1;
            }
            '.' if chars
                .get(i + 1)
                .is_some_and(|c| word_char(*c) && !c.is_ascii_digit()) =>
            {
                let start = i + 1;
                i = start;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                let chained = !after_space
                    && matches!(
                        tokens.last(),
                        Some(
                            Token::Dot
                                | Token::Field { .. }
                                | Token::Variable(_)
                                | Token::RightParen
                        )
                    );
                tokens.push(Token::Field {
                    name: chars[start..i].iter().collect(),
                    chained,
                });
            }
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '$' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Variable(chars[start..i].iter().collect()));
            }
            '"' => {
                let (value, next) = quoted(&chars, i)?;
                tokens.push(Token::String(value));
                i = next;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or("unterminated raw string")?;
                tokens.push(Token::String(chars[i + 1..i + 1 + end].iter().collect()));
                i += end + 2;
            }
            '\'' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .ok_or("unterminated character constant")?;
                let text: String = chars[i + 1..i + 1 + end].iter().collect();
                let mut it = text.chars();
                match (it.next(), it.next()) {
                    (Some(ch), None) => tokens.push(Token::Int(ch as i64)),
                    _ => return Err(format!("bad character constant '{text}'")),
                }
                i += end + 2;
            }
            _ if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || chars[i] == '.'
                        || chars[i] == '_'
                        || ((chars[i] == '-' || chars[i] == '+')
                            && matches!(chars[i - 1], 'e' | 'E')))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
                tokens.push(number(&text)?);
            }
            _ if word_char(c) => {
                let start = i;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "true" => Token::Bool(true),
                    "false" => Token::Bool(false),
                    "nil" => Token::Nil,
                    _ => Token::Ident(word),
                });
            }
            other => return Err(format!("unexpected `{other}` in action")),
        }
    }
    Ok(tokens)
}

fn quoted(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '"' => return Ok((value, i + 1)),
            '\\' => {
                i += 1;
                match chars.get(i) {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('\'') => value.push('\''),
                    Some(other) => return Err(format!("unsupported escape `\\{other}` in string")),
                    None => break,
                }
            }
            c => value.push(c),
        }
        i += 1;
    }
    Err("unterminated quoted string".into())
}

fn number(text: &str) -> Result<Token, String> {
    let bad = || format!("bad number syntax: `{text}`");
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return i64::from_str_radix(hex, 16)
            .map(Token::Int)
            .map_err(|_| bad());
    }
    if let Ok(n) = text.parse::<i64>() {
        return Ok(Token::Int(n));
    }
    text.parse::<f64>().map(Token::Float).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_removes_whitespace_on_the_marked_side_only() {
        let pieces = split("t", "a  {{- .x -}}  b {{ .y }} c").unwrap();
        assert_eq!(pieces[0], Piece::Text("a".into()));
        assert_eq!(pieces[2], Piece::Text("b ".into()));
        assert_eq!(pieces[4], Piece::Text(" c".into()));
    }

    #[test]
    fn comments_vanish_and_lines_are_counted() {
        let pieces = split("t", "a\n{{/* note\n more */}}\nb {{ .x }}").unwrap();
        assert_eq!(pieces.len(), 3);
        assert!(matches!(pieces[2], Piece::Action { line: 4, .. }));
    }

    #[test]
    fn fields_chain_only_without_spaces() {
        let pieces = split("t", "{{ .a.b $x.c (f).d .e }}").unwrap();
        let Piece::Action { tokens, .. } = &pieces[0] else {
            panic!()
        };
        let chained: Vec<bool> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Field { chained, .. } => Some(*chained),
                _ => None,
            })
            .collect();
        assert_eq!(chained, [false, true, true, true, false]);
    }

    #[test]
    fn a_negative_number_is_not_a_trim_marker() {
        let pieces = split("t", "{{-3}}").unwrap();
        assert_eq!(
            pieces,
            vec![Piece::Action {
                tokens: vec![Token::Int(-3)],
                line: 1
            }]
        );
    }

    #[test]
    fn unclosed_actions_are_errors_with_their_line() {
        let e = split("pod.yml", "a\nb {{ .x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "pod.yml:2: unclosed action: no `}}` after `{{`"
        );
    }
}
