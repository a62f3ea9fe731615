// The official @microsoft/signalr client and a conformance server over TLS
// whose certificate comes from a throwaway CA that only the test knows.
//
// Run by tests/tests/tls_server.rs, which starts the server and passes:
//   HUB_URL          https://127.0.0.1:PORT/hubs/test
//   HUB_TRANSPORT    WebSockets | ServerSentEvents | LongPolling
//   EXPECT_TRUSTED   "1": NODE_EXTRA_CA_CERTS names the CA, the client connects;
//                    "0": it does not, the client must refuse the server
import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";

const url = process.env.HUB_URL;
const transportName = process.env.HUB_TRANSPORT ?? "WebSockets";
const trusted = process.env.EXPECT_TRUSTED === "1";
assert.ok(url?.startsWith("https://"), "HUB_URL must be an https URL");

function connect() {
  return new signalR.HubConnectionBuilder()
    .withUrl(url, { transport: signalR.HttpTransportType[transportName] })
    .configureLogging(signalR.LogLevel.None)
    .build();
}

test("a trusted server is reached over TLS", { skip: !trusted }, async () => {
  const c = connect();
  await c.start();
  try {
    assert.equal(c.connection.transport.constructor.name,
      `${transportName}Transport`.replace("WebSocketsTransport", "WebSocketTransport"));
    assert.equal(await c.invoke("Echo", "over tls"), "over tls");
  } finally {
    await c.stop();
  }
});

test("a server whose CA is not trusted is refused", { skip: trusted }, async () => {
  const c = connect();
  // Node's TLS error: "self-signed certificate in certificate chain" or
  // "unable to get local issuer certificate", wrapped by the client.
  await assert.rejects(c.start(), (e) => {
    const text = `${e?.message} ${e?.cause?.message ?? ""} ${e?.errors?.map((x) => x.message).join(" ") ?? ""}`;
    assert.match(text, /certificate|fetch failed|Failed to start the connection/i);
    return true;
  });
});
