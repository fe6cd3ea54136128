//! Properties that must hold for every input, checked with proptest.

use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::domain::PayoutRequest;
use crate::order::{Decision, OrderStatus, Reported, decide};
use crate::signing::{ReceivedFields, sign, verify};

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
