// Dates from the clock demo's server to the official JavaScript client, as
// .NET's DateTime arrives: over MessagePack the timestamp extension, which
// the client decodes to a `Date`; over JSON an ISO 8601 string that
// `new Date(s)` parses.
//
// Run by tests/tests/interop_js.rs, which starts `clock-server` and passes:
//   CLOCK_HUB_URL  the hub, http://127.0.0.1:PORT/hubs/clock
import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

const url = process.env.CLOCK_HUB_URL;
assert.ok(url, "CLOCK_HUB_URL must be set");

// The worker ticks every second; a busy machine may delay a tick.
const TICK_PATIENCE_MS = 5_000;
// A time sent "now" by a server on this machine.
const MAX_SKEW_MS = 1_000;
const ISO_8601_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

async function started(protocol) {
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
    .configureLogging(signalR.LogLevel.Warning);
  if (protocol === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  await connection.start();
  return connection;
}

// The argument of the next `ShowTime` and when it arrived.
function nextTick(connection) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      connection.off("ShowTime");
      reject(new Error(`no ShowTime within ${TICK_PATIENCE_MS} ms`));
    }, TICK_PATIENCE_MS);
    connection.on("ShowTime", (now, ...rest) => {
      clearTimeout(timer);
      connection.off("ShowTime");
      resolve({ now, rest, receivedAt: Date.now() });
    });
  });
}

function assertNow(date, receivedAt) {
  assert.ok(!Number.isNaN(date.getTime()), `an invalid date: ${date}`);
  const skew = Math.abs(receivedAt - date.getTime());
  assert.ok(skew <= MAX_SKEW_MS, `${date.toISOString()} is ${skew} ms off ${new Date(receivedAt).toISOString()}`);
}

test("MessagePack: ShowTime and GetTime arrive as Dates", async () => {
  const connection = await started("messagepack");
  try {
    const { now, rest, receivedAt } = await nextTick(connection);
    assert.deepEqual(rest, []);
    assert.ok(now instanceof Date, `ShowTime got ${typeof now} ${JSON.stringify(now)}, not a Date`);
    assertNow(now, receivedAt);

    const answer = await connection.invoke("GetTime");
    assert.ok(answer instanceof Date, `GetTime returned ${typeof answer} ${JSON.stringify(answer)}`);
    assertNow(answer, Date.now());
  } finally {
    await connection.stop();
  }
});

test("JSON: ShowTime and GetTime arrive as ISO 8601 strings", async () => {
  const connection = await started("json");
  try {
    const { now, rest, receivedAt } = await nextTick(connection);
    assert.deepEqual(rest, []);
    assert.equal(typeof now, "string");
    assert.match(now, ISO_8601_UTC);
    assertNow(new Date(now), receivedAt);

    const answer = await connection.invoke("GetTime");
    assert.equal(typeof answer, "string");
    assert.match(answer, ISO_8601_UTC);
    assertNow(new Date(answer), Date.now());
  } finally {
    await connection.stop();
  }
});
