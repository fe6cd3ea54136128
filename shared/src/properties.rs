//! Properties that must hold for every input, checked with proptest.

use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::domain::PayoutRequest;
use crate::order::{Decision, OrderStatus, Reported, decide};
use crate::signing::{ReceivedFields, canonical_string, sign, verify};
use crate::vexora::Notification;

/// Every way to read `canonical` as `name=value` pairs with names `[A-Za-z][A-Za-z0-9]*` in
/// ascending order and non-empty values (what a verifier that sorts and joins fields cannot
/// tell apart) that could pass the contract's shape rules: `amount`, `status` and `tradeNo`
/// present, no submit-only field. At most `cap` splits (`None` beyond).
fn resplits(canonical: &str, cap: usize) -> Option<Vec<Vec<(String, String)>>> {
    fn walk(
        s: &str,
        pos: usize,
        last: &str,
        acc: &mut Vec<(String, String)>,
        out: &mut Vec<Vec<(String, String)>>,
        cap: usize,
    ) -> bool {
        if out.len() > cap {
            return false;
        }
        // Names ascend: a required name sorting before the last one can no longer come.
        let has = |name: &str| acc.iter().any(|(n, _)| n == name);
        if ["amount", "status", "tradeNo"]
            .iter()
            .any(|required| *required < last && !has(required))
        {
            return true;
        }
        if pos == s.len() {
            if ["amount", "status", "tradeNo"].iter().all(|r| has(r)) {
                out.push(acc.clone());
            }
            return true;
        }
        // A name cannot hold `=`: it ends at the first one.
        let Some(eq) = s[pos..].find('=').map(|i| pos + i) else {
            return true;
        };
        let name = &s[pos..eq];
        let valid = name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
            && name.bytes().all(|b| b.is_ascii_alphanumeric())
            && name != "sign"
            && ![
                "bankCode",
                "bankNumber",
                "mobile",
                "email",
                "firstname",
                "lastname",
                "notifyUrl",
                "userId",
            ]
            .contains(&name);
        if !valid || name <= last {
            return true;
        }
        for end in s[eq + 1..]
            .char_indices()
            .map(|(i, c)| eq + 1 + i + c.len_utf8())
        {
            let value = &s[eq + 1..end];
            // The contract's shapes: a tradeNo is `[A-Za-z0-9_-]{1,32}`, an amount a number.
            let fits = match name {
                "tradeNo" => {
                    value.len() <= 32
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }
                "amount" => value.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                _ => true,
            };
            if !fits {
                break;
            }
            acc.push((name.to_owned(), value.to_owned()));
            let ok = walk(s, end, name, acc, out, cap);
            acc.pop();
            if !ok {
                return false;
            }
        }
        true
    }
    let mut out = Vec::new();
    walk(canonical, 0, "", &mut Vec::new(), &mut out, cap).then_some(out)
}

/// Whether the webhook accepts `fields` as a notification signed with `secret`, and if so with
/// which `tradeNo`, `status` and `amount`.
fn accepted(
    fields: &[(String, String)],
    secret: &SecretString,
) -> Option<(String, String, String)> {
    let signature = sign(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), secret);
    let mut object: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    object.insert("sign".into(), signature.into());
    let received = ReceivedFields::from_json(Value::Object(object).to_string().as_bytes()).ok()?;
    Notification::check_names(received.names()).ok()?;
    if !received.verify(secret) {
        return None;
    }
    let n = Notification::parse(&received).ok()?;
    Some((
        n.trade_no.as_str().to_owned(),
        n.status.as_str().to_owned(),
        n.amount_text,
    ))
}

/// Values that carry `=` and field-name-like text, the material of a re-split.
fn tricky_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[A-Za-z0-9]{1,3}",
        Just("=".to_owned()),
        prop::sample::select(vec![
            "status=", "tradeNo=", "amount=", "utr=", "zz=", "remark=", "message=", "x=", "status",
            "tradeNo", "amount", "00029", "0000", "100", "T", "u", "v",
        ])
        .prop_map(str::to_owned),
    ];
    prop::collection::vec(piece, 1..4).prop_map(|parts| parts.concat())
}

fn extra_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "message",
        "remark",
        "utr",
        "zz",
        "uvw",
        "a",
        "platFormTradeNo",
        "successTime",
        "statusx",
        "tradeNoA",
        "timestamp",
        "v",
    ])
    .prop_map(str::to_owned)
}

fn field_name() -> impl Strategy<Value = String> {
    "[a-zA-Z]{1,12}".prop_filter("not the sign field", |n| n != "sign")
}

fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::btree_map(field_name(), "\\PC{0,20}", 1..8)
        .prop_map(|m| m.into_iter().collect())
}

fn reported() -> impl Strategy<Value = Reported> {
    prop_oneof![
        Just(Reported::Processing),
        Just(Reported::Succeeded),
        Just(Reported::Failed),
        Just(Reported::Unknown),
    ]
}

fn status() -> impl Strategy<Value = OrderStatus> {
    prop::sample::select(OrderStatus::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_resplit_of_a_signed_notification_names_another_order_status_or_amount(
        trade_no in "[A-Za-z0-9_-]{1,6}",
        status in prop::sample::select(vec!["0000", "0015", "00029", "0001", "12"]),
        amount in prop::sample::select(vec!["1500", "1500.00", "100", "1500.5"]),
        extras in prop::collection::btree_map(extra_name(), tricky_value(), 0..4),
        secret in "[a-z]{8}",
    ) {
        let secret = SecretString::from(secret);
        let mut fields: Vec<(String, String)> = extras.into_iter().collect();
        fields.retain(|(k, _)| !["tradeNo", "status", "amount"].contains(&k.as_str()));
        fields.push(("tradeNo".into(), trade_no.clone()));
        fields.push(("status".into(), status.to_owned()));
        fields.push(("amount".into(), amount.to_owned()));
        let canonical = canonical_string(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let splits = resplits(&canonical, 20_000);
        prop_assume!(splits.is_some());
        for split in splits.unwrap_or_default() {
            if let Some(seen) = accepted(&split, &secret) {
                prop_assert_eq!(
                    &seen,
                    &(trade_no.clone(), status.to_owned(), amount.to_owned()),
                    "re-split {:?} of {:?} was accepted", split, canonical
                );
            }
        }
    }

    #[test]
    fn no_resplit_of_a_signed_submit_body_is_ever_accepted_as_a_notification(
        remark in tricky_value(),
        trade_no in "[A-Za-z0-9]{1,4}",
        secret in "[a-z]{8}",
    ) {
        let secret = SecretString::from(secret);
        let fields: Vec<(String, String)> = [
            ("amount", "1000"), ("bankCode", "0005"), ("bankNumber", "12"), ("email", "a@b.jp"),
            ("firstname", "ア"), ("lastname", "イ"), ("mobile", "09012345678"),
            ("notifyUrl", "https://n.jp/h"), ("timestamp", "1764000000000"), ("userId", "u"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .chain([("remark".to_owned(), remark), ("tradeNo".to_owned(), trade_no)])
        .collect();
        let canonical = canonical_string(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let splits = resplits(&canonical, 20_000);
        prop_assume!(splits.is_some());
        for split in splits.unwrap_or_default() {
            prop_assert_eq!(accepted(&split, &secret), None, "re-split {:?} was accepted", split);
        }
    }

    #[test]
    fn what_is_signed_verifies_and_any_change_does_not(
        fields in fields(),
        secret in "[ -~]{1,32}",
        which in any::<prop::sample::Index>(),
        extra in "[a-z0-9]{1,4}",
    ) {
        let secret = SecretString::from(secret);
        let pairs = || fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let signature = sign(pairs(), &secret);
        prop_assert!(verify(pairs(), Some(&signature), &secret));

        let i = which.index(fields.len());
        let mut changed = fields.clone();
        changed[i].1.push_str(&extra);
        let changed_pairs = changed.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        prop_assert!(!verify(changed_pairs, Some(&signature), &secret));
    }

    #[test]
    fn a_signed_json_body_verifies_in_any_key_order(fields in fields(), secret in "[ -~]{1,32}") {
        let secret = SecretString::from(secret);
        let signature = sign(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())), &secret);
        let mut entries: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), Value::from(v.as_str())))
            .collect();
        entries.reverse();
        entries.push(format!("\"sign\":\"{signature}\""));
        let body = format!("{{{}}}", entries.join(","));
        prop_assert!(ReceivedFields::from_json(body.as_bytes()).unwrap().verify(&secret));
    }

    #[test]
    fn the_fingerprint_ignores_key_order_and_amount_form(yen in 100u64..10_000_000_000, reverse in any::<bool>()) {
        let object = |amount: Value| json!({
            "tradeNo": "P1", "amount": amount, "bankCode": "0005", "bankNumber": "1234567",
            "userId": "u", "mobile": "09012345678", "email": "a@example.jp",
            "firstname": "タロウ", "lastname": "ヤマダ"
        });
        let as_number = object(json!(yen));
        let as_text = object(json!(yen.to_string()));
        let mut entries: Vec<(String, Value)> = as_text.as_object().unwrap().clone().into_iter().collect();
        if reverse {
            entries.reverse();
        }
        let reordered = format!(
            "{{{}}}",
            entries.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v)).collect::<Vec<_>>().join(",")
        );
        let a = PayoutRequest::from_json(as_number.to_string().as_bytes()).unwrap().fingerprint();
        let b = PayoutRequest::from_json(reordered.as_bytes()).unwrap().fingerprint();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn no_sequence_of_reports_leaves_a_final_state(start in status(), reports in prop::collection::vec(reported(), 0..20)) {
        let mut current = start;
        let mut was_final = current.is_final();
        let mut reached = current;
        for report in reports {
            if let Decision::Move(to) = decide(current, report) {
                prop_assert!(current.may_move_to(to));
                current = to;
            }
            if was_final {
                prop_assert_eq!(current, reached, "a final state changed");
            }
            if current.is_final() && !was_final {
                was_final = true;
                reached = current;
            }
        }
    }
}
