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
        while self.chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
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
                    'u' => {
                        let code: String = (0..4).filter_map(|_| self.chars.next()).collect();
                        out.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                    }
                    _ => return None,
                },
                c if (c as u32) < 0x20 => return None,
                c => out.push(c),
            }
        }
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
        for bad in [
            &b"[]"[..],
            b"{\"a\": 1}",
            b"{\"a\": \"b\"",
            b"{\"a\": \"b\"} x",
            b"\xff",
        ] {
            assert!(fields(bad).is_err(), "{bad:?}");
        }
    }
}
