//! Every field's rule through the request parser, as tables with a reason per row.

use super::*;
use chrono::{DateTime, Utc};
use rand::SeedableRng;
use serde_json::{Value, json};

fn good() -> Value {
    json!({
        "tradeNo": "ORDER_2026-0001",
        "amount": 1500,
        "bankCode": "0005",
        "bankNumber": "1234567",
        "userId": "user-42",
        "mobile": "09012345678",
        "email": "taro@example.jp",
        "firstname": "タロウ",
        "lastname": "ヤマダ",
        "remark": "November payout"
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = good();
    v[field] = value;
    v
}

fn parse(v: &Value) -> Result<PayoutRequest, ValidationErrors> {
    PayoutRequest::from_json(v.to_string().as_bytes())
}

#[test]
fn a_complete_request_is_accepted() {
    let req = parse(&good()).unwrap();
    assert_eq!(req.amount.yen(), 1500);
    assert_eq!(req.trade_no.unwrap().as_str(), "ORDER_2026-0001");
    assert_eq!(req.bank_number.masked(), "****4567");
    assert_eq!(BankNumber::parse("123456").unwrap().masked(), "****");
}

#[test]
fn optional_fields_may_be_absent_or_null() {
    let mut v = good();
    v.as_object_mut().unwrap().remove("tradeNo");
    v["remark"] = Value::Null;
    let req = parse(&v).unwrap();
    assert!(req.trade_no.is_none());
    assert!(req.remark.is_none());
}

#[test]
fn good_forms_are_accepted() {
    let cases: &[(&str, Value, &str)] = &[
        ("amount", json!("100"), "minimum as a digit string"),
        ("amount", json!(100), "minimum as a number"),
        ("amount", json!(50_000_000), "large amount"),
        (
            "amount",
            json!(1500.0),
            "whole number written with a fraction",
        ),
        ("amount", json!(999_999_999_999_999_u64), "maximum"),
        (
            "amount",
            json!("999999999999999"),
            "maximum as a digit string",
        ),
        ("tradeNo", json!("a"), "one character"),
        ("tradeNo", json!("A".repeat(32)), "32 characters"),
        ("bankNumber", json!("1"), "one digit"),
        ("bankNumber", json!("1".repeat(20)), "20 digits"),
        ("userId", json!("u!~#".repeat(16)), "64 visible ASCII"),
        ("mobile", json!("08000000000"), "11 digits from 0"),
        (
            "email",
            json!("a.b+c@mail.example.co.jp"),
            "subdomains and plus",
        ),
        ("firstname", json!("ジョン・スミス"), "middle dot"),
        ("firstname", json!("ユーコ"), "long vowel mark"),
        (
            "lastname",
            json!("ヤマダ タロウ"),
            "ASCII space between parts",
        ),
        (
            "lastname",
            json!("ヤマダ\u{3000}タロウ"),
            "full-width space",
        ),
        ("lastname", json!("ア".repeat(40)), "40 characters"),
        ("remark", json!("ＯＫ 半角も全角も"), "any visible text"),
        ("remark", json!("x".repeat(128)), "128 characters"),
    ];
    for (field, value, reason) in cases {
        assert!(
            parse(&with(field, value.clone())).is_ok(),
            "{field} {reason}: {:?}",
            parse(&with(field, value.clone())).unwrap_err()
        );
    }
}

#[test]
fn bad_forms_are_rejected_with_the_field_named() {
    let cases: &[(&str, Value, &str, &str)] = &[
        ("amount", json!(99), "below minimum", "at least 100"),
        (
            "amount",
            json!("99"),
            "below minimum as string",
            "at least 100",
        ),
        ("amount", json!(100.5), "decimal number", "whole number"),
        ("amount", json!("100.5"), "decimal string", "whole number"),
        ("amount", json!(-100), "negative number", "negative"),
        ("amount", json!("-100"), "signed string", "whole number"),
        ("amount", json!("+100"), "plus sign", "whole number"),
        ("amount", json!("1e3"), "exponent string", "whole number"),
        ("amount", json!(1000.25), "float number", "whole number"),
        ("amount", json!(-1500.0), "negative float", "negative"),
        (
            "amount",
            json!(1e15),
            "float above the maximum",
            "too large",
        ),
        (
            "amount",
            json!(1_000_000_000_000_000_u64),
            "above the maximum",
            "too large",
        ),
        (
            "amount",
            json!("1000000000000000"),
            "above the maximum as a string",
            "too large",
        ),
        ("amount", json!(""), "empty string", "whole number"),
        ("amount", json!(" 100"), "padded", "whole number"),
        (
            "amount",
            json!("99999999999999999999999"),
            "overflow",
            "too large",
        ),
        ("amount", json!(true), "boolean", "whole number"),
        ("amount", Value::Null, "null", "required"),
        ("tradeNo", json!(""), "empty", "1 to 32"),
        ("tradeNo", json!("A".repeat(33)), "33 characters", "1 to 32"),
        ("tradeNo", json!("a b"), "space", "only letters"),
        ("tradeNo", json!("注文1"), "non-ASCII", "only letters"),
        ("tradeNo", json!(123), "number", "must be a string"),
        ("bankCode", json!("005"), "3 digits", "exactly 4"),
        ("bankCode", json!("00050"), "5 digits", "exactly 4"),
        ("bankCode", json!("00a5"), "letter", "exactly 4"),
        (
            "bankCode",
            json!("０００５"),
            "full-width digits",
            "exactly 4",
        ),
        ("bankCode", json!(5), "number", "must be a string"),
        ("bankNumber", json!(""), "empty", "1 to 20"),
        ("bankNumber", json!("1".repeat(21)), "21 digits", "1 to 20"),
        ("bankNumber", json!("123-456"), "dash", "1 to 20"),
        ("userId", json!(""), "empty", "1 to 64"),
        ("userId", json!("a".repeat(65)), "65 characters", "1 to 64"),
        ("userId", json!("a b"), "space", "visible ASCII"),
        ("userId", json!("ユーザー"), "non-ASCII", "visible ASCII"),
        ("mobile", json!("+819012345678"), "country code", "+81"),
        ("mobile", json!("0901234567"), "10 digits", "11 digits"),
        ("mobile", json!("090123456789"), "12 digits", "11 digits"),
        (
            "mobile",
            json!("19012345678"),
            "not starting with 0",
            "starting with 0",
        ),
        ("mobile", json!("090-1234-5678"), "dashes", "11 digits"),
        ("email", json!("taro"), "no @", "e-mail address"),
        (
            "email",
            json!("taro@example"),
            "no dot in domain",
            "e-mail address",
        ),
        (
            "email",
            json!("@example.jp"),
            "empty local part",
            "e-mail address",
        ),
        (
            "email",
            json!("ta ro@example.jp"),
            "space",
            "e-mail address",
        ),
        ("email", json!("a@b@example.jp"), "two @", "e-mail address"),
        (
            "email",
            json!("a@example..jp"),
            "empty label",
            "e-mail address",
        ),
        (
            "email",
            json!(format!("{}@example.jp", "a".repeat(250))),
            "too long",
            "254",
        ),
        ("firstname", json!("たろう"), "Hiragana", "Hiragana"),
        ("firstname", json!("太郎"), "Kanji", "Kanji"),
        (
            "firstname",
            json!("ﾀﾛｳ"),
            "half-width Katakana",
            "half-width Katakana",
        ),
        ("firstname", json!("Taro"), "Latin", "Latin letters"),
        (
            "firstname",
            json!("タロウ1"),
            "digit",
            "other than Katakana",
        ),
        ("firstname", json!(""), "empty", "must not be empty"),
        (
            "firstname",
            json!("ア".repeat(41)),
            "41 characters",
            "at most 40",
        ),
        (
            "lastname",
            json!(" ヤマダ"),
            "leading space",
            "start or end",
        ),
        (
            "lastname",
            json!("ヤマダ  タロウ"),
            "double space",
            "single space",
        ),
        ("lastname", Value::Null, "null", "required"),
        (
            "remark",
            json!("x".repeat(129)),
            "129 characters",
            "at most 128",
        ),
        ("remark", json!("a\nb"), "newline", "control"),
        ("remark", json!(5), "number", "must be a string"),
    ];
    for (field, value, reason, expected) in cases {
        let errors = parse(&with(field, value.clone())).unwrap_err().0;
        assert_eq!(errors.len(), 1, "{field} {reason}: {errors:?}");
        assert_eq!(errors[0].field, *field, "{field} {reason}");
        assert!(
            errors[0].message.contains(expected),
            "{field} {reason}: message {:?} lacks {expected:?}",
            errors[0].message
        );
    }
}

#[test]
fn amounts_are_parsed_exactly_from_the_text_never_through_a_float() {
    let body = |amount: &str| {
        good()
            .to_string()
            .replace("\"amount\":1500", &format!("\"amount\":{amount}"))
    };
    for (amount, expected) in [
        ("1500", Some(1500)),
        ("\"1500\"", Some(1500)),
        ("1500.0", Some(1500)),
        ("1500.000", Some(1500)),
        ("1e2", None),
        ("1E3", None),
        ("1.5e3", None),
        ("100.00000000000001", None),
        ("1500.9999999999999999", None),
        ("1500.5", None),
        ("18446744073709551616", None),
        ("-0", None),
    ] {
        let parsed = PayoutRequest::from_json(body(amount).as_bytes());
        match expected {
            Some(yen) => assert_eq!(parsed.map(|p| p.amount.yen()).ok(), Some(yen), "{amount}"),
            None => {
                let errors = parsed.expect_err(amount).0;
                assert_eq!(errors.len(), 1, "{amount}: {errors:?}");
                assert_eq!(errors[0].field, "amount", "{amount}");
            }
        }
    }
}

#[test]
fn an_empty_remark_is_the_same_payout_as_none() {
    let mut without = good();
    without.as_object_mut().unwrap().remove("remark");
    let empty = with("remark", json!(""));
    let null = with("remark", Value::Null);
    let a = parse(&without).unwrap();
    assert_eq!(parse(&empty).unwrap().remark, None);
    assert_eq!(parse(&empty).unwrap().fingerprint(), a.fingerprint());
    assert_eq!(parse(&null).unwrap().fingerprint(), a.fingerprint());
}

#[test]
fn a_field_given_twice_is_refused() {
    let body = good()
        .to_string()
        .replace("\"amount\":1500", "\"amount\":1500,\"amount\":99999");
    let errors = PayoutRequest::from_json(body.as_bytes()).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "amount");
    assert!(errors[0].message.contains("more than once"), "{errors:?}");
}

#[test]
fn every_violation_is_reported_not_only_the_first() {
    let v = json!({"amount": "12.5", "bankCode": "1", "mobile": "+81", "extra": 1, "other": 2});
    let fields: Vec<String> = parse(&v)
        .unwrap_err()
        .0
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        [
            "amount",
            "bankCode",
            "bankNumber",
            "userId",
            "mobile",
            "email",
            "firstname",
            "lastname",
            "extra",
            "other"
        ]
    );
}

#[test]
fn a_body_that_is_not_an_object_is_one_body_error() {
    for body in [&b"not json"[..], b"[1]", b"\"x\"", b"", b"{\"a\":"] {
        let errors = PayoutRequest::from_json(body).unwrap_err().0;
        assert_eq!(
            errors,
            vec![FieldError::new("body", "must be a JSON object")]
        );
    }
}

#[test]
fn messages_never_repeat_personal_values() {
    let v = json!({
        "amount": 1, "bankCode": "x", "bankNumber": "12ab34", "userId": " ",
        "mobile": "+8190CANARY", "email": "canary-at-example", "firstname": "CanaryFirst",
        "lastname": "CanaryLast"
    });
    let printed = format!("{:?}", parse(&v).unwrap_err());
    for canary in ["12ab34", "CANARY", "canary-at", "CanaryFirst", "CanaryLast"] {
        assert!(!printed.contains(canary), "{canary} leaked: {printed}");
    }
}

#[test]
fn debug_of_a_valid_request_masks_personal_data() {
    let printed = format!("{:?}", parse(&good()).unwrap());
    for secret in [
        "1234567",
        "09012345678",
        "taro@example.jp",
        "タロウ",
        "ヤマダ",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
}

#[test]
fn fingerprint_ignores_key_order_and_amount_form() {
    let a = parse(&good()).unwrap().fingerprint();
    let b = parse(&with("amount", json!("1500"))).unwrap().fingerprint();
    let reordered = r#"{"remark":"November payout","lastname":"ヤマダ","firstname":"タロウ",
        "email":"taro@example.jp","mobile":"09012345678","userId":"user-42",
        "bankNumber":"1234567","bankCode":"0005","amount":"1500","tradeNo":"ORDER_2026-0001"}"#;
    let c = PayoutRequest::from_json(reordered.as_bytes())
        .unwrap()
        .fingerprint();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.len(), 64);
}

#[test]
fn fingerprint_changes_with_any_content() {
    let base = parse(&good()).unwrap().fingerprint();
    for (field, value) in [
        ("amount", json!(1501)),
        ("bankCode", json!("0006")),
        ("bankNumber", json!("1234568")),
        ("userId", json!("user-43")),
        ("mobile", json!("09012345679")),
        ("email", json!("jiro@example.jp")),
        ("firstname", json!("ジロウ")),
        ("lastname", json!("タナカ")),
        ("remark", Value::Null),
    ] {
        assert_ne!(
            parse(&with(field, value)).unwrap().fingerprint(),
            base,
            "{field}"
        );
    }
}

#[test]
fn generated_trade_numbers_use_tokyo_time_and_six_digits() {
    let now = DateTime::parse_from_rfc3339("2026-11-23T15:04:05Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let t = TradeNo::generate(now, &mut rng);
    assert_eq!(t.as_str().len(), 20);
    assert!(t.as_str().starts_with("20261124000405"), "{t}");
    assert!(t.as_str()[14..].bytes().all(|b| b.is_ascii_digit()));
    assert!(TradeNo::parse(t.as_str()).is_ok());
}
