//! Any body through the webhook's parse-and-verify path: never panics, and whatever verifies was
//! signed by exactly the fields received.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vexora::signing::{ReceivedFields, SIGN_FIELD, sign};
use secrecy::SecretString;

fuzz_target!(|data: &[u8]| {
    let Ok(fields) = ReceivedFields::from_json(data) else {
        return;
    };
    let secret = SecretString::from("fuzz-app-secret".to_owned());
    if fields.verify(&secret) {
        let received = fields.get(SIGN_FIELD).unwrap_or_default().to_ascii_lowercase();
        assert_eq!(sign(fields.iter(), &secret), received);
    }
    let _ = (fields.get("tradeNo"), fields.get("status"), fields.get("amount"));
});
