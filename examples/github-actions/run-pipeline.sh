#!/usr/bin/env bash
# Starts a pipeline run through Pipeline Gateway and waits for it to end: exit 0 when it succeeded,
# 1 when it failed, was cancelled or could not be confirmed (or the wait timed out), 2 on bad usage
# or a request the gateway refused.
#
#   run-pipeline.sh TARGET PIPELINE ['{"date": "2026-11-21"}']
#
# Environment:
#   GATEWAY_API         the API's base URL, e.g. https://apim.contoso.com/pipelines/api
#   GATEWAY_KEY         your API Management subscription key (a secret)
#   GATEWAY_KEY_HEADER  default Ocp-Apim-Subscription-Key (x-functions-key against the app itself)
#   IDEMPOTENCY_KEY     the same key for every retry of this start: a retried job replays the run it
#                       started instead of starting another (the workflow derives it from its run id)
#   POLL_SECONDS, POLL_MAX_SECONDS, TIMEOUT_SECONDS   first and longest wait between reads, and the whole
#                       wait (defaults 10, 120, 21600)
# Needs bash, curl and python3 (for JSON), which GitHub's runners have.
set -euo pipefail

usage() { echo "usage: GATEWAY_API=... GATEWAY_KEY=... IDEMPOTENCY_KEY=... $0 TARGET PIPELINE [PARAMETERS_JSON]" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || usage
: "${GATEWAY_API:?set GATEWAY_API}" "${GATEWAY_KEY:?set GATEWAY_KEY}" "${IDEMPOTENCY_KEY:?set IDEMPOTENCY_KEY}"
target=$1 pipeline=$2 parameters=${3:-"{}"}
key_header=${GATEWAY_KEY_HEADER:-Ocp-Apim-Subscription-Key}
delay=${POLL_SECONDS:-10} longest=${POLL_MAX_SECONDS:-120}
deadline=$((SECONDS + ${TIMEOUT_SECONDS:-21600}))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The value of a top-level field of the JSON on stdin ("" when absent).
field() { python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

# call METHOD URL [BODY]: the answer in $work/body, its status printed. Throttling (429), the gateway or
# Azure being unavailable (5xx) and lost connections are retried after Retry-After or a growing pause:
# safe for the start too, because the Idempotency-Key makes a repeat return the same run.
call() {
  local method=$1 url=$2 pause=2 status
  local -a send=()
  [[ $# -lt 3 ]] || send=(-H "Idempotency-Key: $IDEMPOTENCY_KEY" -H "Content-Type: application/json" --data "$3")
  while :; do
    status=$(curl -sS -o "$work/body" -D "$work/headers" -w '%{http_code}' -X "$method" "$url" \
      -H "$key_header: $GATEWAY_KEY" "${send[@]}") || status=000
    if [[ $status != 429 && $status != 5?? && $status != 000 ]]; then
      echo "$status"
      return
    fi
    local after
    after=$(tr -d '\r' < "$work/headers" | awk -F': *' 'tolower($1) == "retry-after" {print $2}')
    [[ $after =~ ^[0-9]+$ ]] && pause=$after
    if (( SECONDS + pause > deadline )); then echo "$status"; return; fi
    echo "HTTP $status from $method $url; retrying in ${pause}s" >&2
    sleep "$pause"
    pause=$((pause * 2 > 60 ? 60 : pause * 2))
  done
}

body=$(python3 -c 'import json, sys; print(json.dumps({"parameters": json.loads(sys.argv[1])}))' "$parameters") || usage
status=$(call POST "$GATEWAY_API/targets/$target/pipelines/$pipeline/runs" "$body")
if [[ $status != 2?? ]]; then
  echo "The gateway refused the start (HTTP $status): $(cat "$work/body")" >&2
  exit 2
fi
run_id=$(field id < "$work/body")
replayed=$(tr -d '\r' < "$work/headers" | awk -F': *' 'tolower($1) == "idempotent-replayed" {print $2}')
echo "Run $run_id of $target/$pipeline${replayed:+ (replayed: key $IDEMPOTENCY_KEY started it before)}"
[[ -n ${GITHUB_OUTPUT:-} ]] && echo "run-id=$run_id" >> "$GITHUB_OUTPUT"

seen=""
while :; do
  status=$(call GET "$GATEWAY_API/runs/$run_id")
  if [[ $status != 2?? ]]; then
    echo "Reading run $run_id failed (HTTP $status): $(cat "$work/body")" >&2
    exit 2
  fi
  state=$(field status < "$work/body")
  if [[ $state != "$seen" ]]; then
    echo "$(date -u +%H:%M:%S) $run_id $state"
    seen=$state
  fi
  case $state in
    Succeeded|Failed|Cancelled|Rejected|Unknown) break ;;
  esac
  if (( SECONDS + delay > deadline )); then
    echo "Gave up waiting for $run_id after ${TIMEOUT_SECONDS:-21600}s (still $state)." >&2
    exit 1
  fi
  sleep "$delay"
  delay=$((delay * 2 > longest ? longest : delay * 2))
done

message=$(field message < "$work/body")
[[ -n ${GITHUB_OUTPUT:-} ]] && echo "status=$state" >> "$GITHUB_OUTPUT"
[[ -n ${GITHUB_STEP_SUMMARY:-} ]] && echo "Pipeline run \`$run_id\` ($target/$pipeline): **$state** ${message}" >> "$GITHUB_STEP_SUMMARY"
if [[ $state != Succeeded ]]; then
  echo "Run $run_id ended $state: $message" >&2
  exit 1
fi
echo "Run $run_id succeeded."
