//! Properties that must hold for every input, checked with proptest.

use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::Notification;
use crate::signing::{ReceivedFields, canonical_string, sign, verify};
use payout_domain::PayoutRequest;
use payout_domain::order::{Decision, OrderStatus, Reported, decide};

/// Walks the ways to read `canonical` as `name=value` pairs in ascending name order with
/// non-empty values (what a verifier that sorts, drops empty values and joins fields cannot tell
/// apart), calling `visit` with each whole split. Only what signing itself implies is assumed (a
/// name ends at its first `=`, names ascend, no field is called `sign`); a name the webhook's own
/// rule refuses ([`Notification::check_names`], called, not copied) ends that branch, and every
/// other rule is left to the webhook, which `visit` asks. `order` shuffles which value ends are
/// tried first (0: shortest first). Stops after `time_budget` whole splits; returns how many it saw.
type Split = [(String, String)];

fn resplits(canonical: &str, order: u64, budget: usize, visit: &mut dyn FnMut(&Split)) -> usize {
    struct Walk<'a> {
        s: &'a str,
        order: u64,
        seen: usize,
        budget: usize,
        acc: Vec<(String, String)>,
        visit: &'a mut dyn FnMut(&Split),
    }
    impl Walk<'_> {
        fn walk(&mut self, pos: usize, last: &str) {
            if self.seen >= self.budget {
                return;
            }
            if pos == self.s.len() {
                self.seen += 1;
                (self.visit)(&self.acc);
                return;
            }
            // A name cannot hold `=`: it ends at the first one.
            let Some(eq) = self.s[pos..].find('=').map(|i| pos + i) else {
                return;
            };
            let name = self.s[pos..eq].to_owned();
            if name.is_empty()
                || name == "sign"
                || name.as_str() <= last
                || Notification::check_names([name.as_str()]).is_err()
            {
                return;
            }
            let mut ends: Vec<usize> = self.s[eq + 1..]
                .char_indices()
                .map(|(i, c)| eq + 1 + i + c.len_utf8())
                .collect();
            if self.order != 0 {
                // A small deterministic shuffle: each case explores another corner first.
                let mut x = self.order ^ (pos as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in (1..ends.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ends.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
            // An attacker tries first the cuts that start a name they know (the notification's
            // fields, the submit's): a stable sort keeps the rest in their order.
            ends.sort_by_key(|&end| {
                let next = self.s[end..].split('=').next().unwrap_or_default();
                !KNOWN_NAMES.contains(&next)
            });
            for end in ends {
                self.acc
                    .push((name.clone(), self.s[eq + 1..end].to_owned()));
                self.walk(end, &name);
                self.acc.pop();
            }
        }
    }
    let mut walk = Walk {
        s: canonical,
        order,
        seen: 0,
        budget,
        acc: Vec::new(),
        visit,
    };
    walk.walk(0, "");
    walk.seen
}

/// Field names an attacker re-cutting a signed body would aim for.
const KNOWN_NAMES: [&str; 19] = [
    "amount",
    "bankCode",
    "bankNumber",
    "email",
    "firstname",
    "lastname",
    "message",
    "mobile",
    "notifyUrl",
    "platFormTradeNo",
    "remark",
    "status",
    "successTime",
    "timestamp",
    "tradeNo",
    "userId",
    "utr",
    "zz",
    "x",
];

/// The signed submit body the re-split tests start from (every submit field, `remark` and
/// `tradeNo` chosen by the test).
fn submit_fields(remark: String, trade_no: String) -> Vec<(String, String)> {
    [
        ("amount", "1000"),
        ("bankCode", "0005"),
        ("bankNumber", "12"),
        ("email", "a@b.jp"),
        ("firstname", "ア"),
        ("lastname", "イ"),
        ("mobile", "09012345678"),
        ("notifyUrl", "https://n.jp/h"),
        ("timestamp", "1764000000000"),
        ("userId", "u"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .chain([
        ("remark".to_owned(), remark),
        ("tradeNo".to_owned(), trade_no),
    ])
    .collect()
}

#[test]
fn the_resplit_enumeration_reaches_whole_splits_of_a_submit_body() {
    // The property below checks each split the webhook is handed; it must be handed some. (Before
    // issue 22 the enumeration died at the second field of every submit body.)
    let fields = submit_fields("xstatus=00029".into(), "T1".into());
    let canonical = canonical_string(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut naming_all = 0;
    let seen = resplits(&canonical, 0, 20_000, &mut |split| {
        if ["amount", "status", "tradeNo"]
            .iter()
            .all(|n| split.iter().any(|(k, _)| k == n))
        {
            naming_all += 1;
        }
    });
    assert!(seen > 100, "only {seen} splits");
    assert!(naming_all > 0, "no split names tradeNo, status and amount");
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

/// A remark an attacker would write into a payout to re-cut its signed body later: some text,
/// then a notification field's name and `=`, digits, and maybe more tricky text.
fn attacker_remark() -> impl Strategy<Value = String> {
    (
        "[a-z]{1,2}",
        prop::sample::select(vec!["status=", "amount=", "tradeNo=", "utr=", "x="]),
        "[0-9]{0,5}",
        prop::option::of(tricky_value()),
    )
        .prop_map(|(a, name, digits, rest)| {
            format!("{a}{name}{digits}{}", rest.unwrap_or_default())
        })
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
        order in any::<u64>(),
    ) {
        let secret = SecretString::from(secret);
        let mut fields: Vec<(String, String)> = extras.into_iter().collect();
        fields.retain(|(k, _)| !["tradeNo", "status", "amount"].contains(&k.as_str()));
        fields.push(("tradeNo".into(), trade_no.clone()));
        fields.push(("status".into(), status.to_owned()));
        fields.push(("amount".into(), amount.to_owned()));
        let canonical = canonical_string(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let expected = (trade_no.clone(), status.to_owned(), amount.to_owned());
        let mut wrong = None;
        resplits(&canonical, order, 2_000, &mut |split| {
            if let Some(seen) = accepted(split, &secret)
                && seen != expected
                && wrong.is_none()
            {
                wrong = Some((split.to_vec(), seen));
            }
        });
        prop_assert!(wrong.is_none(), "re-split {:?} of {:?} was accepted", wrong, canonical);
    }

    #[test]
    fn no_resplit_of_a_signed_submit_body_is_ever_accepted_as_a_notification(
        remark in attacker_remark(),
        trade_no in "[A-Za-z0-9]{1,4}",
        secret in "[a-z]{8}",
        order in any::<u64>(),
    ) {
        let secret = SecretString::from(secret);
        let fields = submit_fields(remark, trade_no);
        let canonical = canonical_string(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut wrong = None;
        resplits(&canonical, order, 2_000, &mut |split| {
            if wrong.is_none() && let Some(seen) = accepted(split, &secret) {
                wrong = Some((split.to_vec(), seen));
            }
        });
        prop_assert!(wrong.is_none(), "re-split {:?} was accepted", wrong);
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
