// The official @microsoft/signalr client against our conformance server.
//
// Run by tests/tests/interop_js.rs, which starts the servers and passes:
//   HUB_URL        the conformance hub (`/hubs/test`), keep-alive shortened
//   HUB_URL_LARGE  the same hub on a server whose receive limit is raised
//   HUB_PROTOCOL   json | messagepack
//   HUB_TRANSPORT  WebSockets | ServerSentEvents | LongPolling
import { test } from "node:test";
import assert from "node:assert/strict";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { inbox } from "./inbox.mjs";

const url = process.env.HUB_URL;
const largeUrl = process.env.HUB_URL_LARGE ?? url;
const protocolName = process.env.HUB_PROTOCOL ?? "json";
const transportName = process.env.HUB_TRANSPORT ?? "WebSockets";
assert.ok(url, "HUB_URL must be set");

function connect({ token, serverTimeoutMs, hubUrl = url } = {}) {
  const options = { transport: signalR.HttpTransportType[transportName] };
  if (token !== undefined) options.accessTokenFactory = () => token;
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(hubUrl, options)
    .configureLogging(signalR.LogLevel.Warning);
  if (protocolName === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  if (serverTimeoutMs) connection.serverTimeoutInMilliseconds = serverTimeoutMs;
  return connection;
}

async function started(options) {
  const connection = connect(options);
  await connection.start();
  return connection;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Invokes something on each connection so that all earlier sends from the
// server have been delivered (each connection's messages stay in order).
async function settle(...connections) {
  await Promise.all(connections.map((c) => c.invoke("Echo", "settle")));
}

test("echo keeps unicode, nesting and large strings", async () => {
  const c = await started();
  try {
    assert.equal(await c.invoke("Echo", "hello"), "hello");
    const unicode = "héllo wörld — 你好 🎉 \u0000 \"quoted\" \\ \n";
    assert.equal(await c.invoke("Echo", unicode), unicode);
    const nested = { a: [1, 2, { b: null, c: "x" }], d: { e: { f: [true, false] } }, g: 1.5 };
    assert.deepEqual(await c.invoke("Echo2", nested), nested);
    assert.equal(await c.invoke("Echo2", null), null);
  } finally {
    await c.stop();
  }
});

test("echo of a 1 MB string with the receive limit raised", async () => {
  const c = await started({ hubUrl: largeUrl });
  try {
    const big = "x".repeat(1024 * 1024);
    assert.equal(await c.invoke("Echo", big), big);
  } finally {
    await c.stop();
  }
});

test("add returns a 64-bit sum", async () => {
  const c = await started();
  try {
    assert.equal(await c.invoke("Add", 2, 3), 5);
    assert.equal(await c.invoke("Add", -7, 3), -4);
    assert.equal(await c.invoke("Add", 2 ** 40, 2 ** 40), 2 ** 41);
  } finally {
    await c.stop();
  }
});

test("GetConnectionId returns the negotiated id", async () => {
  const c = await started();
  try {
    const id = await c.invoke("GetConnectionId");
    assert.equal(typeof id, "string");
    assert.ok(id.length > 0);
    assert.equal(id, c.connectionId);
  } finally {
    await c.stop();
  }
});

test("broadcast reaches every client, others skips the caller", async () => {
  const clients = await Promise.all([started(), started(), started()]);
  try {
    const boxes = clients.map((client) => inbox(client));
    await clients[0].invoke("Broadcast", "to all");
    for (const box of boxes) assert.deepEqual(await box.next(1), ["to all"]);

    await clients[1].invoke("SendToOthers", "to others");
    await boxes[0].next(2);
    await boxes[2].next(2);
    await settle(...clients);
    assert.deepEqual(boxes[0].messages, ["to all", "to others"]);
    assert.deepEqual(boxes[1].messages, ["to all"]);
    assert.deepEqual(boxes[2].messages, ["to all", "to others"]);
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});

test("SendToConnection reaches only that connection", async () => {
  const [a, b] = await Promise.all([started(), started()]);
  try {
    const boxA = inbox(a);
    const boxB = inbox(b);
    const idB = await b.invoke("GetConnectionId");
    await a.invoke("SendToConnection", idB, "just you");
    assert.deepEqual(await boxB.next(1), ["just you"]);
    await settle(a, b);
    assert.deepEqual(boxA.messages, []);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test("groups: join, send, leave, send again is not received", async () => {
  const [member, outsider, sender] = await Promise.all([started(), started(), started()]);
  try {
    const boxMember = inbox(member);
    const boxOutsider = inbox(outsider);
    const group = `g-${Date.now()}`;
    await member.invoke("JoinGroup", group);
    await sender.invoke("SendToGroup", group, "first");
    assert.deepEqual(await boxMember.next(1), ["first"]);
    await member.invoke("LeaveGroup", group);
    await sender.invoke("SendToGroup", group, "second");
    await settle(member, outsider);
    assert.deepEqual(boxMember.messages, ["first"]);
    assert.deepEqual(boxOutsider.messages, []);
  } finally {
    await Promise.all([member.stop(), outsider.stop(), sender.stop()]);
  }
});

test("users: the access token names the user, SendToUser reaches all their connections", async () => {
  const user = `alice${Date.now()}`;
  const [a1, a2, bob, anonymous] = await Promise.all([
    started({ token: `user-${user}` }),
    started({ token: `user-${user}` }),
    started({ token: "user-bob" }),
    started(),
  ]);
  try {
    assert.equal(await a1.invoke("Whoami"), user);
    assert.equal(await bob.invoke("Whoami"), "bob");
    assert.equal(await anonymous.invoke("Whoami"), null);
    const boxes = [a1, a2, bob].map((client) => inbox(client));
    await anonymous.invoke("SendToUser", user, "for alice");
    assert.deepEqual(await boxes[0].next(1), ["for alice"]);
    assert.deepEqual(await boxes[1].next(1), ["for alice"]);
    await settle(bob);
    assert.deepEqual(boxes[2].messages, []);
  } finally {
    await Promise.all([a1, a2, bob, anonymous].map((c) => c.stop()));
  }
});

test("a token that names no user is rejected at negotiate", async () => {
  const c = connect({ token: "not-a-user-token" });
  await assert.rejects(c.start());
});

test("Fail's message reaches the client, the connection stays up", async () => {
  const c = await started();
  try {
    await assert.rejects(c.invoke("Fail", "boom-123"), (error) => {
      assert.match(error.message, /boom-123/);
      return true;
    });
    assert.equal(await c.invoke("Echo", "still here"), "still here");
  } finally {
    await c.stop();
  }
});

test("unknown method and wrong argument count give the .NET errors", async () => {
  const c = await started();
  try {
    await assert.rejects(c.invoke("Nope"), {
      message: "Failed to invoke 'Nope' due to an error on the server. HubException: Method does not exist.",
    });
    await assert.rejects(c.invoke("Add", 1), {
      message: "Failed to invoke 'Add' due to an error on the server.",
    });
    assert.equal(c.state, signalR.HubConnectionState.Connected);
    assert.equal(await c.invoke("Add", 1, 1), 2);
  } finally {
    await c.stop();
  }
});

test("an oversized message closes only its own connection", async () => {
  const [victim, bystander] = await Promise.all([started(), started()]);
  try {
    const closed = new Promise((resolve) => victim.onclose(resolve));
    const big = "y".repeat(64 * 1024);
    await assert.rejects(victim.invoke("Echo", big));
    const error = await closed;
    assert.match(String(error), /Connection closed with an error/);
    assert.equal(victim.state, signalR.HubConnectionState.Disconnected);
    assert.equal(await bystander.invoke("Echo", "fine"), "fine");
  } finally {
    await bystander.stop();
  }
});

test("200 concurrent invocations on one connection all complete", async () => {
  const c = await started();
  try {
    const calls = Array.from({ length: 200 }, (_, i) => c.invoke("Add", i, 1000));
    const results = await Promise.all(calls);
    assert.deepEqual(results, Array.from({ length: 200 }, (_, i) => i + 1000));
  } finally {
    await c.stop();
  }
});

test("keep-alive: a client with a short server timeout stays connected", async () => {
  // The server under test pings every second; the client gives up after 3 s
  // of silence, so only the server's pings keep it alive.
  const c = await started({ serverTimeoutMs: 3000 });
  try {
    let closedWith = null;
    c.onclose((error) => {
      closedWith = error ?? "closed";
    });
    await sleep(5000);
    assert.equal(closedWith, null);
    assert.equal(c.state, signalR.HubConnectionState.Connected);
    assert.equal(await c.invoke("Echo", "alive"), "alive");
  } finally {
    await c.stop();
  }
});

// Collects a server stream; resolves with its items once it completes.
function collect(stream) {
  const items = [];
  return new Promise((resolve, reject) => {
    stream.subscribe({
      next: (item) => items.push(item),
      complete: () => resolve(items),
      error: (error) => reject(error),
    });
  });
}

test("Counter streams 0..count-1, then completes", async () => {
  const c = await started();
  try {
    assert.deepEqual(await collect(c.stream("Counter", 5, 10)), [0, 1, 2, 3, 4]);
    assert.deepEqual(await collect(c.stream("Counter", 0, 10)), []);
    // Two streams at once on one connection.
    const [a, b] = await Promise.all([
      collect(c.stream("Counter", 3, 20)),
      collect(c.stream("Counter", 4, 5)),
    ]);
    assert.deepEqual(a, [0, 1, 2]);
    assert.deepEqual(b, [0, 1, 2, 3]);
  } finally {
    await c.stop();
  }
});

test("Counter: cancelling mid-way stops the stream, the connection stays up", async () => {
  const c = await started();
  try {
    const items = [];
    let completed = false;
    let subscription;
    const third = new Promise((resolve, reject) => {
      subscription = c.stream("Counter", 1000, 20).subscribe({
        next: (item) => {
          items.push(item);
          if (items.length === 3) resolve();
        },
        complete: () => {
          completed = true;
        },
        error: reject,
      });
    });
    await third;
    subscription.dispose();
    const seen = items.length;
    await sleep(300);
    assert.ok(seen >= 3 && seen < 1000);
    assert.equal(items.length, seen);
    assert.equal(completed, false);
    assert.equal(c.state, signalR.HubConnectionState.Connected);
    assert.deepEqual(await collect(c.stream("Counter", 2, 1)), [0, 1]);
    assert.equal(await c.invoke("Echo", "after cancel"), "after cancel");
  } finally {
    await c.stop();
  }
});

test("the wrong kind of invocation gets the .NET error texts", async () => {
  const c = await started();
  try {
    await assert.rejects(c.invoke("Counter", 3, 1), {
      message:
        "The client attempted to invoke the streaming 'Counter' method with a non-streaming invocation.",
    });
    await assert.rejects(collect(c.stream("Echo", "x")), {
      message:
        "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation.",
    });
    assert.equal(await c.invoke("Echo", "fine"), "fine");
  } finally {
    await c.stop();
  }
});

test("Sum adds a client-to-server stream", async () => {
  const c = await started();
  try {
    const numbers = new signalR.Subject();
    const total = c.invoke("Sum", numbers);
    for (let n = 1; n <= 100; n++) numbers.next(n);
    numbers.complete();
    assert.equal(await total, 5050);

    // Items spread over time, an empty stream, two uploads at once.
    const slow = new signalR.Subject();
    const slowTotal = c.invoke("Sum", slow);
    const empty = new signalR.Subject();
    const emptyTotal = c.invoke("Sum", empty);
    empty.complete();
    for (let n = 0; n < 5; n++) {
      slow.next(2 ** 40);
      await sleep(10);
    }
    slow.complete();
    assert.equal(await slowTotal, 5 * 2 ** 40);
    assert.equal(await emptyTotal, 0);
  } finally {
    await c.stop();
  }
});

test("Sum: an upload ended with an error fails the invocation with that error", async () => {
  const c = await started();
  try {
    const numbers = new signalR.Subject();
    const total = c.invoke("Sum", numbers);
    numbers.next(1);
    numbers.error(new Error("upload broke"));
    await assert.rejects(total, (error) => {
      assert.match(error.message, /upload broke/);
      return true;
    });
    // A stream argument where none is expected, and none where one is.
    const stray = new signalR.Subject();
    const echoed = c.invoke("Echo", "x", stray);
    stray.complete();
    await assert.rejects(echoed);
    await assert.rejects(c.invoke("Sum"), {
      message:
        "An unexpected error occurred invoking 'Sum' on the server. HubException: Client sent 0 stream(s), Hub method expects 1.",
    });
    assert.equal(await c.invoke("Echo", "still fine"), "still fine");
  } finally {
    await c.stop();
  }
});

test("AskClient: the server awaits the caller's answer (a client result)", async () => {
  const c = connect();
  c.on("Question", async (question) => {
    await sleep(5);
    return `answer to ${question}`;
  });
  await c.start();
  try {
    assert.equal(await c.invoke("AskClient", "why?"), "answer to why?");
    // Several at once, with the default limit of one invocation at a time.
    const answers = await Promise.all(
      ["a", "b", "c"].map((q) => c.invoke("AskClient", q)),
    );
    assert.deepEqual(answers, ["answer to a", "answer to b", "answer to c"]);
  } finally {
    await c.stop();
  }
});

test("AskClient: a client without a handler or with a failing one gives an error", async () => {
  const silent = await started();
  const failing = connect();
  failing.on("Question", () => {
    throw new Error("no idea");
  });
  await failing.start();
  try {
    await assert.rejects(silent.invoke("AskClient", "q"), (error) => {
      assert.match(error.message, /Client didn't provide a result/);
      return true;
    });
    await assert.rejects(failing.invoke("AskClient", "q"), (error) => {
      assert.match(error.message, /no idea/);
      return true;
    });
    assert.equal(await silent.invoke("Echo", "up"), "up");
  } finally {
    await Promise.all([silent.stop(), failing.stop()]);
  }
});

test("AskConnection: one client asks another", async () => {
  const [asker, answerer] = await Promise.all([started(), connect()]);
  answerer.on("Question", (q) => `${q}!`);
  await answerer.start();
  try {
    const id = await answerer.invoke("GetConnectionId");
    assert.equal(await asker.invoke("AskConnection", id, "hey"), "hey!");
  } finally {
    await Promise.all([asker.stop(), answerer.stop()]);
  }
});

test("64-bit integers keep their value", async () => {
  const c = await started();
  try {
    const big = Number.MAX_SAFE_INTEGER;
    assert.equal(await c.invoke("Add", big - 10, 10), big);
    assert.equal(await c.invoke("Add", -big + 10, -10), -big);
    assert.equal(await c.invoke("Add", 2 ** 32, 1), 2 ** 32 + 1);
  } finally {
    await c.stop();
  }
});

test("JSON and MessagePack clients share one hub", async () => {
  const other = protocolName === "json" ? new MessagePackHubProtocol() : new signalR.JsonHubProtocol();
  const mine = await started();
  const theirs = new signalR.HubConnectionBuilder()
    // The same transports as `mine`: the server may serve only some.
    .withUrl(url, { transport: signalR.HttpTransportType[transportName] })
    .withHubProtocol(other)
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  await theirs.start();
  try {
    const boxes = [inbox(mine), inbox(theirs)];
    const message = `mixed ${"é".repeat(3)} ${Date.now()}`;
    await theirs.invoke("Broadcast", message);
    assert.deepEqual(await boxes[0].next(1), [message]);
    assert.deepEqual(await boxes[1].next(1), [message]);
    assert.deepEqual(await collect(theirs.stream("Counter", 3, 1)), [0, 1, 2]);
  } finally {
    await Promise.all([mine.stop(), theirs.stop()]);
  }
});

// HUB_EXPECT_TRANSPORT (set with HUB_TRANSPORT=Auto on a server that serves
// fewer transports): the client fell back to this one.
test("the client uses the expected transport", { skip: !process.env.HUB_EXPECT_TRANSPORT }, async () => {
  const c = await started();
  try {
    const used = c.connection.transport.constructor.name;
    assert.equal(used, `${process.env.HUB_EXPECT_TRANSPORT}Transport`.replace("WebSocketsTransport", "WebSocketTransport"));
  } finally {
    await c.stop();
  }
});
