//! Printing values as Go's fmt does: `%v` for `{{ .x }}`, and the `printf` verbs
//! templates use.

use serde_json::Value;

/// The `%v` form of a value, as `{{ . }}` prints it.
pub fn print(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".to_string(),
        other => display(other, false),
    }
}

fn display(value: &Value, nested: bool) -> String {
    match value {
        Value::Null => if nested { "<nil>" } else { "<no value>" }.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|v| display(v, true))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let entries: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", display(&map[*k], true)))
                .collect();
            format!("map[{}]", entries.join(" "))
        }
    }
}

/// A float as Go's `%v` (`%g` with the shortest precision) prints it: the shortest digits
/// that read back the same, in exponent form when the exponent is below -4 or at least 6.
pub fn float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. `1.5e6`.
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("a numeric exponent");
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %f %g %e %x %X %o %b %q %t %c %%`,
/// with flags `-+ 0#`, width and precision.
pub fn sprintf(format: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.alternate = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(digits(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        out.push_str(&spec.apply(verb, arg)?);
    }
    let extra: Vec<String> = args
        .map(|a| format!("{}={}", type_name(a), display(a, true)))
        .collect();
    if !extra.is_empty() {
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    Ok(out)
}

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    n
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[derive(Default)]
struct Spec {
    left: bool,
    plus: bool,
    zero: bool,
    space: bool,
    alternate: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec {
    fn apply(&self, verb: char, arg: &Value) -> Result<String, String> {
        let integer = arg.as_i64().or_else(|| arg.as_u64().map(|u| u as i64));
        let body = match (verb, arg) {
            ('v', _) => display(arg, true),
            ('s', Value::String(s)) => match self.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', other) => display(other, true),
            ('q', Value::String(s)) => serde_json::to_string(s).unwrap_or_default(),
            ('t', Value::Bool(b)) => b.to_string(),
            ('d', _) if integer.is_some() => self.signed(integer.unwrap_or(0).to_string()),
            ('x' | 'X' | 'o' | 'b', _) if integer.is_some() => {
                let n = integer.unwrap_or(0);
                let magnitude = n.unsigned_abs();
                let digits = match verb {
                    'x' => format!("{magnitude:x}"),
                    'X' => format!("{magnitude:X}"),
                    'o' => format!("{magnitude:o}"),
                    _ => format!("{magnitude:b}"),
                };
                let prefix = match (self.alternate, verb) {
                    (true, 'x') => "0x",
                    (true, 'X') => "0X",
                    (true, 'o') => "0",
                    _ => "",
                };
                format!("{}{prefix}{digits}", if n < 0 { "-" } else { "" })
            }
            ('x', Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('c', _) if integer.is_some() => char::from_u32(integer.unwrap_or(0) as u32)
                .map(String::from)
                .unwrap_or_default(),
            ('f' | 'F' | 'e' | 'g', Value::Number(n)) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                let text = match verb {
                    'f' | 'F' => format!("{:.*}", self.precision.unwrap_or(6), f),
                    'e' => go_exponent(&format!("{:.*e}", self.precision.unwrap_or(6), f)),
                    _ => match self.precision {
                        Some(p) => format!(
                            "{}",
                            format!("{:.*e}", p.saturating_sub(1), f)
                                .parse::<f64>()
                                .unwrap_or(f)
                        ),
                        None => float(f),
                    },
                };
                self.signed(text)
            }
            (verb, arg) => format!("%!{verb}({}={})", type_name(arg), display(arg, true)),
        };
        Ok(self.pad(
            body,
            matches!(verb, 'd' | 'x' | 'X' | 'o' | 'b' | 'f' | 'F' | 'e' | 'g'),
        ))
    }

    fn signed(&self, text: String) -> String {
        if text.starts_with('-') {
            text
        } else if self.plus {
            format!("+{text}")
        } else if self.space {
            format!(" {text}")
        } else {
            text
        }
    }

    fn pad(&self, body: String, numeric: bool) -> String {
        let Some(width) = self.width else { return body };
        let len = body.chars().count();
        if len >= width {
            return body;
        }
        let fill = width - len;
        if self.left {
            format!("{body}{}", " ".repeat(fill))
        } else if self.zero && numeric {
            // Zeros go after the sign.
            let (sign, digits) = match body.chars().next() {
                Some(c @ ('-' | '+' | ' ')) => (c.to_string(), body[1..].to_string()),
                _ => (String::new(), body),
            };
            format!("{sign}{}{digits}", "0".repeat(fill))
        } else {
            format!("{}{body}", " ".repeat(fill))
        }
    }
}

/// Rust writes `1.5e6`; Go writes `1.500000e+06`.
fn go_exponent(rust: &str) -> String {
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    format!(
        "{mantissa}e{}{:02}",
        if exponent < 0 { '-' } else { '+' },
        exponent.abs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_print_as_go_prints_them() {
        assert_eq!(print(&json!(null)), "<no value>");
        assert_eq!(print(&json!(3)), "3");
        assert_eq!(print(&json!(1.5)), "1.5");
        assert_eq!(print(&json!(2.0)), "2");
        assert_eq!(print(&json!(1e6)), "1e+06");
        assert_eq!(float(123456.0), "123456");
        assert_eq!(float(1234567.0), "1.234567e+06");
        assert_eq!(float(1e21), "1e+21");
        assert_eq!(float(0.00001), "1e-05");
        assert_eq!(print(&json!([1, "a", null])), "[1 a <nil>]");
        assert_eq!(print(&json!({"b": 1, "a": [true]})), "map[a:[true] b:1]");
    }

    #[test]
    fn printf_handles_the_verbs_templates_use() {
        let f = |fmt: &str, args: &[Value]| sprintf(fmt, args).unwrap();
        assert_eq!(f("%05d", &[json!(3)]), "00003");
        assert_eq!(f("%-4d|", &[json!(7)]), "7   |");
        assert_eq!(f("%+d %d", &[json!(5), json!(-5)]), "+5 -5");
        assert_eq!(f("node-%s-%03d", &[json!("a"), json!(42)]), "node-a-042");
        assert_eq!(f("%.2f", &[json!(1.23456)]), "1.23");
        assert_eq!(
            f("%x %X %#x", &[json!(255), json!(255), json!(255)]),
            "ff FF 0xff"
        );
        assert_eq!(f("%q", &[json!("a\"b")]), "\"a\\\"b\"");
        assert_eq!(f("%v %v", &[json!(true), json!([1, 2])]), "true [1 2]");
        assert_eq!(f("100%%", &[]), "100%");
        assert_eq!(f("%d", &[]), "%!d(MISSING)");
        assert_eq!(f("%d", &[json!("x")]), "%!d(string=x)");
        assert_eq!(f("%e", &[json!(1500000.0)]), "1.500000e+06");
    }
}
