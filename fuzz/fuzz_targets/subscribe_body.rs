//! The subscribe body parsers never panic, and agree with references:
//! - `http::form::parse_pairs` decodes as the WHATWG `application/x-www-form-urlencoded` parser
//!   (`form_urlencoded`, from the `url` project) does whenever it accepts, and refuses only input
//!   whose decoded bytes are not UTF-8; pairs it encodes back decode to themselves.
//! - `http::json::fields` accepts exactly the JSON texts (`serde_json`) that are one object of
//!   strings or arrays of strings, with the same names and values in the same order.
//!
//! Control byte 0 chooses the parser (even: form, odd: JSON).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use sse_fuzz::Input;
use sse_server::http::{form, json};

fuzz_target!(|data: &[u8]| {
    let input = Input::split(data);
    if input.choice(0) & 1 == 0 {
        check_form(input.payload);
    } else {
        check_json(input.payload);
    }
});

fn check_form(body: &[u8]) {
    let reference: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    match form::parse_pairs(body) {
        Ok(pairs) => {
            assert_eq!(pairs, reference);
            let encoded = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            assert_eq!(form::parse_pairs(encoded.as_bytes()).unwrap(), pairs);
        }
        Err(error) => {
            assert_eq!(error.status, 400);
            // Only undecodable bytes are refused: the lossy reference had to replace some.
            assert!(
                reference
                    .iter()
                    .any(|(n, v)| n.contains('\u{fffd}') || v.contains('\u{fffd}')),
                "refused a form whose bytes decode: {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}

/// A JSON object's members in order, repeated names included (`serde_json::Map` keeps only the
/// last of them).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The fields of a JSON text if it is one object of strings or arrays of strings, in order.
fn reference_fields(body: &[u8]) -> Option<Vec<(String, String)>> {
    let Members(members) = serde_json::from_slice::<Members>(body).ok()?;
    let mut fields = Vec::new();
    for (name, value) in members {
        match value {
            Value::String(s) => fields.push((name, s)),
            Value::Array(items) => {
                for item in items {
                    let Value::String(s) = item else { return None };
                    fields.push((name.clone(), s));
                }
            }
            _ => return None,
        }
    }
    Some(fields)
}

fn check_json(body: &[u8]) {
    let reference = reference_fields(body);
    match (json::fields(body), reference) {
        (Ok(fields), Some(expected)) => assert_eq!(fields, expected),
        (Err(error), None) => assert_eq!(error.status, 400),
        (Ok(fields), None) => panic!(
            "accepted what is not a JSON object of strings: {:?} -> {fields:?}",
            String::from_utf8_lossy(body)
        ),
        (Err(_), Some(expected)) => panic!(
            "refused a JSON object of strings: {:?} (fields {expected:?})",
            String::from_utf8_lossy(body)
        ),
    }
}
