// Publish one Zoom provisioning request to NATS JetStream, as an HRIS
// integrator would, and wait for its result event.
//
//   NATS_URL=nats://127.0.0.1:4222 node publish.mjs SUBJECT BODY_FILE|- [REQUEST_ID]
//
//   node publish.mjs zoom.users.create.ssoCreate alice.json hris-42
//   echo '{"email":"alice@example.com"}' | node publish.mjs zoom.users.deactivate -
//
// It publishes the body with Nats-Msg-Id set to the request id (a new one
// when none is given), waits for the stream's acknowledgement, then reads
// the result stream until the event of this request with a terminal
// outcome arrives (matching data.request_id), printing each of its events
// (deferred ones too) as one JSON line on stdout. Exit status: 0 with a
// terminal result (whatever the outcome: see data.outcome), 1 without one
// within WAIT_SECONDS (default 30) or on an error, 2 on a usage mistake.
//
// Settings, as the service names them: NATS_URL (comma separated),
// RESULT_STREAM (ZOOM_USERS_RESULTS), RESULT_SUBJECT_PREFIX
// (zoom.users.result). The contract is docs/contract.md; the bodies are
// described by api/schemas.
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { connect } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";

const resultStream = process.env.RESULT_STREAM || "ZOOM_USERS_RESULTS";
const resultSubjects = (process.env.RESULT_SUBJECT_PREFIX || "zoom.users.result") + ".>";
const waitMs = Number(process.env.WAIT_SECONDS || "30") * 1000;
// The request stream's de-duplication window: a repeat of a request id
// within it is not stored again, and its result is at most this old.
const duplicateWindowMs = 24 * 60 * 60 * 1000;

function usage(problem) {
  console.error(`publish.mjs: ${problem}`);
  console.error("usage: node publish.mjs SUBJECT BODY_FILE|- [REQUEST_ID]");
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length < 2 || args.length > 3) usage("want a subject, a body file (- for stdin) and optionally a request id");
if (!Number.isFinite(waitMs) || waitMs <= 0) usage(`WAIT_SECONDS: want a number of seconds, got ${process.env.WAIT_SECONDS}`);
const [subject, bodyFile, requestId = `node-${randomUUID()}`] = args;
let body;
try {
  body = readFileSync(bodyFile === "-" ? 0 : bodyFile);
} catch (err) {
  usage(`read ${bodyFile}: ${err.message}`);
}

const natsURL = process.env.NATS_URL || "nats://127.0.0.1:4222";
let nc;
try {
  nc = await connect({ servers: natsURL.split(","), name: "zoomprov-example-node" });
} catch (err) {
  console.error(`publish.mjs: connect to ${natsURL}: ${err.message}`);
  process.exit(1);
}
try {
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  // Where this request's results will start: after everything the result
  // stream holds now. Asking before publishing means none can be missed.
  const before = await jsm.streams.info(resultStream);

  // msgID sends the Nats-Msg-Id header: the request id, and JetStream's
  // de-duplication key. The promise resolves once the stream has stored
  // the request (or recognised it as a duplicate).
  const ack = await js.publish(subject, body, { msgID: requestId });
  console.error(`${ack.duplicate ? "duplicate, not stored again" : "stored"}: request ${requestId} on ${subject} (stream ${ack.stream}, sequence ${ack.seq})`);

  // An ordered consumer reads the results: ephemeral, in order, no acks.
  // A duplicate's result may predate this run: look back over the window.
  const start = ack.duplicate
    ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(Date.now() - duplicateWindowMs).toISOString() }
    : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: before.state.last_seq + 1 };
  const consumer = await js.consumers.get(resultStream, { filter_subjects: [resultSubjects], ...start });
  const events = await consumer.consume();
  const timer = setTimeout(() => events.stop(), waitMs);
  let terminal;
  for await (const m of events) {
    let ev;
    try {
      ev = m.json();
    } catch {
      continue; // not an event of this contract
    }
    if (ev?.data?.request_id !== requestId) continue;
    console.log(JSON.stringify(ev));
    if (ev.data.outcome !== "deferred") {
      terminal = ev;
      break;
    }
  }
  clearTimeout(timer);
  await events.close();
  if (!terminal) {
    console.error(`publish.mjs: no result for request ${requestId} within ${waitMs / 1000}s (is the consumer running?)`);
    process.exitCode = 1;
  }
} catch (err) {
  console.error(`publish.mjs: ${err.message}`);
  process.exitCode = 1;
} finally {
  await nc.close();
}
