//! Running a parsed Go template over data, with Go's semantics.

use serde_json::Value;

use super::format;
use super::funcs::{self, Functions};
use super::named::Templates;
use super::parse::{Command, Definition, Node, Operand, Pipeline};

/// How deeply `{{template}}` calls may nest. Go allows 100000 on its growable stacks;
/// object templates never come near 100, and renders run on worker threads whose fixed
/// stacks (a few KiB per level in debug builds) must not overflow, so runaway recursion
/// stops here.
pub const MAX_TEMPLATE_DEPTH: usize = 100;

/// What a missing map key gives: an error (Go's `missingkey=error`, kube-burner's
/// default) or no value (`missingkey=zero`, with `--allow-missing` or
/// `defaultMissingKeysWithZero`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    #[default]
    Error,
    Zero,
}

/// How a loop body ended.
enum Flow {
    Normal,
    Break,
    Continue,
}

pub struct Exec<'a> {
    pub missing: MissingKey,
    pub functions: &'a Functions,
    /// What `{{template "name"}}` runs.
    templates: &'a Templates,
    /// Variables in scope, innermost last; `$` is the root data.
    variables: Vec<(String, Value)>,
    /// How many `{{template}}` calls enclose the current position.
    depth: usize,
    out: String,
}

/// An error, the line it happened on, and the named template it happened in (none for
/// the top level of the template being rendered).
#[derive(Debug)]
pub struct ExecError {
    pub line: usize,
    pub message: String,
    pub inside: Option<Inside>,
}

/// Where an error inside a called template was written.
#[derive(Debug)]
pub struct Inside {
    pub template: String,
    pub file: String,
}

impl From<(usize, String)> for ExecError {
    fn from((line, message): (usize, String)) -> Self {
        Self {
            line,
            message,
            inside: None,
        }
    }
}

impl<'a> Exec<'a> {
    pub fn new(
        missing: MissingKey,
        functions: &'a Functions,
        templates: &'a Templates,
        root: &Value,
    ) -> Self {
        Self {
            missing,
            functions,
            templates,
            variables: vec![(String::new(), root.clone())],
            depth: 0,
            out: String::new(),
        }
    }

    pub fn run(mut self, nodes: &[Node], dot: &Value) -> Result<String, ExecError> {
        self.nodes(nodes, dot)?;
        Ok(self.out)
    }

    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        for node in nodes {
            match self.node(node, dot)? {
                Flow::Normal => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Normal)
    }

    /// Runs `nodes` in a new variable scope.
    fn scoped(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, ExecError> {
        let depth = self.variables.len();
        let flow = self.nodes(nodes, dot);
        self.variables.truncate(depth);
        flow
    }

    fn node(&mut self, node: &Node, dot: &Value) -> Result<Flow, ExecError> {
        match node {
            Node::Text(text) => self.out.push_str(text),
            Node::Action(pipeline) => {
                let value = self.pipeline(pipeline, dot)?;
                if pipeline.variables.is_empty() {
                    self.out.push_str(&format::print(&value));
                }
            }
            Node::If {
                branches,
                otherwise,
            }
            | Node::With {
                branches,
                otherwise,
            } => {
                let with = matches!(node, Node::With { .. });
                let depth = self.variables.len();
                for (condition, body) in branches {
                    let value = self.pipeline(condition, dot)?;
                    if funcs::truthy(&value) {
                        let flow = self.scoped(body, if with { &value } else { dot });
                        self.variables.truncate(depth);
                        return flow;
                    }
                }
                let flow = self.scoped(otherwise, dot);
                self.variables.truncate(depth);
                return flow;
            }
            Node::Range {
                pipeline,
                body,
                otherwise,
            } => return self.range(pipeline, body, otherwise, dot),
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
            Node::Template {
                name,
                pipeline,
                line,
            } => self.template(name, pipeline.as_ref(), *line, dot)?,
        }
        Ok(Flow::Normal)
    }

    /// `{{template "name" pipeline}}`: runs the named template with the pipeline's value
    /// (nil without one) as both `.` and `$`, and none of the caller's variables, as Go does.
    fn template(
        &mut self,
        name: &str,
        pipeline: Option<&Pipeline>,
        line: usize,
        dot: &Value,
    ) -> Result<(), ExecError> {
        let templates = self.templates;
        let definition: &Definition = templates
            .get(name)
            .ok_or_else(|| (line, format!("template {name:?} not defined")))?;
        if self.depth >= MAX_TEMPLATE_DEPTH {
            return Err((
                line,
                format!(
                    "exceeded maximum template depth ({MAX_TEMPLATE_DEPTH}) calling template {name:?}"
                ),
            )
                .into());
        }
        // Variables the pipeline declares stay in the caller's scope, as in Go.
        let value = match pipeline {
            Some(pipeline) => self.pipeline(pipeline, dot)?,
            None => Value::Null,
        };
        let callers = std::mem::replace(&mut self.variables, vec![(String::new(), value.clone())]);
        self.depth += 1;
        // The body's flow is always normal: the parser keeps break and continue inside.
        let result = self.nodes(&definition.body, &value);
        self.depth -= 1;
        self.variables = callers;
        result.map(|_| ()).map_err(|mut error| {
            // Only the innermost call knows where the error was written.
            error.inside.get_or_insert_with(|| Inside {
                template: name.to_string(),
                file: definition.file.clone(),
            });
            error
        })
    }

    fn range(
        &mut self,
        pipeline: &Pipeline,
        body: &[Node],
        otherwise: &[Node],
        dot: &Value,
    ) -> Result<Flow, ExecError> {
        // The range's variables get each element, not the whole value.
        let declared = Pipeline {
            variables: Vec::new(),
            ..pipeline.clone()
        };
        let value = self.pipeline(&declared, dot)?;
        let items: Vec<(Value, Value)> = match &value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::from(i), v.clone()))
                .collect(),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::from(k.clone()), map[k].clone()))
                    .collect()
            }
            Value::Number(n) if n.as_i64().is_some() => (0..n.as_i64().unwrap_or(0))
                .map(|i| (Value::from(i), Value::from(i)))
                .collect(),
            Value::Null => Vec::new(),
            other => {
                return Err((
                    pipeline.line,
                    format!("range can't iterate over {}", format::print(other)),
                )
                    .into());
            }
        };
        if items.is_empty() {
            return self.scoped(otherwise, dot);
        }
        for (key, item) in items {
            let depth = self.variables.len();
            match pipeline.variables.as_slice() {
                [] => {}
                [value_var] => self.variables.push((value_var.clone(), item.clone())),
                [key_var, value_var] => {
                    self.variables.push((key_var.clone(), key));
                    self.variables.push((value_var.clone(), item.clone()));
                }
                _ => unreachable!("the parser allows at most two range variables"),
            }
            let flow = self.nodes(body, &item);
            self.variables.truncate(depth);
            match flow? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        Ok(Flow::Normal)
    }

    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> Result<Value, ExecError> {
        let mut value: Option<Value> = None;
        for command in &pipeline.commands {
            value = Some(self.command(command, dot, value, pipeline.line)?);
        }
        let value = value.unwrap_or(Value::Null);
        for name in &pipeline.variables {
            if pipeline.declares {
                self.variables.push((name.clone(), value.clone()));
            } else {
                let slot = self.variables.iter_mut().rev().find(|(n, _)| n == name);
                match slot {
                    Some((_, v)) => *v = value.clone(),
                    None => {
                        return Err((pipeline.line, format!("undefined variable: ${name}")).into());
                    }
                }
            }
        }
        Ok(value)
    }

    fn command(
        &mut self,
        command: &Command,
        dot: &Value,
        piped: Option<Value>,
        line: usize,
    ) -> Result<Value, ExecError> {
        let first = &command.operands[0];
        if let Operand::Function(name) = first {
            let mut args = Vec::with_capacity(command.operands.len());
            // `and` and `or` stop at the first argument that decides them, as in Go.
            if (name == "and" || name == "or") && piped.is_none() {
                let mut last = Value::Null;
                for operand in &command.operands[1..] {
                    last = self.operand(operand, dot, line)?;
                    if funcs::truthy(&last) == (name == "or") {
                        return Ok(last);
                    }
                }
                if command.operands.len() < 2 {
                    return Err((
                        line,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    )
                        .into());
                }
                return Ok(last);
            }
            for operand in &command.operands[1..] {
                args.push(self.operand(operand, dot, line)?);
            }
            if let Some(value) = piped {
                args.push(value);
            }
            return self
                .functions
                .call(name, &args)
                .map_err(|message| (line, format!("error calling {name}: {message}")).into());
        }
        if command.operands.len() > 1 || piped.is_some() {
            let what = match first {
                Operand::Dot(path) if !path.is_empty() => format!("field .{}", path.join(".")),
                Operand::Variable(name, _) => format!("${name}"),
                _ => "a value".into(),
            };
            return Err((
                line,
                format!("{what} is not a function and can't take arguments"),
            )
                .into());
        }
        self.operand(first, dot, line)
    }

    fn operand(&mut self, operand: &Operand, dot: &Value, line: usize) -> Result<Value, ExecError> {
        match operand {
            Operand::Dot(path) => self.fields(dot, path, line),
            Operand::Variable(name, path) => {
                let value = self
                    .variables
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| (line, format!("undefined variable: ${name}")))?;
                self.fields(value, path, line)
            }
            Operand::Group(pipeline, path) => {
                let value = self.pipeline(pipeline, dot)?;
                self.fields(&value, path, line)
            }
            Operand::Literal(value) => Ok(value.clone()),
            Operand::Function(name) => self
                .functions
                .call(name, &[])
                .map_err(|message| (line, format!("error calling {name}: {message}")).into()),
        }
    }

    /// Follows `path` from `value` by reference, cloning only what it arrives at.
    fn fields(&self, value: &Value, path: &[String], line: usize) -> Result<Value, ExecError> {
        let mut current = value;
        for name in path {
            current = match current {
                Value::Object(map) => match map.get(name) {
                    Some(v) => v,
                    None if self.missing == MissingKey::Zero => return Ok(Value::Null),
                    None => {
                        return Err((line, format!("map has no entry for key \"{name}\"")).into());
                    }
                },
                Value::Null if self.missing == MissingKey::Zero => return Ok(Value::Null),
                Value::Null => {
                    return Err((line, format!("nil pointer evaluating .{name}")).into());
                }
                other => {
                    return Err((
                        line,
                        format!("can't evaluate field {name} in {}", format::print(other)),
                    )
                        .into());
                }
            };
        }
        Ok(current.clone())
    }
}
