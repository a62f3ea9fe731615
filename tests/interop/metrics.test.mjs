// The server's Prometheus metrics move as the official JavaScript client
// connects, invokes, fails (error, unauthorized, blocked) and disconnects,
// over every transport.
//
// Run by tests/tests/interop_js.rs, which starts `conformance-server
// --metrics` and passes:
//   HUB_URL      the hub, http://127.0.0.1:PORT/hubs/test
//   METRICS_URL  its scrape endpoint, http://127.0.0.1:PORT/metrics
import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";

const url = process.env.HUB_URL;
const metricsUrl = process.env.METRICS_URL;
assert.ok(url && metricsUrl, "HUB_URL and METRICS_URL must be set");
const hubPath = new URL(url).pathname;

// Parses the Prometheus text exposition format into
// [{ name, labels: {k: v}, value }] (samples only; comments skipped).
function parse(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a Prometheus sample line: ${line}`);
    const labels = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key] = value;
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape() {
  const response = await fetch(metricsUrl);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^text\/plain/);
  return parse(await response.text());
}

// The value of the sample `name` whose labels include `labels` (0 when the
// series does not exist yet).
function value(samples, name, labels) {
  const found = samples.filter(
    (sample) => sample.name === name && Object.entries(labels).every(([k, v]) => sample.labels[k] === v),
  );
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found.length === 1 ? found[0].value : 0;
}

// Waits until `check(samples)` holds (the server records a connection's end
// after the client has seen it close).
async function eventually(check, what) {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const samples = await scrape();
    if (check(samples)) return samples;
    if (Date.now() > deadline) assert.fail(`${what}; last scrape:\n${JSON.stringify(samples.filter((s) => s.name.startsWith("signalr_server_")), null, 1)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const transports = [
  ["WebSockets", signalR.HttpTransportType.WebSockets, "web_sockets"],
  ["ServerSentEvents", signalR.HttpTransportType.ServerSentEvents, "server_sent_events"],
  ["LongPolling", signalR.HttpTransportType.LongPolling, "long_polling"],
];

for (const [name, transport, label] of transports) {
  test(`${name}: active connections, invocations by outcome, connection duration`, async () => {
    const active = { signalr_transport: label };
    const closed = { signalr_transport: label, signalr_connection_status: "normal_closure" };
    const echoOk = { hub: hubPath, method: "Echo", outcome: "ok" };
    const failError = { hub: hubPath, method: "Fail", outcome: "error" };
    const unknownError = { hub: hubPath, method: "(unknown)", outcome: "error" };
    const before = await scrape();

    const connection = new signalR.HubConnectionBuilder()
      .withUrl(url, { transport })
      .configureLogging(signalR.LogLevel.None)
      .build();
    await connection.start();
    let stopped = false;
    try {
      const open = await eventually(
        (s) => value(s, "signalr_server_active_connections", active) === value(before, "signalr_server_active_connections", active) + 1,
        `${name}: signalr_server_active_connections did not go up`,
      );
      assert.equal(value(open, "signalr_server_connection_duration_seconds_count", closed),
        value(before, "signalr_server_connection_duration_seconds_count", closed));

      assert.equal(await connection.invoke("Echo", "one"), "one");
      assert.equal(await connection.invoke("Echo", "two"), "two");
      await assert.rejects(connection.invoke("Fail", "on purpose"), /on purpose/);
      await assert.rejects(connection.invoke("NoSuchMethod"), /Method does not exist/);
      // Authorization (anonymous caller of an admin-only method) and the hub filter.
      await assert.rejects(connection.invoke("AdminOnly"), /unauthorized/);
      await assert.rejects(connection.invoke("Echo", "blocked-by-filter"), /blocked by filter/);
      // The server counts an invocation just after it queues the answer,
      // so the counts are waited for, not read once. Each row: a series, and
      // how much it moved exactly (or at least, for "atLeast").
      const adminUnauthorized = { hub: hubPath, method: "AdminOnly", outcome: "unauthorized" };
      const echoBlocked = { hub: hubPath, method: "Echo", outcome: "blocked" };
      const invocations = "signalr_server_invocations_total";
      const moved = [
        [invocations, adminUnauthorized, 1],
        [invocations, echoBlocked, 1],
        [invocations, echoOk, 2],
        [invocations, failError, 1],
        [invocations, unknownError, 1],
        [invocations, { ...failError, outcome: "ok" }, 0],
        ["signalr_server_invocation_duration_seconds_count", { hub: hubPath, method: "Echo" }, 2, "atLeast"],
        ["signalr_server_sent_messages_total", { signalr_protocol: "json" }, 4, "atLeast"],
      ];
      await eventually(
        (s) => moved.every(([metric, labels, by, atLeast]) => {
          const delta = value(s, metric, labels) - value(before, metric, labels);
          return atLeast ? delta >= by : delta === by;
        }),
        `${name}: the invocation metrics did not move by ${JSON.stringify(moved)}`,
      );

      await connection.stop();
      stopped = true;
      // Both in one condition: a scrape reads the gauges before the
      // histograms and is no snapshot, so a connection ending during a
      // scrape can show its duration counted while the gauge still counts it.
      const after = await eventually(
        (s) => value(s, "signalr_server_connection_duration_seconds_count", closed)
            === value(before, "signalr_server_connection_duration_seconds_count", closed) + 1
          && value(s, "signalr_server_active_connections", active)
            === value(before, "signalr_server_active_connections", active),
        `${name}: the closed connection was not counted in signalr_server_connection_duration_seconds `
          + "with signalr_server_active_connections back where it was",
      );
      // The convention's buckets: the histogram has the 300 s bound.
      assert.ok(after.some((s) => s.name === "signalr_server_connection_duration_seconds_bucket"
        && s.labels.le === "300" && s.labels.signalr_transport === label));
    } finally {
      if (!stopped) await connection.stop();
    }
  });
}
