//! Running a parsed Go template over data, with Go's semantics.

use serde_json::Value;

use super::format;
use super::funcs::{self, Functions};
use super::parse::{Command, Node, Operand, Pipeline};

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
    /// Variables in scope, innermost last; `$` is the root data.
    variables: Vec<(String, Value)>,
    out: String,
}

/// An error and the line it happened on.
pub type ExecError = (usize, String);

impl<'a> Exec<'a> {
    pub fn new(missing: MissingKey, functions: &'a Functions, root: &Value) -> Self {
        Self {
            missing,
            functions,
            variables: vec![(String::new(), root.clone())],
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
        }
        Ok(Flow::Normal)
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
                ));
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
                    None => return Err((pipeline.line, format!("undefined variable: ${name}"))),
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
                    ));
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
                .map_err(|message| (line, format!("error calling {name}: {message}")));
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
            ));
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
                .map_err(|message| (line, format!("error calling {name}: {message}"))),
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
                    None => return Err((line, format!("map has no entry for key \"{name}\""))),
                },
                Value::Null if self.missing == MissingKey::Zero => return Ok(Value::Null),
                Value::Null => return Err((line, format!("nil pointer evaluating .{name}"))),
                other => {
                    return Err((
                        line,
                        format!("can't evaluate field {name} in {}", format::print(other)),
                    ));
                }
            };
        }
        Ok(current.clone())
    }
}
