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

function connect({ token, serverTimeoutMs, hubUrl = url, headers } = {}) {
  const options = { transport: signalR.HttpTransportType[transportName] };
  if (token !== undefined) options.accessTokenFactory = () => token;
  if (headers !== undefined) options.headers = headers;
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
// ---- Identity, authorization, caller context, filters ----

const secureUrl = url.replace(/\/hubs\/test$/, "/hubs/secure");

// Resolves with the error a connection closes with.
const closedWith = (connection) => new Promise((resolve) => connection.onclose(resolve));

// Rejects after `ms` unless `promise` settles first.
function within(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

const unauthorized = (method) => (error) => {
  assert.match(error.message, /unauthorized/);
  assert.match(error.message, new RegExp(`'${method}'`));
  return true;
};

test("Claims: the token's user and roles (distinct, ordinal order); anonymous has none", async () => {
  const [admin, anonymous] = await Promise.all([
    started({ token: "user-carol.role-editor.role-admin.role-editor.role-Zeta" }),
    started(),
  ]);
  try {
    assert.deepEqual(await admin.invoke("Claims"), { user: "carol", roles: ["Zeta", "admin", "editor"] });
    assert.deepEqual(await anonymous.invoke("Claims"), { user: null, roles: [] });
    const later = Math.floor(Date.now() / 1000) + 3600;
    const expiring = await started({ token: `user-dave.exp-${later}.role-ops` });
    assert.deepEqual(await expiring.invoke("Claims"), { user: "dave", roles: ["ops"] });
    await expiring.stop();
  } finally {
    await Promise.all([admin.stop(), anonymous.stop()]);
  }
});

test("malformed or expired tokens are refused (401 at negotiate)", async () => {
  const past = Math.floor(Date.now() / 1000) - 1;
  const future = Math.floor(Date.now() / 1000) + 3600;
  for (const token of [
    "user-",
    "user-a.b",
    "user-a.role-",
    "user-a.role-x-y",
    `user-a.exp-${past}`,
    "user-a.exp-12x",
    `user-a.exp-${future}.exp-${future}`,
    "user-a..role-x",
  ]) {
    await assert.rejects(connect({ token }).start(), undefined, `token ${token}`);
  }
});

test("AdminOnly: declared role; refused callers get 'unauthorized' and stay connected", async () => {
  const [admin, editor, anonymous] = await Promise.all([
    started({ token: "user-erin.role-admin" }),
    started({ token: "user-frank.role-editor" }),
    started(),
  ]);
  try {
    assert.equal(await admin.invoke("AdminOnly"), "admin ok");
    await assert.rejects(editor.invoke("AdminOnly"), unauthorized("AdminOnly"));
    await assert.rejects(anonymous.invoke("AdminOnly"), unauthorized("AdminOnly"));
    assert.equal(await editor.invoke("Echo", "still here"), "still here");
    assert.equal(await anonymous.invoke("Echo", "me too"), "me too");
    assert.equal(editor.state, signalR.HubConnectionState.Connected);
  } finally {
    await Promise.all([admin.stop(), editor.stop(), anonymous.stop()]);
  }
});

test("AuthenticatedOnly: any user passes, anonymous gets 'unauthorized'", async () => {
  const [user, anonymous] = await Promise.all([started({ token: "user-gina" }), started()]);
  try {
    assert.equal(await user.invoke("AuthenticatedOnly"), "authenticated ok");
    await assert.rejects(anonymous.invoke("AuthenticatedOnly"), unauthorized("AuthenticatedOnly"));
    assert.equal(await anonymous.invoke("Add", 1, 2), 3);
  } finally {
    await Promise.all([user.stop(), anonymous.stop()]);
  }
});

test("RequestHeader: headers of the request that opened the connection, case-insensitive", async () => {
  const c = await started({ headers: { "X-Conformance-Probe": "probe-42" } });
  try {
    assert.equal(await c.invoke("RequestHeader", "x-conformance-probe"), "probe-42");
    assert.equal(await c.invoke("RequestHeader", "X-CONFORMANCE-PROBE"), "probe-42");
    assert.equal(await c.invoke("RequestHeader", "x-not-sent"), null);
  } finally {
    await c.stop();
  }
});

test("SetItem/GetItem: per-connection items, invisible to other connections", async () => {
  const [a, b] = await Promise.all([started(), started()]);
  try {
    await a.invoke("SetItem", "color", "blue");
    await a.invoke("SetItem", "size", "L");
    assert.equal(await a.invoke("GetItem", "color"), "blue");
    assert.equal(await a.invoke("GetItem", "size"), "L");
    assert.equal(await a.invoke("GetItem", "missing"), null);
    assert.equal(await b.invoke("GetItem", "color"), null);
    await b.invoke("SetItem", "color", "red");
    assert.equal(await a.invoke("GetItem", "color"), "blue");
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test("AbortMe: the server closes the caller's connection with an error", async () => {
  const [c, bystander] = await Promise.all([started(), started()]);
  try {
    const closed = closedWith(c);
    // The reply may or may not come before the Close.
    c.invoke("AbortMe").catch(() => {});
    const error = await within(closed, 5000, "AbortMe closes the connection");
    assert.ok(error, "closed with an error");
    assert.match(String(error), /error/);
    assert.equal(c.state, signalR.HubConnectionState.Disconnected);
    assert.equal(await bystander.invoke("Echo", "unaffected"), "unaffected");
  } finally {
    await bystander.stop();
  }
});

test("Kick: one connection aborts another by id", async () => {
  const [kicker, victim] = await Promise.all([started(), started()]);
  try {
    const closed = closedWith(victim);
    const id = await victim.invoke("GetConnectionId");
    assert.equal(await kicker.invoke("Kick", id), true);
    const error = await within(closed, 5000, "Kick closes the connection");
    assert.ok(error, "closed with an error");
    assert.equal(await kicker.invoke("Kick", "no-such-connection"), false);
    assert.equal(await kicker.invoke("Echo", "kicker stays"), "kicker stays");
  } finally {
    await kicker.stop();
  }
});

test("the filter blocks 'blocked-by-filter' before the method runs", async () => {
  const [c, listener] = await Promise.all([started(), started()]);
  try {
    const box = inbox(listener);
    await assert.rejects(c.invoke("Echo", "blocked-by-filter"), /blocked by filter/);
    await assert.rejects(c.invoke("Broadcast", "blocked-by-filter"), /blocked by filter/);
    await c.invoke("Broadcast", "allowed");
    assert.deepEqual(await box.next(1), ["allowed"]);
    await settle(listener);
    assert.deepEqual(box.messages, ["allowed"]);
    assert.equal(await c.invoke("Echo", "fine"), "fine");
  } finally {
    await Promise.all([c.stop(), listener.stop()]);
  }
});

test("InvocationCount counts what authorization and the filter passed on", async () => {
  const c = await started({ token: "user-hank" });
  try {
    assert.equal(await c.invoke("InvocationCount"), 0);
    assert.equal(await c.invoke("Echo", "one"), "one");
    await assert.rejects(c.invoke("Echo", "blocked-by-filter"), /blocked by filter/);
    await assert.rejects(c.invoke("AdminOnly"), /unauthorized/);
    await assert.rejects(c.invoke("Fail", "counted"), /counted/);
    assert.equal(await c.invoke("InvocationCount"), 3);
  } finally {
    await c.stop();
  }
});

test("reject=filter: the filter's connect hook refuses the connection", async () => {
  const c = connect({ hubUrl: `${url}?reject=filter` });
  const closed = closedWith(c);
  let started_ = true;
  try {
    await c.start();
  } catch {
    started_ = false;
  }
  if (started_) {
    await within(closed, 2000, "a refused connection closes");
    await assert.rejects(c.invoke("Echo", "nope"));
  }
  assert.equal(c.state, signalR.HubConnectionState.Disconnected);
});

test("/hubs/secure: anonymous gets 401 at negotiate, a user gets Whoami", async () => {
  await assert.rejects(connect({ hubUrl: secureUrl }).start(), /401|Unauthorized/);
  const c = await started({ hubUrl: secureUrl, token: "user-ivy.role-admin" });
  try {
    assert.equal(await c.invoke("Whoami"), "ivy");
  } finally {
    await c.stop();
  }
});

test("expiry: a connection whose token expires is closed by the server", async () => {
  const expiry = Math.floor(Date.now() / 1000) + 2;
  const c = await started({ token: `user-jill.exp-${expiry}` });
  const closed = closedWith(c);
  assert.equal(await c.invoke("Whoami"), "jill");
  // Closed within 5 s after the expiry, as the contract says.
  const deadline = expiry * 1000 + 5000 - Date.now();
  await within(closed, deadline, "the expired connection closes");
  assert.equal(c.state, signalR.HubConnectionState.Disconnected);
  assert.ok(Date.now() >= expiry * 1000 - 50, "not closed before the expiry");
});

test("the client uses the expected transport", { skip: !process.env.HUB_EXPECT_TRANSPORT }, async () => {
  const c = await started();
  try {
    const used = c.connection.transport.constructor.name;
    assert.equal(used, `${process.env.HUB_EXPECT_TRANSPORT}Transport`.replace("WebSocketsTransport", "WebSocketTransport"));
  } finally {
    await c.stop();
  }
});
