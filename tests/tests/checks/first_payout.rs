//! The deploy guide's first-payout script (scripts/first_payout.py) sends what a merchant backend must:
//! a SigV4-signed (`execute-api`) POST of a valid payout, then a signed GET of the same order.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;

type Seen = Arc<Mutex<Vec<(Method, String, Option<String>, Bytes)>>>;

#[tokio::test]
async fn the_first_payout_script_signs_a_post_and_a_get() {
    let seen: Seen = Arc::default();
    let recorder = seen.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorder = recorder.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned());
                recorder
                    .lock()
                    .unwrap()
                    .push((method, uri.path().to_owned(), auth, body));
                axum::Json(serde_json::json!({"tradeNo": "FIRST-1", "status": "PROCESSING"}))
                    .into_response()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("scripts/first_payout.py"))
        .arg(format!("http://{addr}/"))
        .arg("FIRST-1")
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .env("AWS_REGION", "ap-northeast-1")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (method, path, auth, body) = &seen[0];
    assert_eq!((method, path.as_str()), (&Method::POST, "/payouts"));
    let payout: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payout["tradeNo"], "FIRST-1");
    assert!(
        payout_domain::PayoutRequest::from_json(body).is_ok(),
        "{payout}"
    );
    let (method, path, get_auth, _) = &seen[1];
    assert_eq!((method, path.as_str()), (&Method::GET, "/payouts/FIRST-1"));
    for auth in [auth, get_auth] {
        let auth = auth.as_deref().unwrap_or_default();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
                && auth.contains("/ap-northeast-1/execute-api/aws4_request"),
            "{auth}"
        );
    }
}
