//! Reading a JSON object's top-level members exactly as received: each value's raw text (so a
//! number is never rounded through a float) and every name, including one given twice (which
//! different parsers resolve differently, so it is refused rather than guessed).

use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The members of one JSON object, in the order received, values as their raw JSON text.
#[derive(Debug)]
pub struct RawObject<'a> {
    members: Vec<(String, &'a RawValue)>,
}

/// Why a body is not one JSON object with distinct member names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// A member name appears more than once (the name, at most 64 characters).
    #[error("a field appears more than once")]
    Duplicate(String),
}

impl<'a> RawObject<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ObjectError> {
        let mut deserializer = serde_json::Deserializer::from_slice(body);
        let members = deserializer
            .deserialize_map(MembersVisitor)
            .map_err(|_| ObjectError::NotAnObject)?;
        deserializer.end().map_err(|_| ObjectError::NotAnObject)?;
        let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ObjectError::Duplicate(pair[0].chars().take(64).collect()));
        }
        Ok(Self { members })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.members
            .iter()
            .map(|(name, value)| (name.as_str(), *value))
    }

    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| *value)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Vec<(String, &'de RawValue)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value: &RawValue = map.next_value()?;
            members.push((name, value));
        }
        Ok(members)
    }
}

/// A member's value as the one reading both the signature rule and Vexora's answers use: a
/// string unescaped, a number or boolean in its textual form as received (`1500.00` stays
/// `1500.00`), `null`, or an object or array (nested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scalar {
    Text(String),
    Null,
    Nested,
}

/// The [`Scalar`] a member's raw text stands for; `None` for a string that cannot be
/// unescaped.
pub fn scalar(value: &RawValue) -> Option<Scalar> {
    let text = value.get();
    match text.as_bytes().first() {
        Some(b'"') => as_string(value).map(Scalar::Text),
        Some(b'{') | Some(b'[') => Some(Scalar::Nested),
        _ if text == "null" => Some(Scalar::Null),
        _ => Some(Scalar::Text(text.to_owned())),
    }
}

/// A raw JSON value's text as a string when it is a JSON string; `None` for any other type.
pub fn as_string(value: &RawValue) -> Option<String> {
    match value.get().as_bytes().first() {
        Some(b'"') => serde_json::from_str(value.get()).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_raw_text() {
        let object =
            RawObject::parse(br#" {"a": 1500.00, "b": "x\u0041", "c": null, "d": 1e2} "#).unwrap();
        let raw: Vec<(&str, &str)> = object.iter().map(|(k, v)| (k, v.get())).collect();
        assert_eq!(
            raw,
            [
                ("a", "1500.00"),
                ("b", r#""x\u0041""#),
                ("c", "null"),
                ("d", "1e2")
            ]
        );
        assert_eq!(as_string(object.get("b").unwrap()).as_deref(), Some("xA"));
        assert_eq!(as_string(object.get("a").unwrap()), None);
        let read = |name| scalar(object.get(name).unwrap());
        assert_eq!(read("a"), Some(Scalar::Text("1500.00".into())));
        assert_eq!(read("b"), Some(Scalar::Text("xA".into())));
        assert_eq!(read("c"), Some(Scalar::Null));
        assert_eq!(read("d"), Some(Scalar::Text("1e2".into())));
    }

    #[test]
    fn duplicates_and_non_objects_are_refused() {
        let cases: &[(&[u8], ObjectError)] = &[
            (br#"{"a":1,"a":2}"#, ObjectError::Duplicate("a".into())),
            (br#"{"a":1,"\u0061":2}"#, ObjectError::Duplicate("a".into())),
            (b"[1]", ObjectError::NotAnObject),
            (b"{} {}", ObjectError::NotAnObject),
            (b"", ObjectError::NotAnObject),
            (b"\xff", ObjectError::NotAnObject),
        ];
        for (body, expected) in cases {
            assert_eq!(
                RawObject::parse(body).unwrap_err(),
                *expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
