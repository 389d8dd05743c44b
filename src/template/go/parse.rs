//! Building the tree of a Go template from its pieces.
//!
//! A file parses into its top-level nodes plus the named templates it defines with
//! `{{define}}` and `{{block}}`; resolving `{{template}}` calls against them (and against
//! function-template libraries) is the job of the module above.

use std::collections::BTreeMap;

use super::super::TemplateError;
use super::lex::{Piece, Token};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// `{{ pipeline }}`: prints the value, unless the pipeline declares or assigns a variable.
    Action(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pipeline: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Break,
    Continue,
    /// `{{template "name"}}` (dot is nil inside) or `{{template "name" pipeline}}`; a
    /// `{{block}}` leaves one of these where it stands.
    Template {
        name: String,
        pipeline: Option<Pipeline>,
        line: usize,
    },
}

impl Node {
    /// The pipelines this node evaluates itself (not those of the nodes it contains).
    pub fn pipelines(&self) -> Vec<&Pipeline> {
        match self {
            Node::Action(p) | Node::Range { pipeline: p, .. } => vec![p],
            Node::If { branches, .. } | Node::With { branches, .. } => {
                branches.iter().map(|(condition, _)| condition).collect()
            }
            Node::Template { pipeline, .. } => pipeline.iter().collect(),
            Node::Text(_) | Node::Break | Node::Continue => Vec::new(),
        }
    }

    /// The lists of nodes directly inside this node.
    pub fn bodies(&self) -> Vec<&[Node]> {
        match self {
            Node::If {
                branches,
                otherwise,
            }
            | Node::With {
                branches,
                otherwise,
            } => branches
                .iter()
                .map(|(_, body)| body.as_slice())
                .chain([otherwise.as_slice()])
                .collect(),
            Node::Range {
                body, otherwise, ..
            } => vec![body, otherwise],
            Node::Text(_)
            | Node::Action(_)
            | Node::Break
            | Node::Continue
            | Node::Template { .. } => Vec::new(),
        }
    }

    /// Calls `visit` on every node of `nodes` and of the lists inside them, outside in.
    pub fn walk<'n, E>(
        nodes: &'n [Node],
        visit: &mut impl FnMut(&'n Node) -> Result<(), E>,
    ) -> Result<(), E> {
        for node in nodes {
            visit(node)?;
            for body in node.bodies() {
                Node::walk(body, visit)?;
            }
        }
        Ok(())
    }
}

/// A named template: the body of a `{{define}}` or `{{block}}`, or a file's top level.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The file it is written in, for errors.
    pub file: String,
    pub line: usize,
    /// Written with `{{block}}`: a default that any `{{define}}` of the name replaces.
    pub block: bool,
    pub body: Vec<Node>,
}

impl Definition {
    /// Go's `parse.IsEmptyTree`: nothing but whitespace (comments are gone already). An
    /// empty definition never replaces a non-empty one of the same name.
    pub fn is_empty(&self) -> bool {
        self.body
            .iter()
            .all(|node| matches!(node, Node::Text(text) if text.trim().is_empty()))
    }
}

/// A parsed file: its top level, and the templates it defines by name.
pub struct Parsed {
    pub nodes: Vec<Node>,
    pub definitions: BTreeMap<String, Definition>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub line: usize,
    /// Variables declared (`:=`) or assigned (`=`) by the pipeline.
    pub variables: Vec<String>,
    pub declares: bool,
    pub commands: Vec<Command>,
}

/// One stage of a pipeline: a function call, or a single operand.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub operands: Vec<Operand>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// `.` or `.a.b`: fields of the current data.
    Dot(Vec<String>),
    /// `$x.a.b` (`$` is the root data).
    Variable(String, Vec<String>),
    /// A function, by name.
    Function(String),
    /// `(pipeline).a.b`.
    Group(Box<Pipeline>, Vec<String>),
    Literal(serde_json::Value),
}

/// Parses the pieces of template `name` into a tree.
pub fn parse(name: &str, pieces: Vec<Piece>) -> Result<Parsed, TemplateError> {
    let mut parser = Parser {
        name,
        pieces: pieces.into_iter().peekable(),
        loops: 0,
        top_level: true,
        definitions: BTreeMap::new(),
    };
    let (nodes, end) = parser.list()?;
    match end {
        None => Ok(Parsed {
            nodes,
            definitions: parser.definitions,
        }),
        Some((keyword, line)) => Err(parser.error(line, format!("unexpected {{{{{keyword}}}}}"))),
    }
}

struct Parser<'a> {
    name: &'a str,
    pieces: std::iter::Peekable<std::vec::IntoIter<Piece>>,
    /// How many `range` bodies enclose the current position (for break and continue).
    loops: usize,
    /// Whether the current position is outside every action, where `define` is allowed.
    top_level: bool,
    definitions: BTreeMap<String, Definition>,
}

/// What ended a list of nodes: `end`, `else` (with what follows it), or the template's end.
type ListEnd = Option<(String, usize)>;

impl Parser<'_> {
    fn error(&self, line: usize, message: String) -> TemplateError {
        TemplateError {
            template: self.name.to_string(),
            line,
            message,
        }
    }

    /// Nodes up to a closing `{{end}}` or `{{else ...}}`, which is returned (with the tokens
    /// after `else` pushed back as a new action).
    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let (tokens, line) = match piece {
                Piece::Text(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Piece::Action { tokens, line } => (tokens, line),
            };
            let keyword = match &tokens[0] {
                Token::Ident(word) => word.as_str(),
                _ => "",
            };
            match keyword {
                "end" => {
                    self.expect_alone(&tokens, line, "end")?;
                    return Ok((nodes, Some(("end".into(), line))));
                }
                "else" => {
                    if tokens.len() > 1 {
                        // `else if ...` / `else with ...`: the rest opens the next branch.
                        let rest = tokens[1..].to_vec();
                        let word = match &rest[0] {
                            Token::Ident(w) if w == "if" || w == "with" => w.clone(),
                            _ => {
                                return Err(self.error(
                                    line,
                                    "`else` may only be followed by `if` or `with`".into(),
                                ));
                            }
                        };
                        self.push_back(rest, line);
                        return Ok((nodes, Some((format!("else {word}"), line))));
                    }
                    return Ok((nodes, Some(("else".into(), line))));
                }
                "if" => nodes.push(self.conditional(&tokens[1..], line, "if")?),
                "with" => nodes.push(self.conditional(&tokens[1..], line, "with")?),
                "range" => nodes.push(self.range(&tokens[1..], line)?),
                "break" | "continue" => {
                    self.expect_alone(&tokens, line, keyword)?;
                    if self.loops == 0 {
                        return Err(
                            self.error(line, format!("{{{{{keyword}}}}} outside {{{{range}}}}"))
                        );
                    }
                    nodes.push(if keyword == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" if self.top_level => {
                    let name = self.template_name(&tokens, line, "define")?;
                    if tokens.len() > 2 {
                        return Err(self.error(
                            line,
                            format!("unexpected {:?} in {{{{define}}}}", tokens[2]),
                        ));
                    }
                    self.definition(name, line, false)?;
                }
                "define" => {
                    return Err(self.error(
                        line,
                        "unexpected {{define}}: templates can only be defined at the top level, \
                         outside every other action"
                            .into(),
                    ));
                }
                "template" => {
                    let name = self.template_name(&tokens, line, "template")?;
                    let pipeline = match &tokens[2..] {
                        [] => None,
                        rest => Some(self.pipeline(rest, line)?),
                    };
                    nodes.push(Node::Template {
                        name,
                        pipeline,
                        line,
                    });
                }
                "block" => {
                    let name = self.template_name(&tokens, line, "block")?;
                    if tokens.len() == 2 {
                        return Err(self.error(
                            line,
                            "missing value for {{block}}: write {{block \"name\" .}}".into(),
                        ));
                    }
                    let pipeline = self.pipeline(&tokens[2..], line)?;
                    self.definition(name.clone(), line, true)?;
                    nodes.push(Node::Template {
                        name,
                        pipeline: Some(pipeline),
                        line,
                    });
                }
                _ => nodes.push(Node::Action(self.pipeline(&tokens, line)?)),
            }
        }
        Ok((nodes, None))
    }

    /// The nodes of a body inside an action, where `define` is not allowed.
    fn nested_list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let top_level = std::mem::replace(&mut self.top_level, false);
        let result = self.list();
        self.top_level = top_level;
        result
    }

    /// The quoted name after `define`, `template` or `block` (Go accepts only a constant).
    fn template_name(
        &self,
        tokens: &[Token],
        line: usize,
        keyword: &str,
    ) -> Result<String, TemplateError> {
        match tokens.get(1) {
            Some(Token::String(name)) => Ok(name.clone()),
            _ => Err(self.error(
                line,
                format!(
                    "{{{{{keyword}}}}} needs a quoted template name: {{{{{keyword} \"name\"}}}}"
                ),
            )),
        }
    }

    /// The body of a `define` or `block` up to its `{{end}}`, recorded as template `name`.
    /// Like Go, a body starts afresh: `break` and `continue` do not reach an enclosing range.
    fn definition(&mut self, name: String, line: usize, block: bool) -> Result<(), TemplateError> {
        let keyword = if block { "block" } else { "define" };
        let loops = std::mem::replace(&mut self.loops, 0);
        let body = self.nested_list();
        self.loops = loops;
        let (body, end) = body?;
        match end {
            Some((word, _)) if word == "end" => {}
            Some((word, end_line)) => {
                return Err(self.error(
                    end_line,
                    format!("unexpected {{{{{word}}}}} in {{{{{keyword}}}}}"),
                ));
            }
            None => {
                return Err(self.error(
                    line,
                    format!("{{{{{keyword}}}}} has no matching {{{{end}}}}"),
                ));
            }
        }
        let definition = Definition {
            file: self.name.to_string(),
            line,
            block,
            body,
        };
        self.add(name, definition)
    }

    /// Records a definition as Go's `parse.Tree.add` does: within one file a name may be
    /// defined twice only if one of the bodies is empty, and the non-empty one counts.
    fn add(&mut self, name: String, definition: Definition) -> Result<(), TemplateError> {
        match self.definitions.get(&name) {
            Some(first) if !first.is_empty() && !definition.is_empty() => Err(self.error(
                definition.line,
                format!(
                    "multiple definition of template {name:?} (first defined on line {})",
                    first.line
                ),
            )),
            Some(first) if !first.is_empty() => Ok(()),
            _ => {
                self.definitions.insert(name, definition);
                Ok(())
            }
        }
    }

    fn push_back(&mut self, tokens: Vec<Token>, line: usize) {
        let mut rest: Vec<Piece> = vec![Piece::Action { tokens, line }];
        rest.extend(std::mem::replace(
            &mut self.pieces,
            Vec::new().into_iter().peekable(),
        ));
        self.pieces = rest.into_iter().peekable();
    }

    fn expect_alone(
        &self,
        tokens: &[Token],
        line: usize,
        keyword: &str,
    ) -> Result<(), TemplateError> {
        if tokens.len() == 1 {
            Ok(())
        } else {
            Err(self.error(line, format!("unexpected arguments after `{keyword}`")))
        }
    }

    /// `if` and `with`, with their `else if`/`else with` chains and final `else`.
    fn conditional(
        &mut self,
        tokens: &[Token],
        line: usize,
        keyword: &str,
    ) -> Result<Node, TemplateError> {
        let mut branches = Vec::new();
        let mut condition = self.pipeline(tokens, line)?;
        loop {
            let (body, end) = self.nested_list()?;
            branches.push((condition, body));
            match end {
                Some((word, _)) if word == "end" => {
                    return Ok(self.build_conditional(keyword, branches, Vec::new()));
                }
                Some((word, _)) if word == "else" => {
                    let (otherwise, end) = self.nested_list()?;
                    return match end {
                        Some((word, _)) if word == "end" => {
                            Ok(self.build_conditional(keyword, branches, otherwise))
                        }
                        _ => Err(self.error(
                            line,
                            format!("{{{{{keyword}}}}} has no matching {{{{end}}}}"),
                        )),
                    };
                }
                Some((word, else_line)) if word == format!("else {keyword}") => {
                    let Some(Piece::Action { tokens, .. }) = self.pieces.next() else {
                        return Err(self.error(else_line, "`else` without a condition".into()));
                    };
                    condition = self.pipeline(&tokens[1..], else_line)?;
                }
                Some((word, else_line)) => {
                    return Err(self.error(
                        else_line,
                        format!("{{{{{word}}}}} cannot continue {{{{{keyword}}}}}"),
                    ));
                }
                None => {
                    return Err(self.error(
                        line,
                        format!("{{{{{keyword}}}}} has no matching {{{{end}}}}"),
                    ));
                }
            }
        }
    }

    fn build_conditional(
        &self,
        keyword: &str,
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    ) -> Node {
        if keyword == "if" {
            Node::If {
                branches,
                otherwise,
            }
        } else {
            Node::With {
                branches,
                otherwise,
            }
        }
    }

    fn range(&mut self, tokens: &[Token], line: usize) -> Result<Node, TemplateError> {
        let pipeline = self.pipeline(tokens, line)?;
        if pipeline.variables.len() > 2 {
            return Err(self.error(line, "range declares at most two variables".into()));
        }
        self.loops += 1;
        let body = self.nested_list();
        self.loops -= 1;
        let (body, end) = body?;
        match end {
            Some((word, _)) if word == "end" => Ok(Node::Range {
                pipeline,
                body,
                otherwise: Vec::new(),
            }),
            Some((word, _)) if word == "else" => {
                let (otherwise, end) = self.nested_list()?;
                match end {
                    Some((word, _)) if word == "end" => Ok(Node::Range {
                        pipeline,
                        body,
                        otherwise,
                    }),
                    _ => Err(self.error(line, "{{range}} has no matching {{end}}".into())),
                }
            }
            _ => Err(self.error(line, "{{range}} has no matching {{end}}".into())),
        }
    }

    fn pipeline(&self, tokens: &[Token], line: usize) -> Result<Pipeline, TemplateError> {
        let error = |message: String| self.error(line, message);
        if tokens.is_empty() {
            return Err(error("missing value".into()));
        }
        let mut variables = Vec::new();
        let mut declares = false;
        let mut rest = tokens;
        // A declaration: `$x :=`, `$i, $v :=`, or an assignment `$x =`.
        let declaration_end = tokens
            .iter()
            .position(|t| matches!(t, Token::Declare | Token::Assign));
        if let Some(end) = declaration_end {
            let head = &tokens[..end];
            let names: Vec<&Token> = head.iter().filter(|t| !matches!(t, Token::Comma)).collect();
            let all_variables = names.iter().all(|t| matches!(t, Token::Variable(_)));
            if all_variables && !names.is_empty() && head.len() == names.len() * 2 - 1 {
                variables = names
                    .iter()
                    .map(|t| match t {
                        Token::Variable(name) => name.clone(),
                        _ => unreachable!(),
                    })
                    .collect();
                declares = matches!(tokens[end], Token::Declare);
                rest = &tokens[end + 1..];
            }
        }
        let mut commands = Vec::new();
        let mut position = 0;
        while position <= rest.len() {
            let (command, next) = self.command(rest, position, line)?;
            commands.push(command);
            position = next;
            match rest.get(position) {
                Some(Token::Pipe) => position += 1,
                None => break,
                Some(other) => return Err(error(format!("unexpected {other:?} in pipeline"))),
            }
        }
        Ok(Pipeline {
            line,
            variables,
            declares,
            commands,
        })
    }

    /// One command from `tokens[start..]`, up to a `|`, a `)` or the end.
    fn command(
        &self,
        tokens: &[Token],
        start: usize,
        line: usize,
    ) -> Result<(Command, usize), TemplateError> {
        let error = |message: String| self.error(line, message);
        let mut operands = Vec::new();
        let mut i = start;
        while i < tokens.len() {
            let operand = match &tokens[i] {
                Token::Pipe | Token::RightParen => break,
                Token::Dot => Operand::Dot(Vec::new()),
                Token::Field { name, .. } => Operand::Dot(vec![name.clone()]),
                Token::Variable(name) => Operand::Variable(name.clone(), Vec::new()),
                Token::Ident(name) => Operand::Function(name.clone()),
                Token::String(s) => Operand::Literal(serde_json::Value::String(s.clone())),
                Token::Int(n) => Operand::Literal((*n).into()),
                Token::Float(f) => Operand::Literal(serde_json::json!(f)),
                Token::Bool(b) => Operand::Literal((*b).into()),
                Token::Nil => Operand::Literal(serde_json::Value::Null),
                Token::LeftParen => {
                    let close = matching_paren(tokens, i)
                        .ok_or_else(|| error("unclosed left parenthesis".into()))?;
                    let inner = self.pipeline(&tokens[i + 1..close], line)?;
                    i = close;
                    Operand::Group(Box::new(inner), Vec::new())
                }
                other => return Err(error(format!("unexpected {other:?} in command"))),
            };
            i += 1;
            // Fields chained onto the operand: `.a.b`, `$x.a`, `(f).a`.
            let mut operand = operand;
            while let Some(Token::Field {
                name,
                chained: true,
            }) = tokens.get(i)
            {
                match &mut operand {
                    Operand::Dot(path) | Operand::Variable(_, path) | Operand::Group(_, path) => {
                        path.push(name.clone())
                    }
                    _ => {
                        return Err(error(format!(
                            "cannot take field `{name}` of a function or literal"
                        )));
                    }
                }
                i += 1;
            }
            operands.push(operand);
        }
        if operands.is_empty() {
            return Err(error("missing command in pipeline".into()));
        }
        Ok((Command { operands }, i))
    }
}

fn matching_paren(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::LeftParen => depth += 1,
            Token::RightParen => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}
