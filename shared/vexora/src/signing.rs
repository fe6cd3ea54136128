//! Vexora's MD5 signature rule (`docs/vexora-api.md` §2): sign outgoing bodies, verify incoming
//! ones.
//! Verification is constant-time and fails closed.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use payout_domain::json::{self, ObjectError, RawObject};

/// The name of the field that carries the signature; it is never part of what is signed.
pub const SIGN_FIELD: &str = "sign";

/// The string Vexora hashes: non-empty fields except `sign`, sorted by name in byte order,
/// `name=value` pairs concatenated with no separator. The secret is appended by [`sign`].
pub fn canonical_string<'a, I>(fields: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let sorted: BTreeMap<&str, &str> = fields
        .into_iter()
        .filter(|(name, value)| *name != SIGN_FIELD && !value.is_empty())
        .collect();
    let mut out = String::with_capacity(sorted.iter().map(|(k, v)| k.len() + v.len() + 1).sum());
    for (name, value) in sorted {
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Lowercase hex MD5 of the canonical string followed by the app secret.
pub fn sign<'a, I>(fields: I, secret: &SecretString) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    hex::encode(digest(fields, secret))
}

fn digest<'a, I>(fields: I, secret: &SecretString) -> [u8; 16]
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut hasher = Md5::new();
    hasher.update(canonical_string(fields).as_bytes());
    hasher.update(secret.expose_secret().as_bytes());
    hasher.finalize().into()
}

/// True only when `received` is the signature of `fields` under `secret`.
///
/// Fails closed: a missing or empty signature, an empty secret, or a signature that is not
/// 32 hex digits is a rejection. The digests are compared in constant time. Hex case is not
/// significant (`ABC…` and `abc…` are the same 16 bytes), so an upper-case signature of the
/// right digest verifies.
pub fn verify<'a, I>(fields: I, received: Option<&str>, secret: &SecretString) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let Some(received) = received.filter(|s| !s.is_empty()) else {
        return false;
    };
    if secret.expose_secret().is_empty() {
        return false;
    }
    let mut received_bytes = [0u8; 16];
    if hex::decode_to_slice(received, &mut received_bytes).is_err() {
        return false;
    }
    let expected = digest(fields, secret);
    expected.ct_eq(&received_bytes).into()
}

/// The top-level fields of a JSON object exactly as received, each as the text Vexora signed:
/// strings unescaped, numbers and booleans in their textual form as they arrived (`1500.00`
/// stays `1500.00`), `null` as empty (so it is left out of the signature like a missing field).
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedFields {
    fields: BTreeMap<String, String>,
}

impl std::fmt::Debug for ReceivedFields {
    // Values may carry PII (names, account numbers): only the field names are printable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedFields")
            .field("names", &self.fields.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why a body could not be read as a flat JSON object of scalar fields.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldsError {
    #[error("the body is not a JSON object")]
    NotAnObject,
    #[error("field `{0}` is a nested object or array; only scalar fields are accepted")]
    NestedValue(String),
    /// A field given twice: which of the two was signed cannot be known.
    #[error("field `{0}` appears more than once")]
    Duplicate(String),
}

impl ReceivedFields {
    /// Reads a raw body as a JSON object of scalar fields without trusting any of them.
    pub fn from_json(body: &[u8]) -> Result<Self, FieldsError> {
        let object = RawObject::parse(body).map_err(|e| match e {
            ObjectError::NotAnObject => FieldsError::NotAnObject,
            ObjectError::Duplicate(name) => FieldsError::Duplicate(name),
        })?;
        let mut fields = BTreeMap::new();
        for (name, value) in object.iter() {
            let as_text = match json::scalar(value).ok_or(FieldsError::NotAnObject)? {
                json::Scalar::Text(text) => text,
                json::Scalar::Null => String::new(),
                json::Scalar::Nested => return Err(FieldsError::NestedValue(name.to_owned())),
            };
            fields.insert(name.to_owned(), as_text);
        }
        Ok(Self { fields })
    }

    /// The value of a field as received; `None` when missing or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Verifies the `sign` field over every other field received.
    pub fn verify(&self, secret: &SecretString) -> bool {
        verify(self.iter(), self.get(SIGN_FIELD), secret)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    // Every expected digest below was computed outside this code with coreutils' md5sum over
    // the exact canonical string plus secret, e.g.
    //   printf '%s' 'amount=1000bankCode=0005tradeNo=T1TESTSECRET' | md5sum
    // (printf '%s' writes UTF-8 bytes without a trailing newline.)
    struct Vector {
        fields: &'static [(&'static str, &'static str)],
        secret: &'static str,
        canonical: &'static str,
        md5: &'static str,
    }

    const VECTORS: &[Vector] = &[
        Vector {
            fields: &[("tradeNo", "T1"), ("amount", "1000"), ("bankCode", "0005")],
            secret: "TESTSECRET",
            canonical: "amount=1000bankCode=0005tradeNo=T1",
            md5: "271af25a735d1ff9053404eedb4c328c",
        },
        Vector {
            // Katakana values are hashed as their UTF-8 bytes.
            fields: &[
                ("lastname", "ヤマダ"),
                ("firstname", "タロウ"),
                ("amount", "100"),
            ],
            secret: "s3cr3t",
            canonical: "amount=100firstname=タロウlastname=ヤマダ",
            md5: "7618aceb71a56375ec8c3ee8720e303d",
        },
        Vector {
            // Empty values and `sign` itself are left out; `bankCode` sorts before `bankNumber`.
            fields: &[
                ("sign", "whatever"),
                ("remark", ""),
                ("bankNumber", "1234567"),
                ("bankCode", "0001"),
            ],
            secret: "k",
            canonical: "bankCode=0001bankNumber=1234567",
            md5: "c58421df418fecbdfe1d1787f7478db6",
        },
    ];

    #[test]
    fn canonical_string_sorts_drops_empty_and_sign() {
        for v in VECTORS {
            assert_eq!(canonical_string(v.fields.iter().copied()), v.canonical);
        }
    }

    #[test]
    fn sign_matches_digests_computed_with_md5sum() {
        for v in VECTORS {
            assert_eq!(
                sign(v.fields.iter().copied(), &secret(v.secret)),
                v.md5,
                "vector {}",
                v.canonical
            );
        }
    }

    #[test]
    fn signature_does_not_depend_on_field_order() {
        let forward = [("a", "1"), ("b", "2"), ("c", "3")];
        let backward = [("c", "3"), ("b", "2"), ("a", "1")];
        assert_eq!(sign(forward, &secret("x")), sign(backward, &secret("x")));
    }

    #[test]
    fn verify_accepts_the_right_signature_in_either_hex_case() {
        let v = &VECTORS[0];
        let s = secret(v.secret);
        assert!(verify(v.fields.iter().copied(), Some(v.md5), &s));
        assert!(verify(
            v.fields.iter().copied(),
            Some(&v.md5.to_uppercase()),
            &s
        ));
    }

    #[test]
    fn verify_fails_closed() {
        let v = &VECTORS[0];
        let s = secret(v.secret);
        let fields = || v.fields.iter().copied();
        let cases: &[(&str, Option<&str>, &SecretString)] = &[
            ("missing sign", None, &s),
            ("empty sign", Some(""), &s),
            ("not hex", Some("zz"), &s),
            ("too short", Some(&v.md5[..30]), &s),
            ("too long", Some("271af25a735d1ff9053404eedb4c328c00"), &s),
            (
                "one digit off",
                Some("271af25a735d1ff9053404eedb4c328d"),
                &s,
            ),
        ];
        for (reason, sign, secret) in cases {
            assert!(!verify(fields(), *sign, secret), "{reason}");
        }
        assert!(!verify(fields(), Some(v.md5), &secret("")), "empty secret");
        assert!(
            !verify(fields(), Some(v.md5), &secret("wrong")),
            "wrong secret"
        );
        let tampered = [("tradeNo", "T1"), ("amount", "1001"), ("bankCode", "0005")];
        assert!(!verify(tampered, Some(v.md5), &s), "tampered value");
    }

    #[test]
    fn empty_secret_cannot_verify_even_a_signature_made_with_it() {
        let empty = secret("");
        let made = sign([("a", "1")], &empty);
        assert!(!verify([("a", "1")], Some(&made), &empty));
    }

    #[test]
    fn received_fields_keep_numbers_as_they_arrived() {
        let body = br#"{"amount":1500.00,"tradeNo":"T1","ok":true,"remark":null,"name":"\u30e4"}"#;
        let fields = ReceivedFields::from_json(body).unwrap();
        assert_eq!(fields.get("amount"), Some("1500.00"));
        assert_eq!(fields.get("ok"), Some("true"));
        assert_eq!(fields.get("remark"), None);
        assert_eq!(fields.get("name"), Some("ヤ"));
        assert_eq!(
            canonical_string(fields.iter()),
            "amount=1500.00name=ヤok=truetradeNo=T1"
        );
    }

    #[test]
    fn received_fields_verify_over_every_field_including_extras() {
        let s = secret("hook-secret");
        let sent = [
            ("tradeNo", "T9"),
            ("status", "0000"),
            ("amount", "1500"),
            ("utr", "U123"),
        ];
        let sig = sign(sent, &s);
        let body = format!(
            r#"{{"utr":"U123","status":"0000","amount":1500,"tradeNo":"T9","sign":"{sig}"}}"#
        );
        let fields = ReceivedFields::from_json(body.as_bytes()).unwrap();
        assert!(fields.verify(&s));

        let dropped_extra =
            format!(r#"{{"status":"0000","amount":1500,"tradeNo":"T9","sign":"{sig}"}}"#);
        let fields = ReceivedFields::from_json(dropped_extra.as_bytes()).unwrap();
        assert!(
            !fields.verify(&s),
            "a removed field must break the signature"
        );
    }

    #[test]
    fn received_fields_reject_non_objects_and_nesting() {
        let cases: &[(&[u8], FieldsError)] = &[
            (b"", FieldsError::NotAnObject),
            (b"[1,2]", FieldsError::NotAnObject),
            (b"\"x\"", FieldsError::NotAnObject),
            (b"{\"a\":", FieldsError::NotAnObject),
            (b"\xff\xfe", FieldsError::NotAnObject),
            (b"{\"a\":{\"b\":1}}", FieldsError::NestedValue("a".into())),
            (b"{\"a\":[1]}", FieldsError::NestedValue("a".into())),
            (
                b"{\"status\":\"0000\",\"status\":\"00029\"}",
                FieldsError::Duplicate("status".into()),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                ReceivedFields::from_json(body).unwrap_err(),
                *expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn received_fields_debug_shows_names_not_values() {
        let fields = ReceivedFields::from_json(br#"{"bankNumber":"9876543210"}"#).unwrap();
        let printed = format!("{fields:?}");
        assert!(printed.contains("bankNumber"));
        assert!(!printed.contains("9876543210"));
    }
}
