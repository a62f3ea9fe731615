// Stateful reconnect under fire: the official client, with
// `withStatefulReconnect()`, sends numbered messages to itself through the
// conformance hub (client → server: `SendToConnection(id, n)`, server →
// client: `Receive(n)`) while tests/tests/reconnect_proxy.rs cuts the TCP
// connection under it again and again.
//
// Protocol with the Rust test:
//   env HUB_URL       the hub, reached through the cutting proxy
//   env HUB_PROTOCOL  json | messagepack
//   stdout "ready"    the connection is up, numbered messages are flowing
//   stdin  "stop"     stop sending, wait for everything, report
//   stdout "result {...}"  sent, received, lost, duplicated, reordered
// Exits 0 when nothing was lost, duplicated or reordered.
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { createInterface } from "node:readline";

const url = process.env.HUB_URL;
const protocolName = process.env.HUB_PROTOCOL ?? "json";

const builder = new signalR.HubConnectionBuilder()
  .withUrl(url, { transport: signalR.HttpTransportType.WebSockets })
  .withStatefulReconnect()
  .configureLogging(process.env.HUB_LOG === "debug" ? signalR.LogLevel.Debug : signalR.LogLevel.Error);
if (protocolName === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
const connection = builder.build();
// The cuts must not look like a dead server.
connection.serverTimeoutInMilliseconds = 120_000;

let closedWith = null;
connection.onclose((error) => {
  closedWith = error ?? new Error("closed");
  process.stdout.write(`closed ${closedWith}\n`);
});

let last = 0;
let received = 0;
let duplicated = 0;
let reordered = 0;
let waiter = null;
connection.on("Receive", (message) => {
  const n = Number(message);
  received += 1;
  if (n === last + 1) {
    last = n;
  } else if (n <= last) {
    duplicated += 1;
  } else {
    reordered += 1;
    last = n;
  }
  if (waiter) waiter();
});

await connection.start();
const id = await connection.invoke("GetConnectionId");

let stopping = false;
createInterface({ input: process.stdin }).on("line", (line) => {
  if (line.trim() === "stop") stopping = true;
});

let sent = 0;
let sendError = null;
process.stdout.write("ready\n");
while (!stopping && !closedWith) {
  try {
    await connection.send("SendToConnection", id, String(sent + 1));
    sent += 1;
  } catch (error) {
    sendError = error;
    break;
  }
  // About 1,000 messages a second: the official client acknowledges once
  // a second at best (and skips an Ack that falls into a reconnect), so a
  // client sending without pause would overrun the server's replay buffer
  // (see ReplayBuffer::has_room) and be closed as a slow consumer.
  if (sent % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 10));
}

// Everything sent must come back, once, in order.
const deadline = Date.now() + 60_000;
while (last < sent && !closedWith && Date.now() < deadline) {
  await new Promise((resolve) => {
    waiter = resolve;
    setTimeout(resolve, 200);
  });
}
const lost = sent - (received - duplicated);
const result = {
  sent,
  received,
  last,
  lost,
  duplicated,
  reordered,
  closed: closedWith ? String(closedWith) : null,
  sendError: sendError ? String(sendError) : null,
};
process.stdout.write(`result ${JSON.stringify(result)}\n`);
await connection.stop().catch(() => {});
const ok = sent > 0 && lost === 0 && duplicated === 0 && reordered === 0 && last === sent && !result.closed && !result.sendError;
process.exit(ok ? 0 : 1);
