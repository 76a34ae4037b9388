//! `application/x-www-form-urlencoded` decoding, for query strings and form bodies, as the WHATWG
//! URL standard describes it: `&`-separated pairs, `+` is a space, `%XX` is a byte, and a `%` not
//! followed by two hex digits stays as it is.

use super::HttpError;

/// Decodes form pairs. The decoded bytes must be UTF-8 (`400` otherwise).
pub fn parse_pairs(input: &[u8]) -> Result<Vec<(String, String)>, HttpError> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// Every value of field `name`, in order.
pub fn values<'a>(pairs: &'a [(String, String)], name: &'a str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn decode(input: &[u8]) -> Result<String, HttpError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < input.len()
                && hex(input[i + 1]).is_some()
                && hex(input[i + 2]).is_some() =>
            {
                out.push(hex(input[i + 1]).unwrap_or(0) << 4 | hex(input[i + 2]).unwrap_or(0));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| HttpError::bad_request("form data is not valid UTF-8"))
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each case: the encoded form and the pairs it decodes to.
    #[test]
    fn decodes_pairs() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("topic=a&topic=b", &[("topic", "a"), ("topic", "b")]),
            ("data=hello+world%21", &[("data", "hello world!")]),
            ("data=a%0Ab%0D%0Ac", &[("data", "a\nb\r\nc")]),
            ("flag&x=", &[("flag", ""), ("x", "")]),
            ("a=%zz%4", &[("a", "%zz%4")]),
            ("a=%C3%BC", &[("a", "ü")]),
            ("&&a=1&", &[("a", "1")]),
            ("a=b=c", &[("a", "b=c")]),
        ];
        for &(input, expected) in cases {
            let pairs = parse_pairs(input.as_bytes()).unwrap();
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            assert_eq!(pairs, expected, "{input:?}");
        }
    }

    /// Percent-encoded bytes that are not UTF-8 are refused.
    #[test]
    fn refuses_invalid_utf8() {
        assert_eq!(parse_pairs(b"data=%FF").unwrap_err().status, 400);
    }
}
