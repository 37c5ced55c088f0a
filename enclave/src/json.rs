//! Strict RFC 8259 JSON parser for untrusted input (typed data, JWT segments).
//!
//! Strict because two parsers that disagree on the same bytes let an attacker show one thing
//! and sign another: duplicate keys, lone surrogates and lax number syntax are all rejected.
//! The parser is iterative with an explicit, depth-capped stack, so hostile nesting cannot
//! overflow the native stack, and it never preallocates from sizes found in the input.

use alloc::{string::String, vec::Vec};
use core::fmt;

/// Maximum nesting depth of arrays and objects (the outermost container is depth 1).
pub(crate) const MAX_DEPTH: usize = 64;

/// Why a document was rejected. Messages never echo input bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JsonError {
    /// The input ended before the value was complete.
    #[error("unexpected end of json input")]
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    #[error("unexpected character in json")]
    UnexpectedCharacter,
    /// A misspelt `true`, `false` or `null`.
    #[error("invalid json literal")]
    InvalidLiteral,
    /// A number outside the RFC 8259 grammar (leading zero, `+`, bare `.`, `NaN`, ...).
    #[error("invalid json number")]
    InvalidNumber,
    /// A backslash escape other than the eight defined ones or a malformed `\u` escape.
    #[error("invalid escape sequence in json string")]
    InvalidEscape,
    /// A `\u` escape encoding half of a UTF-16 surrogate pair without the other half.
    #[error("unpaired utf-16 surrogate in json string")]
    UnpairedSurrogate,
    /// A raw byte below U+0020 inside a string (it must be escaped).
    #[error("unescaped control character in json string")]
    ControlCharacter,
    /// The same key appears twice in one object, which parsers resolve differently.
    #[error("duplicate key in json object")]
    DuplicateKey,
    /// Something other than a string where an object key is required.
    #[error("expected a string key in json object")]
    ExpectedKey,
    /// An object key not followed by `:`.
    #[error("expected ':' after json object key")]
    ExpectedColon,
    /// An array element or object member not followed by `,` or the closing bracket.
    #[error("expected ',' or closing bracket in json")]
    ExpectedCommaOrClose,
    /// Non-whitespace after the top-level value.
    #[error("trailing content after json value")]
    TrailingContent,
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("json nested deeper than 64 levels")]
    TooDeep,
}

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept as its exact literal text (already validated against the RFC grammar)
    /// so that 256-bit integers never pass through a float.
    Number(String),
    /// A string with escapes decoded.
    String(String),
    /// An array, in document order.
    Array(Vec<Value>),
    /// An object with unique keys, in document order.
    Object(Object),
}

/// A JSON object: members in document order, keys guaranteed unique.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Object {
    entries: Vec<(String, Value)>,
}

impl Object {
    /// The value of `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Members in document order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of members.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no members.
    #[allow(dead_code, reason = "completes the len() pair; not every caller needs it")]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Builds an object, rejecting duplicate keys. Sorting borrowed keys keeps this
    /// O(n log n) so a huge object cannot make the check quadratic.
    fn from_entries(entries: Vec<(String, Value)>) -> Result<Self, JsonError> {
        let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(JsonError::DuplicateKey);
        }
        Ok(Self { entries })
    }
}

impl fmt::Debug for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Value {
    /// The string, if this is a JSON string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is a JSON object.
    pub(crate) fn as_object(&self) -> Option<&Object> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The elements, if this is a JSON array.
    pub(crate) fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The boolean, if this is `true` or `false`.
    pub(crate) fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The exact number literal, if this is a JSON number.
    pub(crate) fn as_number(&self) -> Option<&str> {
        match self {
            Self::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// Parses one complete JSON document (any value at top level, surrounding whitespace allowed).
pub(crate) fn parse(input: &str) -> Result<Value, JsonError> {
    Parser { src: input, pos: 0 }.document()
}

/// A container still being filled; the explicit stack replaces recursion.
enum Frame {
    Array(Vec<Value>),
    /// Members so far and the key awaiting its value.
    Object(Vec<(String, Value)>, String),
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// `src[start..self.pos]`; the boundaries are always ASCII so this cannot fail in practice.
    fn slice_from(&self, start: usize) -> Result<&str, JsonError> {
        self.src.get(start..self.pos).ok_or(JsonError::UnexpectedCharacter)
    }

    fn document(mut self) -> Result<Value, JsonError> {
        let mut stack: Vec<Frame> = Vec::new();
        'value: loop {
            self.skip_ws();
            let mut value = match self.peek() {
                None => return Err(JsonError::UnexpectedEnd),
                Some(b'[') => {
                    self.pos += 1;
                    if stack.len() >= MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    self.skip_ws();
                    if self.peek() == Some(b']') {
                        self.pos += 1;
                        Value::Array(Vec::new())
                    } else {
                        stack.push(Frame::Array(Vec::new()));
                        continue 'value;
                    }
                }
                Some(b'{') => {
                    self.pos += 1;
                    if stack.len() >= MAX_DEPTH {
                        return Err(JsonError::TooDeep);
                    }
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        Value::Object(Object::default())
                    } else {
                        let key = self.key()?;
                        stack.push(Frame::Object(Vec::new(), key));
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    Value::String(self.string_body()?)
                }
                Some(b't') => self.literal("true", Value::Bool(true))?,
                Some(b'f') => self.literal("false", Value::Bool(false))?,
                Some(b'n') => self.literal("null", Value::Null)?,
                Some(b'-' | b'0'..=b'9') => Value::Number(self.number()?),
                Some(_) => return Err(JsonError::UnexpectedCharacter),
            };
            // Attach the finished value to its parent, closing as many containers as end here.
            loop {
                let Some(frame) = stack.pop() else {
                    self.skip_ws();
                    return match self.peek() {
                        None => Ok(value),
                        Some(_) => Err(JsonError::TrailingContent),
                    };
                };
                self.skip_ws();
                match frame {
                    Frame::Array(mut items) => {
                        items.push(value);
                        match self.next_byte() {
                            Some(b',') => {
                                stack.push(Frame::Array(items));
                                continue 'value;
                            }
                            Some(b']') => value = Value::Array(items),
                            Some(_) => return Err(JsonError::ExpectedCommaOrClose),
                            None => return Err(JsonError::UnexpectedEnd),
                        }
                    }
                    Frame::Object(mut entries, key) => {
                        entries.push((key, value));
                        match self.next_byte() {
                            Some(b',') => {
                                self.skip_ws();
                                let key = self.key()?;
                                stack.push(Frame::Object(entries, key));
                                continue 'value;
                            }
                            Some(b'}') => value = Value::Object(Object::from_entries(entries)?),
                            Some(_) => return Err(JsonError::ExpectedCommaOrClose),
                            None => return Err(JsonError::UnexpectedEnd),
                        }
                    }
                }
            }
        }
    }

    /// An object key and its `:`; the caller has skipped leading whitespace.
    fn key(&mut self) -> Result<String, JsonError> {
        match self.next_byte() {
            Some(b'"') => {}
            Some(_) => return Err(JsonError::ExpectedKey),
            None => return Err(JsonError::UnexpectedEnd),
        }
        let key = self.string_body()?;
        self.skip_ws();
        match self.next_byte() {
            Some(b':') => Ok(key),
            Some(_) => Err(JsonError::ExpectedColon),
            None => Err(JsonError::UnexpectedEnd),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        let end = self.pos.saturating_add(word.len());
        if self.src.as_bytes().get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(JsonError::InvalidLiteral)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned verbatim.
    fn number(&mut self) -> Result<String, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(JsonError::InvalidNumber);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(JsonError::InvalidNumber),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(JsonError::InvalidNumber);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(JsonError::InvalidNumber);
            }
        }
        Ok(String::from(self.slice_from(start)?))
    }

    /// The rest of a string after its opening quote, escapes decoded.
    fn string_body(&mut self) -> Result<String, JsonError> {
        let mut out = String::new();
        loop {
            let start = self.pos;
            // Copy the longest run of bytes needing no attention in one go. Every byte that
            // stops the run is ASCII, so the run ends on a char boundary.
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(self.slice_from(start)?);
            match self.next_byte() {
                None => return Err(JsonError::UnexpectedEnd),
                Some(b'"') => return Ok(out),
                Some(b'\\') => out.push(self.escape()?),
                Some(_) => return Err(JsonError::ControlCharacter),
            }
        }
    }

    /// One escape after its backslash.
    fn escape(&mut self) -> Result<char, JsonError> {
        let c = match self.next_byte().ok_or(JsonError::UnexpectedEnd)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                let code = match hi {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed immediately by an escaped low one.
                        if self.next_byte() != Some(b'\\') || self.next_byte() != Some(b'u') {
                            return Err(JsonError::UnpairedSurrogate);
                        }
                        let lo = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&lo) {
                            return Err(JsonError::UnpairedSurrogate);
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(JsonError::UnpairedSurrogate),
                    _ => hi,
                };
                char::from_u32(code).ok_or(JsonError::InvalidEscape)?
            }
            _ => return Err(JsonError::InvalidEscape),
        };
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let b = self.next_byte().ok_or(JsonError::UnexpectedEnd)?;
            let d = char::from(b).to_digit(16).ok_or(JsonError::InvalidEscape)?;
            v = (v << 4) | d;
        }
        Ok(v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use alloc::{format, string::ToString, vec};

    fn num(s: &str) -> Value {
        Value::Number(s.to_string())
    }

    fn s(v: &str) -> Value {
        Value::String(v.to_string())
    }

    #[test]
    fn scalars() {
        assert_eq!(parse("null"), Ok(Value::Null));
        assert_eq!(parse(" true "), Ok(Value::Bool(true)));
        assert_eq!(parse("\tfalse\r\n"), Ok(Value::Bool(false)));
        assert_eq!(parse("\"hi\""), Ok(s("hi")));
        assert_eq!(parse("0"), Ok(num("0")));
        assert_eq!(parse("-0"), Ok(num("-0")));
        assert_eq!(parse("-12.5e+3"), Ok(num("-12.5e+3")));
        assert_eq!(parse("1E-7"), Ok(num("1E-7")));
        assert_eq!(parse("0.25"), Ok(num("0.25")));
    }

    #[test]
    fn big_numbers_keep_their_text() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        let v = parse(max).unwrap();
        assert_eq!(v.as_number(), Some(max));
        let v = parse(&format!("[{max}]")).unwrap();
        assert_eq!(v.as_array().unwrap()[0].as_number(), Some(max));
    }

    #[test]
    fn containers_and_accessors() {
        let v = parse(r#" { "a" : [1, "x", null, {"b": false}], "c": {} , "d": [] } "#).unwrap();
        let o = v.as_object().unwrap();
        assert_eq!(o.len(), 3);
        assert!(!o.is_empty());
        let keys: Vec<&str> = o.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        let a = o.get("a").unwrap().as_array().unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[0].as_number(), Some("1"));
        assert_eq!(a[1].as_str(), Some("x"));
        assert_eq!(a[2], Value::Null);
        assert_eq!(a[3].as_object().unwrap().get("b").unwrap().as_bool(), Some(false));
        assert!(o.get("c").unwrap().as_object().unwrap().is_empty());
        assert_eq!(o.get("d").unwrap().as_array(), Some(&[][..]));
        assert!(o.get("zz").is_none());
        assert_eq!(a[0].as_str(), None);
        assert_eq!(a[1].as_number(), None);
        assert_eq!(a[1].as_bool(), None);
        assert!(a[1].as_object().is_none());
        assert!(a[1].as_array().is_none());
    }

    #[test]
    fn nested_arrays_close_in_order() {
        let v = parse("[[[1],[2,[3]]],4]").unwrap();
        let outer = v.as_array().unwrap();
        assert_eq!(outer.len(), 2);
        assert_eq!(outer[1], num("4"));
        let inner = outer[0].as_array().unwrap();
        assert_eq!(inner[0], Value::Array(vec![num("1")]));
        assert_eq!(inner[1], Value::Array(vec![num("2"), Value::Array(vec![num("3")])]));
    }

    #[test]
    fn escapes() {
        assert_eq!(parse(r#""a\"b\\c\/d\be\ff\ng\rh\ti""#), Ok(s("a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti")));
        assert_eq!(parse(r#""\u00e9\u4E2D""#), Ok(s("é中")));
        assert_eq!(parse(r#""\ud83d\ude00""#), Ok(s("😀")));
        assert_eq!(parse(r#""\u0000""#), Ok(s("\0")));
        assert_eq!(parse("\"é中😀\""), Ok(s("é中😀")));
        assert_eq!(parse(r#""\u007f""#), Ok(s("\u{7f}")));
        assert_eq!(parse("\"\u{7f}\""), Ok(s("\u{7f}")));
    }

    #[test]
    fn bad_escapes_and_surrogates() {
        assert_eq!(parse(r#""\x""#), Err(JsonError::InvalidEscape));
        assert_eq!(parse(r#""\'""#), Err(JsonError::InvalidEscape));
        assert_eq!(parse(r#""\u12""#), Err(JsonError::InvalidEscape));
        assert_eq!(parse(r#""\u12g4""#), Err(JsonError::InvalidEscape));
        assert_eq!(parse(r#""\U00e9""#), Err(JsonError::InvalidEscape));
        assert_eq!(parse(r#""\ud83d""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse(r#""\ud83dx""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse(r#""\ud83d\n""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse(r#""\ud83d\ud83d""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse(r#""\ude00""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse(r#""\ude00\ud83d""#), Err(JsonError::UnpairedSurrogate));
        assert_eq!(parse("\"\\"), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("\"\\u00"), Err(JsonError::UnexpectedEnd));
    }

    #[test]
    fn control_characters() {
        assert_eq!(parse("\"a\nb\""), Err(JsonError::ControlCharacter));
        assert_eq!(parse("\"a\tb\""), Err(JsonError::ControlCharacter));
        assert_eq!(parse("\"\u{0}\""), Err(JsonError::ControlCharacter));
        assert_eq!(parse("\"\u{1f}\""), Err(JsonError::ControlCharacter));
    }

    #[test]
    fn bad_numbers() {
        for bad in [
            "01",
            "-01",
            "00",
            "+1",
            "-",
            "1.",
            ".5",
            "1.e5",
            "1e",
            "1e+",
            "-e5",
            "NaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "0x10",
            "1_000",
            "--1",
        ] {
            let r = parse(bad);
            assert!(
                matches!(
                    r,
                    Err(JsonError::InvalidNumber | JsonError::UnexpectedCharacter | JsonError::TrailingContent)
                ),
                "{bad}: {r:?}"
            );
        }
        assert_eq!(parse("01"), Err(JsonError::InvalidNumber));
        assert_eq!(parse("+1"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("1."), Err(JsonError::InvalidNumber));
        assert_eq!(parse("[1.]"), Err(JsonError::InvalidNumber));
        assert_eq!(parse("0x10"), Err(JsonError::TrailingContent));
    }

    #[test]
    fn bad_literals() {
        assert_eq!(parse("tru"), Err(JsonError::InvalidLiteral));
        assert_eq!(parse("True"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("nul"), Err(JsonError::InvalidLiteral));
        assert_eq!(parse("falsey"), Err(JsonError::TrailingContent));
        assert_eq!(parse("[nulll]"), Err(JsonError::ExpectedCommaOrClose));
    }

    #[test]
    fn structure_errors() {
        assert_eq!(parse(""), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("   "), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("["), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("[1"), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("[1,"), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("[1,]"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("[,1]"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("[1 2]"), Err(JsonError::ExpectedCommaOrClose));
        assert_eq!(parse("[1}"), Err(JsonError::ExpectedCommaOrClose));
        assert_eq!(parse("{"), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("{\"a\""), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("{\"a\" 1}"), Err(JsonError::ExpectedColon));
        assert_eq!(parse("{\"a\":}"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("{\"a\":1,}"), Err(JsonError::ExpectedKey));
        assert_eq!(parse("{a:1}"), Err(JsonError::ExpectedKey));
        assert_eq!(parse("{1:1}"), Err(JsonError::ExpectedKey));
        assert_eq!(parse("{\"a\":1]"), Err(JsonError::ExpectedCommaOrClose));
        assert_eq!(parse("{\"a\":1 \"b\":2}"), Err(JsonError::ExpectedCommaOrClose));
        assert_eq!(parse("\"abc"), Err(JsonError::UnexpectedEnd));
        assert_eq!(parse("]"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("'a'"), Err(JsonError::UnexpectedCharacter));
    }

    #[test]
    fn trailing_content() {
        assert_eq!(parse("{} {}"), Err(JsonError::TrailingContent));
        assert_eq!(parse("1 2"), Err(JsonError::TrailingContent));
        assert_eq!(parse("[]]"), Err(JsonError::TrailingContent));
        assert_eq!(parse("null\0"), Err(JsonError::TrailingContent));
        // Only the four RFC whitespace bytes are skipped; a BOM or NBSP is content.
        assert_eq!(parse("\u{feff}1"), Err(JsonError::UnexpectedCharacter));
        assert_eq!(parse("1\u{a0}"), Err(JsonError::TrailingContent));
        assert_eq!(parse(" \n[ ]\t\r\n "), Ok(Value::Array(Vec::new())));
    }

    #[test]
    fn duplicate_keys() {
        assert_eq!(parse(r#"{"a":1,"a":1}"#), Err(JsonError::DuplicateKey));
        assert_eq!(parse(r#"{"a":1,"b":2,"a":3}"#), Err(JsonError::DuplicateKey));
        // Escapes are decoded before comparison: "\u0061" is "a".
        assert_eq!(parse(r#"{"a":1,"\u0061":2}"#), Err(JsonError::DuplicateKey));
        assert_eq!(parse(r#"[{"x":{"a":1,"a":2}}]"#), Err(JsonError::DuplicateKey));
        // Same key in different objects is fine.
        assert!(parse(r#"{"a":{"a":1},"b":{"a":2}}"#).is_ok());
        // Keys differing only by case are different keys.
        assert!(parse(r#"{"a":1,"A":2}"#).is_ok());
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let too_deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&too_deep), Err(JsonError::TooDeep));
        let objs = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(parse(&objs).is_ok());
        let objs = format!("{}1{}", "{\"a\":".repeat(MAX_DEPTH + 1), "}".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&objs), Err(JsonError::TooDeep));
        // An empty container at the limit counts too.
        let empty = format!("{}{{}}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(parse(&empty), Err(JsonError::TooDeep));
    }

    #[test]
    fn hostile_nesting_does_not_overflow() {
        assert_eq!(parse(&"[".repeat(100_000)), Err(JsonError::TooDeep));
        assert_eq!(parse(&"{\"a\":".repeat(100_000)), Err(JsonError::TooDeep));
        let mixed = "[{\"k\":".repeat(50_000);
        assert_eq!(parse(&mixed), Err(JsonError::TooDeep));
    }

    #[test]
    fn wide_input_is_fine() {
        let many = format!("[{}0]", "0,".repeat(100_000));
        assert_eq!(parse(&many).unwrap().as_array().unwrap().len(), 100_001);
        let mut obj = String::from("{");
        for i in 0..20_000 {
            obj.push_str(&format!("\"k{i}\":{i},"));
        }
        obj.push_str("\"k0\":0}");
        assert_eq!(parse(&obj), Err(JsonError::DuplicateKey));
    }

    #[test]
    fn debug_is_readable() {
        let v = parse(r#"{"a":[1,"x",true,null]}"#).unwrap();
        assert_eq!(format!("{v:?}"), r#"Object({"a": Array([Number("1"), String("x"), Bool(true), Null])})"#);
    }

    #[test]
    fn error_messages_are_lowercase_and_short() {
        for e in [
            JsonError::UnexpectedEnd,
            JsonError::UnexpectedCharacter,
            JsonError::InvalidLiteral,
            JsonError::InvalidNumber,
            JsonError::InvalidEscape,
            JsonError::UnpairedSurrogate,
            JsonError::ControlCharacter,
            JsonError::DuplicateKey,
            JsonError::ExpectedKey,
            JsonError::ExpectedColon,
            JsonError::ExpectedCommaOrClose,
            JsonError::TrailingContent,
            JsonError::TooDeep,
        ] {
            let m = e.to_string();
            assert!(m.len() < 64 && m == m.to_lowercase(), "{m}");
        }
    }
}
