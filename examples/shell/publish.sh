#!/bin/sh
# Publish one Zoom provisioning request to NATS JetStream with the nats CLI,
# as an HRIS integrator would, and wait for its result event.
#
#   NATS_URL=nats://127.0.0.1:4222 ./publish.sh SUBJECT BODY_FILE|- [REQUEST_ID]
#
#   ./publish.sh zoom.users.create.ssoCreate alice.json hris-42
#   echo '{"email":"alice@example.com"}' | ./publish.sh zoom.users.deactivate -
#
# It publishes the body with a Nats-Msg-Id header (the request id, and
# JetStream's de-duplication key; a new one when none is given), waits for
# the stream's acknowledgement (nats pub --jetstream), then reads the result
# stream (nats sub --stream) until the event of this request with a
# terminal outcome arrives, printing each of its events (deferred ones too)
# as one JSON line on stdout. Exit status: 0 with a terminal result
# (whatever the outcome: see data.outcome), 1 without one within
# WAIT_SECONDS (default 30) or on an error, 2 on a usage mistake.
#
# Settings, as the service names them: NATS_URL, RESULT_STREAM
# (ZOOM_USERS_RESULTS), RESULT_SUBJECT_PREFIX (zoom.users.result); the nats
# CLI also reads NATS_USER, NATS_PASSWORD, NATS_CREDS, NATS_NKEY. Needs the
# nats CLI (go install github.com/nats-io/natscli/nats@v0.5.0) and a POSIX
# shell. Events are matched on "request_id":"<id>" in the service's compact
# JSON, hence request ids of letters, digits and . _ : / @ + = - only.
set -eu

usage() {
	echo "publish.sh: $1" >&2
	echo "usage: publish.sh SUBJECT BODY_FILE|- [REQUEST_ID]" >&2
	exit 2
}

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
	usage "want a subject, a body file (- for stdin) and optionally a request id"
fi
subject=$1
body_file=$2
request_id=${3:-sh-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')}
case $request_id in
'' | *[!A-Za-z0-9._:/@+=-]*) usage "request id $request_id: want letters, digits and . _ : / @ + = - only" ;;
esac
wait_seconds=${WAIT_SECONDS:-30}
case $wait_seconds in
'' | *[!0-9]* | 0) usage "WAIT_SECONDS: want a whole number of seconds, got $wait_seconds" ;;
esac
nats_url=${NATS_URL:-nats://127.0.0.1:4222}
result_stream=${RESULT_STREAM:-ZOOM_USERS_RESULTS}
result_subjects=${RESULT_SUBJECT_PREFIX:-zoom.users.result}'.>'
command -v nats >/dev/null 2>&1 || {
	echo "publish.sh: the nats CLI is not installed: go install github.com/nats-io/natscli/nats@v0.5.0" >&2
	exit 1
}

tmp=$(mktemp -d)
sub=
watchdog=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	[ -z "$sub" ] || kill "$sub" 2>/dev/null || true
	[ -z "$watchdog" ] || kill "$watchdog" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

if [ "$body_file" = - ]; then
	cat >"$tmp/body"
elif ! cp "$body_file" "$tmp/body" 2>/dev/null; then
	usage "cannot read $body_file"
fi

# Where this request's results will start: after everything the result
# stream holds now. Asking before publishing means none can be missed.
if ! nats --server "$nats_url" stream info "$result_stream" --json >"$tmp/info" 2>"$tmp/err"; then
	echo "publish.sh: stream info $result_stream: $(cat "$tmp/err")" >&2
	exit 1
fi
last_seq=$(sed -n 's/^ *"last_seq": *\([0-9][0-9]*\).*/\1/p' "$tmp/info" | head -n 1)
[ -n "$last_seq" ] || {
	echo "publish.sh: no last_seq in the state of $result_stream" >&2
	exit 1
}

# --jetstream waits for the stream's acknowledgement; --no-templates keeps
# the body as it is ({{ would otherwise be a template).
if ! nats --server "$nats_url" pub --jetstream --no-templates --force-stdin \
	-H "Nats-Msg-Id:$request_id" "$subject" <"$tmp/body" >"$tmp/ack" 2>&1; then
	echo "publish.sh: publish to $subject: $(cat "$tmp/ack")" >&2
	exit 1
fi
start="--start-sequence=$((last_seq + 1))"
if grep -q 'Duplicate: true' "$tmp/ack"; then
	# Stored before, within the 24-hour de-duplication window: so is its
	# result, perhaps.
	echo "duplicate, not stored again: request $request_id on $subject" >&2
	start="--since=24h"
else
	echo "stored: request $request_id on $subject" >&2
fi

# An ordered, ephemeral consumer of the result stream; a watchdog ends it
# after WAIT_SECONDS.
mkfifo "$tmp/results"
nats --server "$nats_url" sub --stream "$result_stream" "$start" --raw "$result_subjects" >"$tmp/results" 2>"$tmp/sub.log" &
sub=$!
(sleep "$wait_seconds" && kill "$sub") >/dev/null 2>&1 &
watchdog=$!

status=1
while IFS= read -r line; do
	case $line in
	*"\"request_id\":\"$request_id\""*) ;;
	*) continue ;;
	esac
	printf '%s\n' "$line"
	case $line in
	*'"outcome":"deferred"'*) ;;
	*)
		status=0
		break
		;;
	esac
done <"$tmp/results"

if [ "$status" -ne 0 ]; then
	echo "publish.sh: no result for request $request_id within ${wait_seconds}s (is the consumer running?)" >&2
fi
exit "$status"
