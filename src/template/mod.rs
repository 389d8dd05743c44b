//! Templates: rendering object templates (and the config file itself) per iteration.
//!
//! kube-burner workloads are written in Go's `text/template` syntax with sprig functions;
//! [`go`] is burner's own front end for that syntax: it parses a template once and renders
//! it many times, with Go's semantics for fields, variables, pipelines, `if`, `range`,
//! `with`, whitespace trimming and the functions real workloads use. Anything it does not
//! support is an error naming the construct, the template and the line.

pub mod go;

/// Where a template error is: the template's name (its file) and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}:{line}: {message}")]
pub struct TemplateError {
    pub template: String,
    pub line: usize,
    pub message: String,
}
