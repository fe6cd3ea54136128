#!/usr/bin/env bash
# `make dev`: the whole product on this machine. Starts the moto server (DynamoDB with its
# stream, Secrets Manager, EventBridge, SQS), creates the table and the secret, starts the Vexora
# sandbox, serves the functions through `cargo lambda watch`, feeds the table's stream to
# publish-payout-events and prints the status events it publishes, then sends a demo payout and
# follows it to a final state. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_PORT=${MOTO_PORT:-5050}
SANDBOX_PORT=${SANDBOX_PORT:-5060}
WATCH_PORT=${WATCH_PORT:-9000}
VENV=.venv
export AWS_ENDPOINT_URL="http://127.0.0.1:${MOTO_PORT}"
export AWS_REGION=ap-northeast-1 AWS_DEFAULT_REGION=ap-northeast-1
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local
export PAYOUTS_TABLE=payouts-local VEXORA_SECRET_ID=vexora/local PAYOUT_EVENTS_BUS=payout-events-local
# A fresh app secret per run: no published value ever verifies anything.
SANDBOX_APP_SECRET=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
export SANDBOX_MERCHANT_NO=0000000001 SANDBOX_APP_SECRET
API="http://127.0.0.1:${WATCH_PORT}/lambda-url/submit-payout"
NOTIFY="http://127.0.0.1:${WATCH_PORT}/lambda-url/payout-webhook/vexora/notify"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$MOTO_PORT" "$SANDBOX_PORT" "$WATCH_PORT"; do
  if busy "$port"; then
    echo "make dev: port $port on 127.0.0.1 is busy. Stop what uses it, or choose other ports:" >&2
    echo "  make dev MOTO_PORT=... SANDBOX_PORT=... WATCH_PORT=..." >&2
    exit 1
  fi
done

wait_port() { # port, name, seconds
  local deadline=$((SECONDS + $3))
  until busy "$1"; do
    if ((SECONDS > deadline)); then echo "make dev: $2 did not start on port $1" >&2; exit 1; fi
    sleep 0.2
  done
}

pids=()
cleanup() {
  trap - EXIT INT TERM
  say "stopping"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p target/dev
say "building the sandbox and the setup tool"
cargo build --quiet -p payout-e2e -p payouts-admin --bins

say "starting the moto server on ${AWS_ENDPOINT_URL}"
"$VENV/bin/python" scripts/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >target/dev/moto.log 2>&1 &
pids+=($!)
wait_port "$MOTO_PORT" "the moto server" 60
target/debug/local-setup
BATCH_QUEUE_URL=$(target/debug/local-batches queue payout-batches-local)

say "starting the Vexora sandbox on http://127.0.0.1:${SANDBOX_PORT}"
target/debug/vexora-sandbox "$SANDBOX_PORT" >target/dev/sandbox.log 2>&1 &
pids+=($!)
wait_port "$SANDBOX_PORT" "the Vexora sandbox" 30

cat >target/dev/functions.env <<ENV
PAYOUTS_TABLE=${PAYOUTS_TABLE}
VEXORA_SECRET_ID=${VEXORA_SECRET_ID}
VEXORA_BASE_URL=http://127.0.0.1:${SANDBOX_PORT}
VEXORA_NOTIFY_URL=${NOTIFY}
VEXORA_TIMEOUT_MS=8000
AWS_ENDPOINT_URL=${AWS_ENDPOINT_URL}
AWS_REGION=${AWS_REGION}
AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID}
AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}
PAYOUT_EVENTS_BUS=${PAYOUT_EVENTS_BUS}
PAYOUT_BATCH_QUEUE_URL=${BATCH_QUEUE_URL}
ENV

say "serving the functions with cargo lambda watch on http://127.0.0.1:${WATCH_PORT} (log: target/dev/functions.log)"
"$VENV/bin/cargo-lambda" lambda watch --invoke-address 127.0.0.1 --invoke-port "$WATCH_PORT" \
  --env-file target/dev/functions.env >target/dev/functions.log 2>&1 &
pids+=($!)
wait_port "$WATCH_PORT" "cargo lambda watch" 120

say "feeding the table's stream to publish-payout-events; status events go to target/dev/events.log"
INVOKE_URL="http://127.0.0.1:${WATCH_PORT}/2015-03-31/functions/publish-payout-events/invocations" \
  target/debug/local-events >target/dev/events.log 2>&1 &
pids+=($!)

say "feeding the batch queue to submit-batch-items (log: target/dev/batches.log)"
INVOKE_URL="http://127.0.0.1:${WATCH_PORT}/2015-03-31/functions/submit-batch-items/invocations" \
  QUEUE_URL="$BATCH_QUEUE_URL" target/debug/local-batches pump >target/dev/batches.log 2>&1 &
pids+=($!)

TRADE_NO="DEMO-$(date +%Y%m%d%H%M%S)"
BODY=$(cat <<JSON
{"tradeNo":"${TRADE_NO}","amount":1500,"bankCode":"0005","bankNumber":"1234567","userId":"user-42",
 "mobile":"09012345678","email":"taro@example.jp","firstname":"タロウ","lastname":"ヤマダ","remark":"demo"}
JSON
)
say "submitting demo payout ${TRADE_NO} (the first call compiles the function; allow a minute)"
curl -sS --max-time 900 -X POST "${API}/payouts" -H 'content-type: application/json' -d "$BODY" \
  -w '\n(HTTP %{http_code})\n'

last=""
for _ in $(seq 1 600); do
  status=$(curl -sS --max-time 120 "${API}/payouts/${TRADE_NO}" | sed -n 's/.*"status":"\([A-Z]*\)".*/\1/p')
  if [[ "$status" != "$last" ]]; then echo "  ${TRADE_NO}: ${status}"; last=$status; fi
  [[ "$status" == SUCCEEDED || "$status" == FAILED ]] && break
  sleep 0.5
done
[[ "$last" == SUCCEEDED ]] || { echo "make dev: the demo payout did not reach SUCCEEDED (see target/dev/*.log)" >&2; exit 1; }
curl -sS "${API}/payouts/${TRADE_NO}"; echo

say "status events published for ${TRADE_NO} (the first delivery compiles the publisher)"
for _ in $(seq 1 1800); do
  (($(grep -c "\"tradeNo\":\"${TRADE_NO}\"" target/dev/events.log || true) >= 2)) && break
  sleep 0.5
done
grep "\"tradeNo\":\"${TRADE_NO}\"" target/dev/events.log \
  || { echo "make dev: no status events for ${TRADE_NO} (see target/dev/events.log)" >&2; exit 1; }
grep -q "\"status\":\"SUCCEEDED\"" <(grep "${TRADE_NO}" target/dev/events.log) \
  || { echo "make dev: the SUCCEEDED event did not arrive (see target/dev/events.log)" >&2; exit 1; }

say "the balance at Vexora after the demo payout (GET /balance; the sandbox's ledger)"
curl -sS --max-time 120 "${API}/balance"; echo

BATCH_ID="DEMO_BATCH_$(date +%Y%m%d%H%M%S)"
ITEM='{"amount":1000,"bankCode":"0005","bankNumber":"1234567","userId":"user-42","mobile":"09012345678","email":"taro@example.jp","firstname":"タロウ","lastname":"ヤマダ"}'
say "submitting demo batch ${BATCH_ID} of 5 payouts (the first item compiles the worker; allow a minute)"
curl -sS --max-time 300 -X POST "${API}/batches" -H 'content-type: application/json' \
  -d "{\"batchId\":\"${BATCH_ID}\",\"items\":[${ITEM},${ITEM},${ITEM},${ITEM},${ITEM}]}" -w '\n(HTTP %{http_code})\n'
last=""
for _ in $(seq 1 1800); do
  batch=$(curl -sS --max-time 120 "${API}/batches/${BATCH_ID}" || true)
  status=$(sed -n 's/^{"batchId":"[^"]*","status":"\([A-Z]*\)".*/\1/p' <<<"$batch")
  if [[ "$status" != "$last" ]]; then echo "  ${BATCH_ID}: ${status}"; last=$status; fi
  [[ "$status" == DONE ]] && break
  sleep 0.5
done
[[ "$last" == DONE ]] || { echo "make dev: the demo batch did not reach DONE (see target/dev/*.log)" >&2; exit 1; }
echo "$batch"

say "the operator tool on the same table (payouts-admin)"
target/debug/payouts-admin list

cat <<TXT

The local stack is running. Ctrl-C stops it.
  submit-payout   ${API}/payouts
  payout-webhook  ${NOTIFY}
  Vexora sandbox  http://127.0.0.1:${SANDBOX_PORT}  (ledger: /sandbox/ledger)
  moto            ${AWS_ENDPOINT_URL}
  status events   bus ${PAYOUT_EVENTS_BUS}, printed to target/dev/events.log
  batch queue     ${BATCH_QUEUE_URL} -> submit-batch-items (target/dev/batches.log)
  logs            target/dev/{functions,sandbox,moto,events,batches}.log

Try:
  curl -s ${API}/payouts/${TRADE_NO}
  curl -s "${API}/payouts/${TRADE_NO}?refresh=true"   # resolve against Vexora's query API
  curl -s -X POST ${API}/payouts -H 'content-type: application/json' -d '${BODY//$'\n'/}'   # same again: 200, no second payout
  curl -s -X POST ${API}/payouts -H 'content-type: application/json' -d '{"amount":"99"}'   # 400 with every violation
  # amounts ending in 11..20 script Vexora's other outcomes (see docs/local.md), e.g. 1012 fails, 1014 answers code 5000
  curl -s ${API}/balance                               # Vexora's balance (cached 30 s)
  curl -s ${API}/batches/${BATCH_ID}                   # a batch: status, counts, items (paged)
  curl -s http://127.0.0.1:${SANDBOX_PORT}/sandbox/ledger
  # the operator tool; every variable it needs is in target/dev/functions.env
  env \$(xargs <target/dev/functions.env) target/debug/payouts-admin show ${TRADE_NO}
TXT
wait
