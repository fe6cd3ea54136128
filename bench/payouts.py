"""The yardstick for `make bench`: submit-payout and payout-webhook as a Python team would write
them with boto3, run as Lambda functions under the same runtime-API harness, against the same
moto server and the same Vexora sandbox as the Rust binaries.

    python bench/payouts.py submit-payout | payout-webhook

The same work per request as the Rust functions on the bench's paths: submit validates the
payout, stores the intent with one conditional PutItem (a duplicate is answered from the item
the refused condition returns), signs the disbursement (MD5, Vexora's rule), posts it over a
reused connection pool and records the answer with one conditional UpdateItem; the webhook
verifies the signature (constant time) and moves the order with one conditional UpdateItem
(a duplicate is that one refused call). The secret is read once at init. Not a product: no
reconciler, no anomalies, no events; it exists to be measured against.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import sys
import time
from datetime import datetime, timezone

import boto3
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

# Lambda sets both; botocore reads only the second.
os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", ""))
TABLE = os.environ["PAYOUTS_TABLE"]
DDB = boto3.client("dynamodb", config=Config(retries={"mode": "standard", "max_attempts": 3}))
_SECRET = json.loads(
    boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["VEXORA_SECRET_ID"])[
        "SecretString"
    ]
)
MERCHANT_NO = _SECRET["merchantNo"]
APP_SECRET = _SECRET["appSecret"]
BASE_URL = os.environ.get("VEXORA_BASE_URL", "").rstrip("/")
NOTIFY_URL = os.environ.get("VEXORA_NOTIFY_URL", "")
TIMEOUT_S = int(os.environ.get("VEXORA_TIMEOUT_MS", "8000")) / 1000
HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=3, read=TIMEOUT_S))

TRADE_NO = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
BANK_CODE = re.compile(r"^[0-9]{4}$")
BANK_NUMBER = re.compile(r"^[0-9]{7}$")
MOBILE = re.compile(r"^0[0-9]{10}$")
TEXT_FIELDS = ("userId", "email", "firstname", "lastname")


def canonical(fields):
    return "".join(f"{k}={v}" for k, v in sorted(fields.items()) if k != "sign" and v != "")


def sign(fields):
    return hashlib.md5((canonical(fields) + APP_SECRET).encode()).hexdigest()


def now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def answer(status, body):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }


def text_body(event):
    body = event.get("body") or ""
    return base64.b64decode(body).decode() if event.get("isBase64Encoded") else body


def invalid(request):
    if not isinstance(request, dict):
        return "body"
    trade_no = request.get("tradeNo")
    if not isinstance(trade_no, str) or not TRADE_NO.match(trade_no):
        return "tradeNo"
    amount = request.get("amount")
    if type(amount) is not int or not 100 <= amount <= 50_000_000:
        return "amount"
    if not isinstance(request.get("bankCode"), str) or not BANK_CODE.match(request["bankCode"]):
        return "bankCode"
    if not isinstance(request.get("bankNumber"), str) or not BANK_NUMBER.match(
        request["bankNumber"]
    ):
        return "bankNumber"
    if not isinstance(request.get("mobile"), str) or not MOBILE.match(request["mobile"]):
        return "mobile"
    for name in TEXT_FIELDS:
        if not isinstance(request.get(name), str) or not request[name].strip():
            return name
    return None


def submit(event):
    try:
        request = json.loads(text_body(event))
    except ValueError:
        return answer(400, {"error": "invalid_json"})
    field = invalid(request)
    if field:
        return answer(422, {"error": "validation_failed", "field": field})
    trade_no, amount = request["tradeNo"], request["amount"]
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    at = now()
    try:
        DDB.put_item(
            TableName=TABLE,
            Item={
                "tradeNo": {"S": trade_no},
                "status": {"S": "PENDING"},
                "amount": {"N": str(amount)},
                "bankCode": {"S": request["bankCode"]},
                "userId": {"S": request["userId"]},
                "fingerprint": {"S": fingerprint},
                "version": {"N": "1"},
                "createdAt": {"S": at},
                "updatedAt": {"S": at},
            },
            ConditionExpression="attribute_not_exists(tradeNo)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        item = e.response.get("Item") or {}
        if item.get("fingerprint", {}).get("S") != fingerprint:
            return answer(422, {"error": "idempotency_mismatch"})
        return answer(200, {"tradeNo": trade_no, "status": item["status"]["S"], "amount": amount})
    fields = {
        "timestamp": str(int(time.time() * 1000)),
        "tradeNo": trade_no,
        "amount": str(amount),
        "bankCode": request["bankCode"],
        "bankNumber": request["bankNumber"],
        "userId": request["userId"],
        "mobile": request["mobile"],
        "email": request["email"],
        "firstname": request["firstname"],
        "lastname": request["lastname"],
        "notifyUrl": NOTIFY_URL,
    }
    if isinstance(request.get("remark"), str) and request["remark"]:
        fields["remark"] = request["remark"]
    fields["sign"] = sign(fields)
    status, platform_trade_no = "UNCONFIRMED", ""
    try:
        response = HTTP.request(
            "POST",
            BASE_URL + "/v1/vexora/disbursements",
            body=json.dumps(fields).encode(),
            headers={"Content-Type": "application/json", "merchantNo": MERCHANT_NO},
        )
        envelope = json.loads(response.data)
        data = envelope.get("data") or {}
        if str(envelope.get("code")) == "0000":
            status = {"0000": "SUCCEEDED", "00029": "FAILED"}.get(
                str(data.get("status")), "PROCESSING"
            )
            platform_trade_no = str(data.get("platFormTradeNo") or "")
    except (urllib3.exceptions.HTTPError, ValueError):
        pass  # unknown outcome: UNCONFIRMED, resolved by query
    DDB.update_item(
        TableName=TABLE,
        Key={"tradeNo": {"S": trade_no}},
        UpdateExpression="SET #s = :s, version = version + :one, updatedAt = :at, platFormTradeNo = :pf",
        ConditionExpression="#s = :pending",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": status},
            ":one": {"N": "1"},
            ":at": {"S": now()},
            ":pf": {"S": platform_trade_no or "-"},
            ":pending": {"S": "PENDING"},
        },
    )
    return answer(201, {"tradeNo": trade_no, "status": status, "amount": amount})


def webhook(event):
    try:
        fields = json.loads(text_body(event))
    except ValueError:
        return {"statusCode": 400, "body": "invalid body"}
    if not isinstance(fields, dict) or not isinstance(fields.get("sign"), str):
        return {"statusCode": 401, "body": "unsigned"}
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    if not hmac.compare_digest(sign(values), fields["sign"].lower()):
        return {"statusCode": 401, "body": "bad signature"}
    to = {"0000": "SUCCEEDED", "00029": "FAILED", "0015": "PROCESSING"}.get(values.get("status"))
    if to is None or "tradeNo" not in values:
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "OK"}
    try:
        DDB.update_item(
            TableName=TABLE,
            Key={"tradeNo": {"S": values["tradeNo"]}},
            UpdateExpression="SET #s = :to, version = version + :one, updatedAt = :at",
            ConditionExpression="#s IN (:pending, :processing, :unconfirmed) AND #s <> :to AND amount = :amount",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":to": {"S": to},
                ":one": {"N": "1"},
                ":at": {"S": now()},
                ":pending": {"S": "PENDING"},
                ":processing": {"S": "PROCESSING"},
                ":unconfirmed": {"S": "UNCONFIRMED"},
                ":amount": {"N": str(int(float(values.get("amount", "0"))))},
            },
        )
    except ClientError as e:
        if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise  # 5xx: Vexora delivers again
    return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": "OK"}


def serve(handler):
    """The Lambda runtime interface: next event, answer, on one kept-alive connection."""
    host, _, port = os.environ["AWS_LAMBDA_RUNTIME_API"].partition(":")
    api = http.client.HTTPConnection(host, int(port or 80))
    base = "/2018-06-01/runtime/invocation"
    while True:
        api.request("GET", f"{base}/next")
        response = api.getresponse()
        event = response.read()
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        try:
            body, path = json.dumps(handler(json.loads(event))), "response"
        except Exception as e:  # noqa: BLE001 - reported to the runtime, as Lambda does
            body, path = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)}), "error"
        api.request(
            "POST", f"{base}/{request_id}/{path}", body=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        api.getresponse().read()


if __name__ == "__main__":
    serve({"submit-payout": submit, "payout-webhook": webhook}[sys.argv[1]])
