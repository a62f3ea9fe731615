//! The one-pass reader of a JSON hub record: [`JsonRecordView`].
//!
//! Hand-written on purpose, because it is measurably faster than the serde
//! path it sits in front of (`cargo bench -p hub-runtime --bench codecs`,
//! group `decode-record`: an echo Invocation of 32 B is read in about a
//! third of the time and with no allocation, against serde_json's
//! `Deserialize` of the envelope plus the separate UTF-8 and depth passes).
//! One scan over the record finds every field of the envelope, validates
//! the JSON grammar of everything it skips (arguments, items, results,
//! unknown keys), checks UTF-8 inside strings (the only place JSON allows
//! anything but ASCII) and the nesting depth, and keeps raw values as
//! slices of the record.
//!
//! It only ever *accepts*: anything unusual (an escape in a key or in a
//! string field, a field of the wrong JSON type, a duplicate key, a
//! fractional or negative `type`, malformed JSON, too deep a nesting) makes
//! it give up, and the record goes to the serde path, which then produces
//! exactly the error (or the message) it always did. So the one promise
//! this module must keep is: whenever it accepts a record, the serde path
//! reads the same message from it. `json::fuzz_decode` and the
//! differential tests in `tests/protocol_json.rs` check that promise.

/// The deepest nesting of arrays and objects accepted in one record, the
/// envelope object included.
///
/// System.Text.Json, which the .NET server reads with, refuses anything
/// deeper than 64 by default, so no interoperable peer sends more. The limit
/// is checked before parsing because serde_json skips raw values
/// (arguments, items, results) without a depth limit of its own.
pub const MAX_DEPTH: usize = 64;

/// How many arguments a view holds without allocating.
const INLINE_ARGUMENTS: usize = 8;

/// A key of the envelope that has a value, or `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar<T> {
    Value(T),
    Null,
}

/// The fields of one JSON hub record, found in one pass and borrowed from
/// it: the common messages (Invocation, StreamInvocation, StreamItem,
/// Completion, CancelInvocation, Ping, Close, Ack, Sequence) without
/// building intermediate values.
///
/// [`JsonRecordView::scan`] returns `None` for a record it leaves to the
/// full decoder ([`super::json::JsonDecoder`]), which reads every valid
/// record and words every error; whenever it returns a view, the full
/// decoder reads the same message from the record.
///
/// ```
/// use hub_runtime::protocol::json::JsonRecordView;
///
/// let record = br#"{"type":1,"invocationId":"7","target":"Echo","arguments":["hi",{"a":[1]}]}"#;
/// let view = JsonRecordView::scan(record).unwrap();
/// assert_eq!(view.message_type(), Some(1));
/// assert_eq!(view.target(), Some("Echo"));
/// assert_eq!(view.invocation_id(), Some("7"));
/// let arguments: Vec<&str> = view.arguments().collect();
/// assert_eq!(arguments, ["\"hi\"", "{\"a\":[1]}"]);
/// ```
#[derive(Debug, Clone)]
pub struct JsonRecordView<'a> {
    pub(crate) kind: Option<Scalar<i32>>,
    pub(crate) invocation_id: Option<Scalar<&'a str>>,
    pub(crate) target: Option<Scalar<&'a str>>,
    /// Whether `arguments` is present (`Some(false)`: present and `null`).
    pub(crate) has_arguments: Option<bool>,
    inline: [&'a str; INLINE_ARGUMENTS],
    inline_len: usize,
    /// Arguments past the inline ones (allocated only for long lists).
    overflow: Vec<&'a str>,
    pub(crate) stream_ids: Option<Scalar<Vec<&'a str>>>,
    pub(crate) headers: Option<Scalar<Vec<(&'a str, &'a str)>>>,
    pub(crate) item: Option<&'a str>,
    pub(crate) result: Option<&'a str>,
    pub(crate) error: Option<Scalar<&'a str>>,
    pub(crate) allow_reconnect: Option<Scalar<bool>>,
    pub(crate) sequence_id: Option<Scalar<u64>>,
}

impl<'a> JsonRecordView<'a> {
    /// Reads `record` (one record, without its separator) in one pass;
    /// `None` when the record is not one the fast path reads (the full
    /// decoder then reads it, or says what is wrong with it).
    pub fn scan(record: &'a [u8]) -> Option<Self> {
        let mut view = JsonRecordView {
            kind: None,
            invocation_id: None,
            target: None,
            has_arguments: None,
            inline: [""; INLINE_ARGUMENTS],
            inline_len: 0,
            overflow: Vec::new(),
            stream_ids: None,
            headers: None,
            item: None,
            result: None,
            error: None,
            allow_reconnect: None,
            sequence_id: None,
        };
        let mut cursor = Cursor {
            bytes: record,
            pos: 0,
        };
        cursor.whitespace();
        cursor.expect(b'{')?;
        cursor.whitespace();
        let mut seen = 0u16;
        if !cursor.eat(b'}') {
            loop {
                cursor.expect(b'"')?;
                let key = cursor.plain_string()?;
                cursor.whitespace();
                cursor.expect(b':')?;
                cursor.whitespace();
                let bit = match key {
                    "type" => 1,
                    "invocationId" => 1 << 1,
                    "target" => 1 << 2,
                    "arguments" => 1 << 3,
                    "streamIds" => 1 << 4,
                    "headers" => 1 << 5,
                    "item" => 1 << 6,
                    "result" => 1 << 7,
                    "error" => 1 << 8,
                    "allowReconnect" => 1 << 9,
                    "sequenceId" => 1 << 10,
                    _ => 0,
                };
                // serde refuses a duplicate field with its own error text.
                if seen & bit != 0 {
                    return None;
                }
                seen |= bit;
                match key {
                    "type" => {
                        view.kind = Some(match cursor.nullable_u64()? {
                            // serde sees an integer beyond i32 as the wrong
                            // type; its error text comes from the slow path.
                            Scalar::Value(kind) => Scalar::Value(i32::try_from(kind).ok()?),
                            Scalar::Null => Scalar::Null,
                        })
                    }
                    "invocationId" => view.invocation_id = Some(cursor.nullable_string()?),
                    "target" => view.target = Some(cursor.nullable_string()?),
                    "arguments" => view.scan_arguments(&mut cursor)?,
                    "streamIds" => view.stream_ids = Some(cursor.string_array()?),
                    "headers" => view.headers = Some(cursor.string_map()?),
                    "item" => view.item = Some(cursor.raw_value(1)?),
                    "result" => view.result = Some(cursor.raw_value(1)?),
                    "error" => view.error = Some(cursor.nullable_string()?),
                    "allowReconnect" => view.allow_reconnect = Some(cursor.nullable_bool()?),
                    "sequenceId" => view.sequence_id = Some(cursor.nullable_u64()?),
                    _ => {
                        cursor.raw_value(1)?;
                    }
                }
                cursor.whitespace();
                match cursor.next()? {
                    b',' => cursor.whitespace(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        cursor.whitespace();
        // Anything after the object is trailing garbage to serde.
        (cursor.pos == record.len()).then_some(view)
    }

    fn scan_arguments(&mut self, cursor: &mut Cursor<'a>) -> Option<()> {
        if cursor.eat_literal(b"null") {
            self.has_arguments = Some(false);
            return Some(());
        }
        cursor.expect(b'[')?;
        self.has_arguments = Some(true);
        cursor.whitespace();
        if cursor.eat(b']') {
            return Some(());
        }
        loop {
            // The envelope and the arguments array enclose each argument.
            let argument = cursor.raw_value(2)?;
            if self.inline_len < INLINE_ARGUMENTS {
                self.inline[self.inline_len] = argument;
                self.inline_len += 1;
            } else {
                self.overflow.push(argument);
            }
            cursor.whitespace();
            match cursor.next()? {
                b',' => cursor.whitespace(),
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The numeric `type`, when the record has one.
    pub fn message_type(&self) -> Option<i32> {
        match self.kind {
            Some(Scalar::Value(kind)) => Some(kind),
            _ => None,
        }
    }

    /// `target`, when it is a string.
    pub fn target(&self) -> Option<&'a str> {
        match self.target {
            Some(Scalar::Value(target)) => Some(target),
            _ => None,
        }
    }

    /// `invocationId`, when it is a string.
    pub fn invocation_id(&self) -> Option<&'a str> {
        match self.invocation_id {
            Some(Scalar::Value(id)) => Some(id),
            _ => None,
        }
    }

    /// The text of each element of `arguments`, in order, exactly as it
    /// appears in the record (empty when there is no `arguments` array).
    pub fn arguments(&self) -> impl ExactSizeIterator<Item = &'a str> + '_ {
        self.inline[..self.inline_len]
            .iter()
            .chain(self.overflow.iter())
            .copied()
            .collect_exact(self.inline_len + self.overflow.len())
    }
}

/// An iterator that knows its length (`Chain` does not implement
/// `ExactSizeIterator`).
struct Exact<I> {
    inner: I,
    left: usize,
}

trait CollectExact: Iterator + Sized {
    fn collect_exact(self, len: usize) -> Exact<Self> {
        Exact {
            inner: self,
            left: len,
        }
    }
}

impl<I: Iterator> CollectExact for I {}

impl<I: Iterator> Iterator for Exact<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.inner.next()?;
        self.left -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Exact<I> {}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// JSON's whitespace (serde_json's too): space, tab, LF, CR.
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.bytes.get(self.pos) == Some(&b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        self.eat(b).then_some(())
    }

    fn eat_literal(&mut self, literal: &[u8]) -> bool {
        if self.bytes[self.pos..].starts_with(literal) {
            self.pos += literal.len();
            true
        } else {
            false
        }
    }

    /// The bytes of a string whose opening quote was read, and whether it
    /// had escapes (then they are not the string's value). Validates
    /// escapes and refuses raw control characters; UTF-8 is the caller's
    /// to check (non-ASCII bytes are legal only inside strings, so one
    /// check over a whole value's text covers every string in it).
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.pos;
        let mut escaped = false;
        loop {
            // memchr finds the end (or an escape) a word at a time; the
            // control-character check folds without branches, so it
            // vectorizes: a long string costs two quick passes, not one
            // slow byte-by-byte walk.
            let rest = &self.bytes[self.pos..];
            let stop = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[..stop]
                .iter()
                .fold(false, |control, &b| control | (b < 0x20))
            {
                return None;
            }
            self.pos += stop + 1;
            if rest[stop] == b'"' {
                break;
            }
            escaped = true;
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => self.unicode_escape()?,
                _ => return None,
            }
        }
        Some((&self.bytes[start..self.pos - 1], escaped))
    }

    /// `\uXXXX` after the `\u`; a surrogate must be a whole pair (stricter
    /// than what serde_json skips, which is allowed: the slow path decides).
    fn unicode_escape(&mut self) -> Option<()> {
        let unit = self.hex4()?;
        if (0xD800..0xDC00).contains(&unit) {
            if !self.eat_literal(b"\\u") {
                return None;
            }
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return None;
            }
        } else if (0xDC00..0xE000).contains(&unit) {
            return None;
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut value = 0u32;
        for &d in digits {
            value = value * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(value)
    }

    /// A string without escapes, its opening quote read.
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            (text, false) => std::str::from_utf8(text).ok(),
            (_, true) => None,
        }
    }

    fn nullable_string(&mut self) -> Option<Scalar<&'a str>> {
        if self.eat_literal(b"null") {
            return Some(Scalar::Null);
        }
        self.expect(b'"')?;
        self.plain_string().map(Scalar::Value)
    }

    fn nullable_bool(&mut self) -> Option<Scalar<bool>> {
        if self.eat_literal(b"null") {
            Some(Scalar::Null)
        } else if self.eat_literal(b"true") {
            Some(Scalar::Value(true))
        } else if self.eat_literal(b"false") {
            Some(Scalar::Value(false))
        } else {
            None
        }
    }

    /// A non-negative integer without fraction or exponent that fits a
    /// `u64`; anything else is left to the slow path.
    fn nullable_u64(&mut self) -> Option<Scalar<u64>> {
        if self.eat_literal(b"null") {
            return Some(Scalar::Null);
        }
        let start = self.pos;
        let mut value = 0u64;
        while let Some(&d @ b'0'..=b'9') = self.bytes.get(self.pos) {
            value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.bytes[start] == b'0') {
            return None;
        }
        match self.bytes.get(self.pos) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(Scalar::Value(value)),
        }
    }

    /// `streamIds`: an array of strings without escapes, or `null`.
    fn string_array(&mut self) -> Option<Scalar<Vec<&'a str>>> {
        if self.eat_literal(b"null") {
            return Some(Scalar::Null);
        }
        self.expect(b'[')?;
        let mut ids = Vec::new();
        self.whitespace();
        if self.eat(b']') {
            return Some(Scalar::Value(ids));
        }
        loop {
            self.expect(b'"')?;
            ids.push(self.plain_string()?);
            self.whitespace();
            match self.next()? {
                b',' => self.whitespace(),
                b']' => return Some(Scalar::Value(ids)),
                _ => return None,
            }
        }
    }

    /// `headers`: an object of strings without escapes, or `null`.
    fn string_map(&mut self) -> Option<Scalar<Vec<(&'a str, &'a str)>>> {
        if self.eat_literal(b"null") {
            return Some(Scalar::Null);
        }
        self.expect(b'{')?;
        let mut headers = Vec::new();
        self.whitespace();
        if self.eat(b'}') {
            return Some(Scalar::Value(headers));
        }
        loop {
            self.expect(b'"')?;
            let name = self.plain_string()?;
            self.whitespace();
            self.expect(b':')?;
            self.whitespace();
            self.expect(b'"')?;
            headers.push((name, self.plain_string()?));
            self.whitespace();
            match self.next()? {
                b',' => self.whitespace(),
                b'}' => return Some(Scalar::Value(headers)),
                _ => return None,
            }
        }
    }

    /// A number per the JSON grammar:
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.some_digits()?;
        }
        // serde_json refuses a digit right after a leading zero.
        match self.bytes.get(self.pos) {
            Some(b'0'..=b'9') => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// Skips one JSON value, validating it, and returns its text. `depth`
    /// containers (the envelope included) enclose it; the value may nest
    /// [`MAX_DEPTH`] minus that many levels more. Not recursive: one bit
    /// per open container says whether it is an object.
    fn raw_value(&mut self, depth: usize) -> Option<&'a str> {
        const _: () = assert!(MAX_DEPTH <= 64, "one bit per level in a u64");
        let start = self.pos;
        let mut objects = 0u64;
        let mut level = 0usize;
        'value: loop {
            // A value starts here.
            match self.next()? {
                b'"' => {
                    self.string()?;
                }
                open @ (b'{' | b'[') => {
                    level += 1;
                    if depth + level > MAX_DEPTH {
                        return None;
                    }
                    let object = open == b'{';
                    let bit = 1u64 << (level - 1);
                    if object {
                        objects |= bit;
                    } else {
                        objects &= !bit;
                    }
                    self.whitespace();
                    if object && self.eat(b'}') || !object && self.eat(b']') {
                        level -= 1;
                    } else {
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                b'-' | b'0'..=b'9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                _ => return None,
            }
            // A value ended: close containers until one goes on.
            loop {
                if level == 0 {
                    let text = &self.bytes[start..self.pos];
                    // The grammar is ASCII: this checks the strings' UTF-8.
                    return std::str::from_utf8(text).ok();
                }
                let object = objects & (1u64 << (level - 1)) != 0;
                self.whitespace();
                match self.next()? {
                    b',' => {
                        self.whitespace();
                        if object {
                            self.key()?;
                        }
                        continue 'value;
                    }
                    b'}' if object => level -= 1,
                    b']' if !object => level -= 1,
                    _ => return None,
                }
            }
        }
    }

    /// `"key":` and the whitespace around the colon and after it.
    fn key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string()?;
        self.whitespace();
        self.expect(b':')?;
        self.whitespace();
        Some(())
    }

    fn literal(&mut self, rest: &[u8]) -> Option<()> {
        self.eat_literal(rest).then_some(())
    }
}
