#!/usr/bin/env bash
# Creates or updates the JetStream streams, key-value buckets and durable
# consumers of the Zoom provisioner from the definitions in this directory,
# for deployments that run the service with PROVISION_STREAMS=false.
#
# The server and credentials come from the environment exactly as for any
# other nats CLI call: the selected context (`nats context select`, or
# NATS_CONTEXT), or NATS_URL, NATS_CREDS, NATS_USER/NATS_PASSWORD, ...
#
# Safe to run again: what exists is updated in place (messages, consumer
# positions and a paused consumer's pause are kept), what is missing is
# created. Set NATS_CLI to use a nats binary that is not on PATH.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nats_cli="${NATS_CLI:-nats}"

request_stream=ZOOM_USERS
result_stream=ZOOM_USERS_RESULTS
streams=(
	"ZOOM_USERS:stream-zoom-users.json"
	"ZOOM_USERS_RESULTS:stream-zoom-users-results.json"
	"ZOOM_USERS_DLQ:stream-zoom-users-dlq.json"
)
# One durable consumer per action and lifecycle operation: a quota-paused or
# quota-deferred action must not stop the others or hold their ack-pending
# slots. And one for the parked copies of requests that wait long for an
# earlier one about their user.
actions=(create autoCreate custCreate ssoCreate update deactivate activate delete parked)
consumer_prefix=zoom-provisioner

if ! command -v "$nats_cli" >/dev/null 2>&1; then
	echo "apply.sh: nats CLI '$nats_cli' not found (install natscli v0.5 or set NATS_CLI)" >&2
	exit 1
fi

# `command` so the function does not call itself when NATS_CLI is "nats".
nats() { command "$nats_cli" "$@"; }

for entry in "${streams[@]}"; do
	name="${entry%%:*}"
	file="$here/${entry#*:}"
	if nats stream info "$name" --json >/dev/null 2>&1; then
		echo "== stream $name exists; updating from $(basename "$file")"
		nats stream edit "$name" --config "$file" --force | sed '/^Information for /,$d'
	else
		echo "== stream $name: creating from $(basename "$file")"
		nats stream add "$name" --config "$file" >/dev/null
	fi
done

# The key-value buckets (a bucket is the stream KV_<bucket>). The flags are
# those of the documented commands in README.md; internal/provision/
# deploy_test.go checks both against the code.
kv_exists() { nats kv info "$1" >/dev/null 2>&1; }

if kv_exists zoom_attempts; then
	echo "== key-value bucket zoom_attempts exists; updating"
	nats kv edit zoom_attempts --history=1 --ttl=168h --replicas=3 --description="Zoom provisioner: transient failures per request" >/dev/null
else
	echo "== key-value bucket zoom_attempts: creating"
	nats kv add zoom_attempts --history=1 --ttl=168h --storage=file --replicas=3 --description="Zoom provisioner: transient failures per request" >/dev/null
fi

if kv_exists zoom_quota; then
	echo "== key-value bucket zoom_quota exists; updating"
	nats kv edit zoom_quota --history=1 --ttl=0s --replicas=3 --description="Zoom provisioner: quota gates and replica leases" >/dev/null
else
	echo "== key-value bucket zoom_quota: creating"
	nats kv add zoom_quota --history=1 --ttl=0s --storage=file --replicas=3 --description="Zoom provisioner: quota gates and replica leases" >/dev/null
fi

if kv_exists zoom_ledger; then
	echo "== key-value bucket zoom_ledger exists; updating"
	nats kv edit zoom_ledger --history=1 --ttl=720h --replicas=3 --description="Zoom provisioner: per-user ledger of the results" >/dev/null
else
	echo "== key-value bucket zoom_ledger: creating"
	nats kv add zoom_ledger --history=1 --ttl=720h --storage=file --replicas=3 --description="Zoom provisioner: per-user ledger of the results" >/dev/null
fi

for action in "${actions[@]}"; do
	name="$consumer_prefix-$action"
	file="$here/consumer-$action.json"
	if nats consumer info "$request_stream" "$name" --json >/dev/null 2>&1; then
		echo "== consumer $request_stream > $name exists; updating from $(basename "$file")"
		nats consumer edit "$request_stream" "$name" --config "$file" --force | sed '/^Information for /,$d'
	else
		echo "== consumer $request_stream > $name: creating from $(basename "$file")"
		nats consumer add "$request_stream" --config "$file" >/dev/null
	fi
done

# The ledger's consumer of the results (internal/ledger): every replica
# pulls from it and writes the zoom_ledger bucket.
ledger="$consumer_prefix-ledger"
file="$here/result-consumer-ledger.json"
if nats consumer info "$result_stream" "$ledger" --json >/dev/null 2>&1; then
	echo "== consumer $result_stream > $ledger exists; updating from $(basename "$file")"
	nats consumer edit "$result_stream" "$ledger" --config "$file" --force | sed '/^Information for /,$d'
else
	echo "== consumer $result_stream > $ledger: creating from $(basename "$file")"
	nats consumer add "$result_stream" --config "$file" >/dev/null
fi

echo "== done"
