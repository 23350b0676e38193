//! JSON output without serde: the tools print a few flat or shallow values, and serde would add
//! to every CI build for that. Fields keep the order they are added in, which the tests' output
//! comparisons and humans reading a line both rely on.

use std::fmt::Write as _;

/// Decimals of a float unless a tool asks for others: milliseconds to the microsecond.
pub const FLOAT_DECIMALS: usize = 3;

/// A JSON value. A non-finite float is written as null.
#[derive(Clone, Debug)]
pub enum J {
    Bool(bool),
    Num(u64),
    Float(f64),
    Str(String),
    Null,
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    /// An object from `(key, value)` pairs, keys as literals or owned strings.
    pub fn obj<K: Into<String>>(fields: impl IntoIterator<Item = (K, J)>) -> J {
        J::Obj(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, FLOAT_DECIMALS);
        out
    }

    pub fn write(&self, out: &mut String, float_decimals: usize) {
        match self {
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Num(n) => {
                let _ = write!(out, "{n}");
            }
            J::Float(f) if f.is_finite() => {
                let _ = write!(out, "{f:.float_decimals$}");
            }
            J::Float(_) | J::Null => out.push_str("null"),
            J::Str(s) => write_str(out, s),
            J::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out, float_decimals);
                }
                out.push(']');
            }
            J::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(out, k);
                    out.push(':');
                    v.write(out, float_decimals);
                }
                out.push('}');
            }
        }
    }
}

impl From<bool> for J {
    fn from(v: bool) -> Self {
        J::Bool(v)
    }
}
impl From<u64> for J {
    fn from(v: u64) -> Self {
        J::Num(v)
    }
}
impl From<usize> for J {
    fn from(v: usize) -> Self {
        J::Num(v as u64)
    }
}
impl From<u32> for J {
    fn from(v: u32) -> Self {
        J::Num(v.into())
    }
}
impl From<u16> for J {
    fn from(v: u16) -> Self {
        J::Num(v.into())
    }
}
impl From<f64> for J {
    fn from(v: f64) -> Self {
        J::Float(v)
    }
}
impl From<&str> for J {
    fn from(v: &str) -> Self {
        J::Str(v.to_string())
    }
}
impl From<String> for J {
    fn from(v: String) -> Self {
        J::Str(v)
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(J::Null)
    }
}

/// `s` as a JSON string, quotes included. Only what JSON requires is escaped (non-ASCII is
/// written as is), so a reader sees the text the peer sent.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// [`write_str`] into a new string.
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    write_str(&mut out, s);
    out
}

/// The one line a client prints last: `{"ok":...}` then its fields in the order first set, so a
/// test can read the verdict without knowing the mode. `error` is set whenever `ok` is false.
pub struct Report {
    pub ok: bool,
    fields: Vec<(String, J)>,
}

impl Report {
    pub fn new(ok: bool) -> Self {
        Report { ok, fields: Vec::new() }
    }

    pub fn ok() -> Self {
        Report::new(true)
    }

    pub fn fail(error: impl Into<String>) -> Self {
        Report::new(false).with("error", error.into())
    }

    /// Sets a field; one set before keeps its place and takes the new value.
    pub fn with(mut self, key: &str, v: impl Into<J>) -> Self {
        self.set(key, v);
        self
    }

    pub fn set(&mut self, key: &str, v: impl Into<J>) {
        let v = v.into();
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = v,
            None => self.fields.push((key.to_string(), v)),
        }
    }

    /// Turns the report into a failure unless `cond` holds; the first failure's error is kept.
    pub fn require(mut self, cond: bool, error: impl FnOnce() -> String) -> Self {
        if self.ok && !cond {
            self.ok = false;
            self.set("error", error());
        }
        self
    }

    pub fn to_json(&self) -> String {
        self.to_json_with(FLOAT_DECIMALS)
    }

    pub fn to_json_with(&self, float_decimals: usize) -> String {
        let mut out = String::from("{\"ok\":");
        out.push_str(if self.ok { "true" } else { "false" });
        for (k, v) in &self.fields {
            out.push(',');
            write_str(&mut out, k);
            out.push(':');
            v.write(&mut out, float_decimals);
        }
        out.push('}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_what_json_requires() {
        assert_eq!(quote("a\"b\\c\n\r\t\u{1}é"), r#""a\"b\\c\n\r\t\u0001é""#);
    }

    #[test]
    fn reports_keep_field_order() {
        let report = Report::ok()
            .with("n", 3u64)
            .with("f", 1.0f64 / 3.0)
            .with("none", None::<u64>)
            .with("list", J::Arr(vec![J::from("x"), J::Float(f64::NAN)]))
            .with("obj", J::obj([("k", J::from(true))]))
            .with("n", 4u64);
        assert_eq!(report.to_json(), r#"{"ok":true,"n":4,"f":0.333,"none":null,"list":["x",null],"obj":{"k":true}}"#);
        let failed = report.require(false, || "first".into()).require(false, || "second".into());
        assert!(failed.to_json_with(4).starts_with(r#"{"ok":false,"n":4,"f":0.3333,"#));
        assert!(failed.to_json().ends_with(r#""error":"first"}"#));
        assert_eq!(Report::fail("x").to_json(), r#"{"ok":false,"error":"x"}"#);
    }
}
