//! A small JSON reader for `POST /events` bodies: one object whose values are strings or
//! arrays of strings. Anything else (numbers, nesting, trailing bytes) is refused with `400`.

use crate::http::HttpError;

/// The fields of a small JSON object whose values are strings or arrays of strings, as name/value
/// pairs (an array gives one pair per element): `{"topic": "a"}`, `{"topics": ["a", "b"]}`.
pub fn fields(body: &[u8]) -> Result<Vec<(String, String)>, HttpError> {
    const BAD_JSON: HttpError =
        HttpError::bad_request("expected a JSON object of strings or arrays of strings");
    let text = std::str::from_utf8(body).map_err(|_| BAD_JSON)?;
    let mut parser = JsonParser {
        chars: text.chars().peekable(),
    };
    let mut fields = Vec::new();
    parser.expect('{').ok_or(BAD_JSON)?;
    if parser.peek() == Some('}') {
        parser.expect('}');
    } else {
        loop {
            let name = parser.string().ok_or(BAD_JSON)?;
            parser.expect(':').ok_or(BAD_JSON)?;
            match parser.peek() {
                Some('[') => {
                    parser.expect('[');
                    if parser.peek() == Some(']') {
                        parser.expect(']');
                    } else {
                        loop {
                            fields.push((name.clone(), parser.string().ok_or(BAD_JSON)?));
                            match parser.next_token() {
                                Some(',') => continue,
                                Some(']') => break,
                                _ => return Err(BAD_JSON),
                            }
                        }
                    }
                }
                _ => fields.push((name, parser.string().ok_or(BAD_JSON)?)),
            }
            match parser.next_token() {
                Some(',') => continue,
                Some('}') => break,
                _ => return Err(BAD_JSON),
            }
        }
    }
    if parser.peek().is_some() {
        return Err(BAD_JSON);
    }
    Ok(fields)
}

struct JsonParser<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl JsonParser<'_> {
    fn skip_space(&mut self) {
        // JSON whitespace is these four (RFC 8259 section 2); `is_ascii_whitespace` would also
        // take form feed.
        while self
            .chars
            .peek()
            .is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            self.chars.next();
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.peek().copied()
    }

    fn next_token(&mut self) -> Option<char> {
        self.skip_space();
        self.chars.next()
    }

    fn expect(&mut self, c: char) -> Option<()> {
        (self.next_token()? == c).then_some(())
    }

    fn string(&mut self) -> Option<String> {
        self.expect('"')?;
        let mut out = String::new();
        loop {
            match self.chars.next()? {
                '"' => return Some(out),
                '\\' => match self.chars.next()? {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => out.push(self.escaped_char()?),
                    _ => return None,
                },
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
    }
}

impl JsonParser<'_> {
    /// The character of a `\uXXXX` escape whose `\u` has been read. A UTF-16 surrogate pair
    /// is two escapes (`"\ud83d\ude00"` is one emoji, as `JSON.stringify` and Python's
    /// `json.dumps` write it); a lone surrogate is no character and is refused.
    fn escaped_char(&mut self) -> Option<char> {
        let unit = self.hex4()?;
        if (0xdc00..0xe000).contains(&unit) {
            return None;
        }
        if !(0xd800..0xdc00).contains(&unit) {
            return char::from_u32(unit);
        }
        if self.chars.next()? != '\\' || self.chars.next()? != 'u' {
            return None;
        }
        let low = self.hex4()?;
        if !(0xdc00..0xe000).contains(&low) {
            return None;
        }
        char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
    }

    /// Exactly four hex digits (no sign, which `u32::from_str_radix` would take).
    fn hex4(&mut self) -> Option<u32> {
        let mut value = 0;
        for _ in 0..4 {
            value = value * 16 + self.chars.next()?.to_digit(16)?;
        }
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small JSON subscribe bodies decode to fields; anything else is refused.
    #[test]
    fn decodes_string_fields() {
        let decoded =
            fields(br#" {"topic": "a", "topics": ["b", "c\u00fc"], "lastEventId": "7"} "#).unwrap();
        let pairs: Vec<(&str, &str)> = decoded
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("topic", "a"),
                ("topics", "b"),
                ("topics", "cü"),
                ("lastEventId", "7")
            ]
        );
        assert!(fields(b"{}").unwrap().is_empty());
        // A UTF-16 surrogate pair, as Python's `json.dumps` escapes anything outside the BMP.
        let emoji = fields(br#"{"topic": "\ud83d\ude00\u00e9"}"#).unwrap();
        assert_eq!(emoji, [("topic".to_owned(), "\u{1f600}\u{e9}".to_owned())]);
        let spaced = fields(b" \t\r\n{ \"a\" :\n\"b\" }\r\n").unwrap();
        assert_eq!(spaced, [("a".to_owned(), "b".to_owned())]);
        for bad in [
            // Regression tests for what the subscribe_body fuzz target found: form feed is not
            // JSON whitespace, and `\u` takes exactly four hex digits, no sign.
            &b"\x0c{}"[..],
            b"{\x0c}",
            br#"{"a": "\u+0fc"}"#,
            br#"{"a": "\u00f"}"#,
            br#"{"a": "\ud83d"}"#,
            br#"{"a": "\ude00"}"#,
            br#"{"a": "\ud83d\u0041"}"#,
            br#"{"a": "\ud83dx"}"#,
            b"[]",
            b"{\"a\": 1}",
            b"{\"a\": \"b\"",
            b"{\"a\": \"b\"} x",
            b"\xff",
        ] {
            assert!(fields(bad).is_err(), "{bad:?}");
        }
    }
}
