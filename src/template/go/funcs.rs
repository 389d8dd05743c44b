//! The functions Go templates call: Go's built-ins, the sprig functions real kube-burner
//! workloads use, and kube-burner's own. Argument conversions follow sprig, which reads
//! numbers leniently (a string "3" is 3, a float is truncated, nonsense is 0).

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;
use serde_json::{Map, Value, json};

use super::format;
use crate::rng::SplitMix64;

/// The function table of one renderer.
pub struct Functions {
    /// `ReadFile` may read only below this folder (the config file's).
    read_root: Option<PathBuf>,
    rng: Mutex<SplitMix64>,
}

impl Functions {
    pub fn new(read_root: Option<PathBuf>) -> Self {
        Self {
            read_root,
            rng: Mutex::new(SplitMix64::from_entropy()),
        }
    }

    /// Whether `name` is a function this table has (checked when a template is parsed).
    pub fn has(name: &str) -> bool {
        NAMES.contains(&name)
    }

    pub fn call(&self, name: &str, args: &[Value]) -> Result<Value, String> {
        let arity = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("wrong number of args: want {n} got {}", args.len()))
            }
        };
        let at_least = |n: usize| -> Result<(), String> {
            if args.len() >= n {
                Ok(())
            } else {
                Err(format!(
                    "wrong number of args: want at least {n} got {}",
                    args.len()
                ))
            }
        };
        let s = |i: usize| string(&args[i]);
        let i = |i: usize| int(&args[i]);
        Ok(match name {
            // Go's built-ins.
            "and" | "or" => {
                at_least(1)?;
                let decided = args.iter().find(|a| truthy(a) == (name == "or"));
                decided.or(args.last()).cloned().unwrap_or(Value::Null)
            }
            "not" => {
                arity(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "len" => {
                arity(1)?;
                json!(match &args[0] {
                    Value::String(s) => s.len(),
                    Value::Array(a) => a.len(),
                    Value::Object(m) => m.len(),
                    other => return Err(format!("len of {}", format::print(other))),
                })
            }
            "index" => {
                at_least(1)?;
                let mut value = args[0].clone();
                for key in &args[1..] {
                    value = match (&value, key) {
                        (Value::Array(items), _) => {
                            let n = int(key);
                            items
                                .get(
                                    usize::try_from(n)
                                        .map_err(|_| format!("index out of range: {n}"))?,
                                )
                                .cloned()
                                .ok_or_else(|| format!("index out of range: {n}"))?
                        }
                        (Value::Object(map), Value::String(k)) => {
                            map.get(k).cloned().unwrap_or(Value::Null)
                        }
                        (Value::Null, _) => Value::Null,
                        (other, _) => {
                            return Err(format!(
                                "can't index item of type {}",
                                format::print(other)
                            ));
                        }
                    };
                }
                value
            }
            "print" => Value::String(sprint(args)),
            "println" => {
                Value::String(args.iter().map(format_arg).collect::<Vec<_>>().join(" ") + "\n")
            }
            "printf" => {
                at_least(1)?;
                Value::String(format::sprintf(&s(0), &args[1..])?)
            }
            "eq" => {
                at_least(2)?;
                let mut equal = false;
                for other in &args[1..] {
                    equal |= compare(&args[0], other)? == std::cmp::Ordering::Equal;
                }
                Value::Bool(equal)
            }
            "ne" => {
                arity(2)?;
                Value::Bool(compare(&args[0], &args[1])? != std::cmp::Ordering::Equal)
            }
            "lt" | "le" | "gt" | "ge" => {
                arity(2)?;
                let order = compare(&args[0], &args[1])?;
                Value::Bool(match name {
                    "lt" => order.is_lt(),
                    "le" => order.is_le(),
                    "gt" => order.is_gt(),
                    _ => order.is_ge(),
                })
            }
            // Sprig: arithmetic on 64-bit integers.
            "add" => json!(args.iter().map(int).fold(0i64, i64::wrapping_add)),
            "add1" => {
                arity(1)?;
                json!(i(0).wrapping_add(1))
            }
            "sub" => {
                arity(2)?;
                json!(i(0).wrapping_sub(i(1)))
            }
            "mul" => json!(args.iter().map(int).fold(1i64, i64::wrapping_mul)),
            "div" | "mod" => {
                arity(2)?;
                if i(1) == 0 {
                    return Err("integer divide by zero".into());
                }
                json!(if name == "div" {
                    i(0) / i(1)
                } else {
                    i(0) % i(1)
                })
            }
            "max" | "min" => {
                at_least(1)?;
                let values = args.iter().map(int);
                json!(if name == "max" {
                    values.max()
                } else {
                    values.min()
                })
            }
            "randInt" => {
                arity(2)?;
                let (low, high) = (i(0), i(1));
                if high <= low {
                    return Err(format!("randInt needs min < max, got {low} and {high}"));
                }
                json!(low + self.random_below((high - low) as u64) as i64)
            }
            "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" => {
                arity(1)?;
                let alphabet: &[u8] = match name {
                    "randAlphaNum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                    "randAlpha" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                    "randNumeric" => b"0123456789",
                    _ => b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~",
                };
                let n = usize::try_from(i(0)).unwrap_or(0);
                Value::String(
                    (0..n)
                        .map(|_| {
                            alphabet[self.random_below(alphabet.len() as u64) as usize] as char
                        })
                        .collect(),
                )
            }
            "uuidv4" => {
                arity(0)?;
                Value::String(self.rng.lock().map(|mut r| r.uuid_v4()).unwrap_or_default())
            }
            // Sprig: defaults and emptiness.
            "default" => {
                at_least(1)?;
                match args.get(1) {
                    Some(given) if !empty(given) => given.clone(),
                    _ => args[0].clone(),
                }
            }
            "empty" => {
                arity(1)?;
                Value::Bool(empty(&args[0]))
            }
            "ternary" => {
                arity(3)?;
                if truthy(&args[2]) {
                    args[0].clone()
                } else {
                    args[1].clone()
                }
            }
            // Sprig: strings.
            "quote" => Value::String(
                args.iter()
                    .filter(|a| !a.is_null())
                    .map(|a| serde_json::to_string(&string(a)).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "squote" => Value::String(
                args.iter()
                    .filter(|a| !a.is_null())
                    .map(|a| format!("'{}'", string(a)))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            "upper" => one(args, |v| Value::String(string(v).to_uppercase()))?,
            "lower" => one(args, |v| Value::String(string(v).to_lowercase()))?,
            "title" => one(args, |v| Value::String(title(&string(v))))?,
            "trim" => one(args, |v| Value::String(string(v).trim().to_string()))?,
            "trimPrefix" => {
                arity(2)?;
                Value::String(
                    s(1).strip_prefix(s(0).as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| s(1)),
                )
            }
            "trimSuffix" => {
                arity(2)?;
                Value::String(
                    s(1).strip_suffix(s(0).as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| s(1)),
                )
            }
            "replace" => {
                arity(3)?;
                Value::String(s(2).replace(&s(0), &s(1)))
            }
            "contains" => {
                arity(2)?;
                Value::Bool(s(1).contains(&s(0)))
            }
            "hasPrefix" => {
                arity(2)?;
                Value::Bool(s(1).starts_with(&s(0)))
            }
            "hasSuffix" => {
                arity(2)?;
                Value::Bool(s(1).ends_with(&s(0)))
            }
            "trunc" => {
                // sprig: the first n characters, or the last -n when n is negative.
                arity(2)?;
                let (n, text) = (i(0), s(1));
                let chars: Vec<char> = text.chars().collect();
                let len = chars.len() as i64;
                Value::String(if n >= 0 {
                    chars[..n.min(len) as usize].iter().collect()
                } else {
                    chars[(len + n).max(0) as usize..].iter().collect()
                })
            }
            "substr" => {
                arity(3)?;
                let chars: Vec<char> = s(2).chars().collect();
                let len = chars.len() as i64;
                let (start, end) = (i(0).clamp(0, len), i(1));
                let end = if end < 0 || end > len {
                    len
                } else {
                    end.max(start)
                };
                Value::String(chars[start as usize..end as usize].iter().collect())
            }
            "repeat" => {
                arity(2)?;
                Value::String(s(1).repeat(usize::try_from(i(0)).unwrap_or(0)))
            }
            "split" => {
                arity(2)?;
                let parts: Map<String, Value> = s(1)
                    .split(s(0).as_str())
                    .enumerate()
                    .map(|(n, p)| (format!("_{n}"), Value::from(p)))
                    .collect();
                Value::Object(parts)
            }
            "splitList" => {
                arity(2)?;
                Value::Array(s(1).split(s(0).as_str()).map(Value::from).collect())
            }
            "join" => {
                arity(2)?;
                let items = match &args[1] {
                    Value::Array(items) => items.iter().map(string).collect::<Vec<_>>(),
                    other => vec![string(other)],
                };
                Value::String(items.join(&s(0)))
            }
            "indent" | "nindent" => {
                arity(2)?;
                let pad = " ".repeat(usize::try_from(i(0)).unwrap_or(0));
                let indented = format!("{pad}{}", s(1).replace('\n', &format!("\n{pad}")));
                Value::String(if name == "nindent" {
                    format!("\n{indented}")
                } else {
                    indented
                })
            }
            // Sprig: collections.
            "list" => Value::Array(args.to_vec()),
            "dict" => {
                let mut map = Map::new();
                for pair in args.chunks(2) {
                    map.insert(
                        string(&pair[0]),
                        pair.get(1).cloned().unwrap_or(Value::String(String::new())),
                    );
                }
                Value::Object(map)
            }
            "get" => {
                arity(2)?;
                args[0]
                    .get(s(1))
                    .cloned()
                    .unwrap_or(Value::String(String::new()))
            }
            "hasKey" => {
                arity(2)?;
                Value::Bool(args[0].get(s(1)).is_some())
            }
            "until" => {
                arity(1)?;
                Value::Array((0..i(0).max(0)).map(Value::from).collect())
            }
            "seq" => Value::String(seq(&args.iter().map(int).collect::<Vec<_>>())?),
            // Sprig: conversions and encodings.
            "atoi" => one(args, |v| {
                json!(string(v).trim().parse::<i64>().unwrap_or(0))
            })?,
            "int" | "int64" => one(args, |v| json!(int(v)))?,
            "float64" => one(args, |v| json!(float(v)))?,
            "toString" => one(args, |v| Value::String(string(v)))?,
            "toJson" => one(args, |v| Value::String(go_json(v)))?,
            "toYaml" => one(args, |v| {
                Value::String(
                    serde_saphyr::to_string(v)
                        .map(|y| y.trim_end_matches('\n').to_string())
                        .unwrap_or_default(),
                )
            })?,
            "b64enc" => one(args, |v| {
                Value::String(base64::engine::general_purpose::STANDARD.encode(string(v)))
            })?,
            "b64dec" => {
                arity(1)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s(0))
                    .map_err(|e| e.to_string())?;
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            "sha256sum" => one(args, |v| {
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, string(v).as_bytes());
                Value::String(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
            })?,
            "env" => one(args, |v| {
                Value::String(std::env::var(string(v)).unwrap_or_default())
            })?,
            // kube-burner's own.
            "Binomial" => {
                arity(2)?;
                json!(binomial(i(0), i(1))?)
            }
            "IndexToCombination" => {
                // kube-burner exposes gonum's IndexToCombination(dst, idx, n, k); dst is ignored.
                arity(4)?;
                json!(index_to_combination(i(1), i(2), i(3))?)
            }
            "GetSubnet24" => {
                arity(1)?;
                let n = i(0);
                Value::String(format!(
                    "{}.{}.{}.0/24",
                    (n >> 16) + 1,
                    (n >> 8) & 255,
                    n & 255
                ))
            }
            "GetIPAddress" => {
                arity(3)?;
                let addresses: Vec<String> = s(0).split_whitespace().map(str::to_string).collect();
                let per = usize::try_from(i(2)).unwrap_or(0);
                let start = usize::try_from(i(1))
                    .unwrap_or(0)
                    .saturating_mul(per)
                    .min(addresses.len());
                let end = start.saturating_add(per).min(addresses.len());
                Value::String(addresses[start..end].join(" "))
            }
            "ReadFile" => {
                arity(1)?;
                Value::String(self.read_file(&s(0))?)
            }
            _ if Self::has(name) => {
                return Err(format!("function {name:?} is listed but not implemented"));
            }
            _ => return Err(format!("function {name:?} not defined")),
        })
    }

    fn random_u64(&self) -> u64 {
        self.rng.lock().map(|mut r| r.next_u64()).unwrap_or(0)
    }

    fn random_below(&self, bound: u64) -> u64 {
        self.random_u64() % bound.max(1)
    }

    fn read_file(&self, path: &str) -> Result<String, String> {
        let root = self
            .read_root
            .as_ref()
            .ok_or("ReadFile is only available in templates read from a config file")?;
        let relative = Path::new(path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(format!(
                "ReadFile reads only below the config's folder {}; `{path}` leaves it",
                root.display()
            ));
        }
        std::fs::read_to_string(root.join(relative))
            .map_err(|e| format!("cannot read {}: {e}", root.join(relative).display()))
    }
}

/// Every function name the table knows; a test checks each has an implementation.
const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "println",
    "printf",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "randInt",
    "randAlphaNum",
    "randAlpha",
    "randNumeric",
    "randAscii",
    "uuidv4",
    "default",
    "empty",
    "ternary",
    "quote",
    "squote",
    "upper",
    "lower",
    "title",
    "trim",
    "trimPrefix",
    "trunc",
    "substr",
    "trimSuffix",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "repeat",
    "split",
    "splitList",
    "join",
    "indent",
    "nindent",
    "list",
    "dict",
    "get",
    "hasKey",
    "until",
    "seq",
    "atoi",
    "int",
    "int64",
    "float64",
    "toString",
    "toJson",
    "toYaml",
    "b64enc",
    "b64dec",
    "sha256sum",
    "env",
    "Binomial",
    "IndexToCombination",
    "GetSubnet24",
    "GetIPAddress",
    "ReadFile",
];

fn one(args: &[Value], f: impl FnOnce(&Value) -> Value) -> Result<Value, String> {
    match args {
        [value] => Ok(f(value)),
        _ => Err(format!("wrong number of args: want 1 got {}", args.len())),
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
pub fn truthy(value: &Value) -> bool {
    !empty(value)
}

/// Sprig's `empty`, which is Go's falseness.
pub fn empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

/// Sprig's `strval`: strings as they are, everything else as `%v` prints it.
pub fn string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => format::print(other),
    }
}

/// Sprig's `toInt64`.
pub fn int(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().map_or(0, |f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .ok()
                .or_else(|| {
                    s.strip_prefix("0x")
                        .and_then(|h| i64::from_str_radix(h, 16).ok())
                })
                .or_else(|| s.parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0)
        }
        Value::Bool(b) => i64::from(*b),
        _ => 0,
    }
}

fn float(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => 0.0,
    }
}

/// Go's `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (n, arg) in args.iter().enumerate() {
        if n > 0 && !args[n - 1].is_string() && !arg.is_string() {
            out.push(' ');
        }
        out.push_str(&format_arg(arg));
    }
    out
}

fn format_arg(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        other => format::print(other),
    }
}

/// Go's template comparison: numbers by value, strings by bytes, bools for equality only.
fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x.cmp(&y)),
            _ => x
                .as_f64()
                .unwrap_or(f64::NAN)
                .partial_cmp(&y.as_f64().unwrap_or(f64::NAN))
                .ok_or_else(|| "cannot compare NaN".to_string()),
        },
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) if x == y => Ok(std::cmp::Ordering::Equal),
        (Value::Bool(_), Value::Bool(_)) => Ok(std::cmp::Ordering::Less),
        (Value::Null, Value::Null) => Ok(std::cmp::Ordering::Equal),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            format::print(a),
            format::print(b)
        )),
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_word_start = true;
    for c in s.chars() {
        if at_word_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_word_start = !c.is_alphanumeric() && c != '_' && c != '\'';
    }
    out
}

/// Sprig's `seq`, like the shell's: `seq 3`, `seq 2 5`, `seq 1 2 9`, as a space-joined string.
fn seq(args: &[i64]) -> Result<String, String> {
    let (start, step, end) = match *args {
        [end] => (1, 1, end),
        [start, end] => (start, if end >= start { 1 } else { -1 }, end),
        [start, step, end] => (start, step, end),
        _ => return Err(format!("seq takes 1 to 3 arguments, got {}", args.len())),
    };
    if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
        return Ok(String::new());
    }
    let mut values = Vec::new();
    let mut n = start;
    while (step > 0 && n <= end) || (step < 0 && n >= end) {
        values.push(n.to_string());
        n += step;
    }
    Ok(values.join(" "))
}

/// Go's `encoding/json`: compact, with <, > and & escaped for HTML safety.
fn go_json(value: &Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn binomial(n: i64, k: i64) -> Result<i64, String> {
    if n < 0 || k < 0 || k > n {
        return Err(format!("Binomial needs 0 <= k <= n, got n={n} k={k}"));
    }
    let k = k.min(n - k);
    let mut result: i64 = 1;
    for i in 0..k {
        result = result.checked_mul(n - i).ok_or("Binomial overflows")? / (i + 1);
    }
    Ok(result)
}

/// The `index`-th `k`-combination of `0..n` in lexicographic order (gonum's order).
fn index_to_combination(index: i64, n: i64, k: i64) -> Result<Vec<i64>, String> {
    let total = binomial(n, k)?;
    if index < 0 || index >= total {
        return Err(format!(
            "IndexToCombination: index {index} out of range for n={n} k={k}"
        ));
    }
    let mut rest = index;
    let mut combination = Vec::with_capacity(k as usize);
    let mut next = 0;
    for position in 0..k {
        loop {
            let with_next = binomial(n - next - 1, k - position - 1)?;
            if rest < with_next {
                break;
            }
            rest -= with_next;
            next += 1;
        }
        combination.push(next);
        next += 1;
    }
    Ok(combination)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_function_is_implemented() {
        let functions = Functions::new(None);
        for name in NAMES {
            if let Err(message) = functions.call(name, &[]) {
                assert!(
                    !message.contains("listed but not implemented"),
                    "{name}: {message}"
                );
            }
        }
        assert!(
            functions
                .call("nosuch", &[])
                .unwrap_err()
                .contains("not defined")
        );
    }
}
