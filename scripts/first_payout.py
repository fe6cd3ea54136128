"""Send one payout to a deployed stack and read it back, signed with SigV4 (service
`execute-api`) with the caller's AWS credentials, as a merchant backend would.

    python3 scripts/first_payout.py <ApiUrl> [tradeNo]

Needs botocore (`pip install botocore`; .venv has it) and credentials for a role with the stack's
MerchantInvokePolicyArn attached. The payee below is Vexora's sandbox test data."""

import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest


def call(method, url, body=None):
    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        sys.exit("no AWS credentials: configure the merchant role first")
    # The API's own region (from its URL), whatever the profile's is: SigV4 signs for it.
    host = urllib.parse.urlsplit(url).hostname or ""
    in_url = re.fullmatch(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com", host)
    region = (in_url and in_url.group(1)) or os.environ.get("AWS_REGION") or "ap-northeast-1"
    headers = {"content-type": "application/json"} if body is not None else {}
    request = AWSRequest(method, url, data=body, headers=headers)
    SigV4Auth(credentials, "execute-api", region).add_auth(request)
    sent = urllib.request.Request(url, data=body, method=method, headers=dict(request.headers))
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    api = sys.argv[1].rstrip("/")
    trade_no = sys.argv[2] if len(sys.argv) == 3 else "ORDER-0001"
    body = json.dumps({
        "tradeNo": trade_no, "amount": 1500, "bankCode": "0005", "bankNumber": "1234567",
        "userId": "user-42", "mobile": "09012345678", "email": "taro@example.jp",
        "firstname": "タロウ", "lastname": "ヤマダ",
    }).encode()
    status, order = call("POST", f"{api}/payouts", body)
    print(f"POST /payouts -> {status} {json.dumps(order, ensure_ascii=False)}")
    status, order = call("GET", f"{api}/payouts/{trade_no}")
    print(f"GET /payouts/{trade_no} -> {status} {json.dumps(order, ensure_ascii=False)}")
    sys.exit(0 if status == 200 else 1)


if __name__ == "__main__":
    main()
