// The official @microsoft/signalr client against two conformance servers
// that share one Redis backplane: connections split across the two
// processes must see one hub.
//
// Run by tests/tests/scaleout.rs as a plain script (`node scaleout.test.mjs`,
// node:test reporting), which starts Redis and the servers and passes:
//   HUB_URL_A, HUB_URL_B   the conformance hub on each server
//   HUB_URL_C              (optional) a third server: broadcasts, ordering and,
//                          on a cluster, the SIGKILL scenario use it
//   HUB_PROTOCOL           json | messagepack
//   HUB_CLUSTER            1 when the servers share a Redis Cluster: the
//                          single-Redis restart scenario is skipped, the
//                          cluster scenarios run
// Scenarios that need the harness to act (stop/start Redis, kill a server,
// fail a shard over) print `#COMMAND` and wait for `ok …` on stdin.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import * as signalR from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";
import { inbox as collect } from "./inbox.mjs";

const urlA = process.env.HUB_URL_A;
const urlB = process.env.HUB_URL_B;
const urlC = process.env.HUB_URL_C;
const onCluster = process.env.HUB_CLUSTER === "1";
const protocolName = process.env.HUB_PROTOCOL ?? "json";
assert.ok(urlA && urlB, "HUB_URL_A and HUB_URL_B must be set");

const harness = createInterface({ input: process.stdin });
const harnessLines = harness[Symbol.asyncIterator]();
after(() => harness.close());

// Asks the Rust harness to act and waits until it has; returns what it
// said after `ok`.
async function askHarness(command) {
  process.stdout.write(`#${command}\n`);
  const { value, done } = await harnessLines.next();
  assert.ok(!done && value.startsWith("ok"), `harness answered ${value} to ${command}`);
  return value.slice(2).trim();
}

// Asks the Rust harness to act on Redis and waits until it has.
async function redis(action) {
  await askHarness(`redis ${action}`);
}

// Straight to WebSockets, as behind a load balancer without sticky sessions.
function connect(url, { token } = {}) {
  const options = { transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true };
  if (token !== undefined) options.accessTokenFactory = () => token;
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, options)
    .configureLogging(signalR.LogLevel.Warning);
  if (protocolName === "messagepack") builder.withHubProtocol(new MessagePackHubProtocol());
  const connection = builder.build();
  // Senders get their own broadcasts too; without a handler the client warns.
  connection.on("Receive", () => {});
  return connection;
}

async function started(url, options) {
  const connection = connect(url, options);
  await connection.start();
  return connection;
}

// Waits up to 10 s: deliveries across processes go through Redis.
const inbox = (connection) => collect(connection, 10000);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Messages from one node reach another in the order they were published,
// whatever their channel: once `marker` (sent to `to` by `from` after
// everything else) has arrived, nothing sent before it is still on its way.
async function flush(from, to, box) {
  const marker = `marker ${Math.random()}`;
  await from.invoke("SendToConnection", await to.invoke("GetConnectionId"), marker);
  await box.until(marker);
  box.messages.splice(box.messages.indexOf(marker), 1);
}

test("broadcast reaches the clients of every server", async () => {
  const urls = [urlA, urlA, urlB, urlB, ...(urlC ? [urlC] : [])];
  const clients = await Promise.all(urls.map((url) => started(url)));
  try {
    const boxes = clients.map(inbox);
    await clients[0].invoke("Broadcast", "from A");
    for (const box of boxes) assert.deepEqual(await box.next(1), ["from A"]);
    await clients[3].invoke("Broadcast", "from B");
    for (const box of boxes) assert.deepEqual(await box.next(2), ["from A", "from B"]);
    if (urlC) {
      await clients[4].invoke("Broadcast", "from C");
      for (const box of boxes) assert.deepEqual(await box.next(3), ["from A", "from B", "from C"]);
    }
  } finally {
    await Promise.all(clients.map((c) => c.stop()));
  }
});

test("SendToOthers skips only the caller, on both servers", async () => {
  const [a1, a2, b1] = await Promise.all([started(urlA), started(urlA), started(urlB)]);
  try {
    const [boxA1, boxA2, boxB1] = [a1, a2, b1].map(inbox);
    await a1.invoke("SendToOthers", "to others");
    assert.deepEqual(await boxA2.next(1), ["to others"]);
    assert.deepEqual(await boxB1.next(1), ["to others"]);
    await flush(b1, a1, boxA1);
    assert.deepEqual(boxA1.messages, []);
  } finally {
    await Promise.all([a1.stop(), a2.stop(), b1.stop()]);
  }
});

test("SendToConnection reaches one connection on the other server", async () => {
  const [a1, b1, b2] = await Promise.all([started(urlA), started(urlB), started(urlB)]);
  try {
    const [boxA1, boxB1, boxB2] = [a1, b1, b2].map(inbox);
    const target = await b1.invoke("GetConnectionId");
    await a1.invoke("SendToConnection", target, "just you");
    assert.deepEqual(await boxB1.next(1), ["just you"]);
    await flush(a1, b2, boxB2);
    assert.deepEqual(boxB2.messages, []);
    assert.deepEqual(boxA1.messages, []);
    // And back, to a connection on the first server.
    await b2.invoke("SendToConnection", await a1.invoke("GetConnectionId"), "back");
    assert.deepEqual(await boxA1.next(1), ["back"]);
  } finally {
    await Promise.all([a1.stop(), b1.stop(), b2.stop()]);
  }
});

test("groups across servers: join, send, leave, send", async () => {
  const [a1, a2, b1] = await Promise.all([started(urlA), started(urlA), started(urlB)]);
  try {
    const [boxA1, boxA2, boxB1] = [a1, a2, b1].map(inbox);
    await b1.invoke("JoinGroup", "room");
    await a2.invoke("JoinGroup", "room");
    // a1 is not a member and sends from the other server.
    await a1.invoke("SendToGroup", "room", "hello room");
    assert.deepEqual(await boxB1.next(1), ["hello room"]);
    assert.deepEqual(await boxA2.next(1), ["hello room"]);

    await b1.invoke("LeaveGroup", "room");
    await a1.invoke("SendToGroup", "room", "after leave");
    assert.deepEqual(await boxA2.next(2), ["hello room", "after leave"]);
    await flush(a1, b1, boxB1);
    assert.deepEqual(boxB1.messages, ["hello room"]);
    await flush(b1, a1, boxA1);
    assert.deepEqual(boxA1.messages, []);

    // The last member of the other server leaves: its server stops listening.
    await a2.invoke("LeaveGroup", "room");
    await b1.invoke("JoinGroup", "room");
    await b1.invoke("SendToGroup", "room", "only b1");
    assert.deepEqual(await boxB1.next(2), ["hello room", "only b1"]);
    await flush(b1, a2, boxA2);
    assert.deepEqual(boxA2.messages, ["hello room", "after leave"]);
  } finally {
    await Promise.all([a1.stop(), a2.stop(), b1.stop()]);
  }
});

test("SendToUser reaches the user's connections on both servers", async () => {
  const [aliceA, aliceB, bob] = await Promise.all([
    started(urlA, { token: "user-alice" }),
    started(urlB, { token: "user-alice" }),
    started(urlB, { token: "user-bob" }),
  ]);
  try {
    const [boxAliceA, boxAliceB, boxBob] = [aliceA, aliceB, bob].map(inbox);
    await bob.invoke("SendToUser", "alice", "hi alice");
    assert.deepEqual(await boxAliceA.next(1), ["hi alice"]);
    assert.deepEqual(await boxAliceB.next(1), ["hi alice"]);
    await aliceA.invoke("SendToUser", "bob", "hi bob");
    assert.deepEqual(await boxBob.next(1), ["hi bob"]);
    await flush(aliceA, aliceB, boxAliceB);
    assert.deepEqual(boxAliceB.messages, ["hi alice"]);
  } finally {
    await Promise.all([aliceA.stop(), aliceB.stop(), bob.stop()]);
  }
});

test("200 messages from one sender arrive in order on the other server", async () => {
  const [sender, ...receivers] = await Promise.all(
    [urlA, urlA, urlB, ...(urlC ? [urlC] : [])].map((url) => started(url)),
  );
  try {
    const boxes = receivers.map(inbox);
    const expected = Array.from({ length: 200 }, (_, i) => `message ${i}`);
    // Fire-and-forget, back to back: nothing waits between two sends.
    await Promise.all(expected.map((message) => sender.send("Broadcast", message)));
    for (const box of boxes) assert.deepEqual(await box.next(200, 30000), expected);
  } finally {
    await Promise.all([sender, ...receivers].map((c) => c.stop()));
  }
});

test("AskConnection: a client result from a connection on the other server", async () => {
  const asker = await started(urlA);
  const answerer = connect(urlB);
  answerer.on("Question", async (question) => {
    await sleep(5);
    return `${question}!`;
  });
  await answerer.start();
  try {
    const id = await answerer.invoke("GetConnectionId");
    assert.equal(await asker.invoke("AskConnection", id, "hey"), "hey!");
    const answers = await Promise.all(["a", "b", "c"].map((q) => asker.invoke("AskConnection", id, q)));
    assert.deepEqual(answers, ["a!", "b!", "c!"]);
    // No server holds this connection.
    await assert.rejects(asker.invoke("AskConnection", "no-such-connection", "?"));
    // The answerer's error travels back.
    const failing = connect(urlB);
    failing.on("Question", () => {
      throw new Error("no idea");
    });
    await failing.start();
    try {
      const failingId = await failing.invoke("GetConnectionId");
      await assert.rejects(asker.invoke("AskConnection", failingId, "q"), /no idea/);
    } finally {
      await failing.stop();
    }
  } finally {
    await Promise.all([asker.stop(), answerer.stop()]);
  }
});

test("a Redis restart: local delivery goes on, buffered messages and delivery resume", { skip: onCluster }, async () => {
  const [a1, b1] = await Promise.all([started(urlA), started(urlB)]);
  try {
    const [boxA1, boxB1] = [a1, b1].map(inbox);
    await b1.invoke("JoinGroup", "survivors");
    await a1.invoke("Broadcast", "before");
    assert.deepEqual(await boxB1.next(1), ["before"]);

    await redis("stop");
    // Redis is away: each server still serves its own clients at once.
    await a1.invoke("Broadcast", "while down");
    await boxA1.until("while down", 5000);
    assert.equal(await a1.invoke("Echo", "still up"), "still up");
    assert.equal(await b1.invoke("Echo", "still up"), "still up");

    await redis("start");
    // The message published while Redis was away is replayed once the
    // servers have reconnected and resubscribed.
    await boxB1.until("while down", 30000);
    // Delivery resumes both ways, including to the group joined before.
    await a1.invoke("SendToGroup", "survivors", "after restart");
    await boxB1.until("after restart", 30000);
    await b1.invoke("Broadcast", "from B after restart");
    await boxA1.until("from B after restart", 30000);
    // A message whose PUBLISH was in flight when Redis went away is
    // published again (its answer may have been lost with the connection);
    // a server that already had it drops the second copy: each arrives once,
    // in order.
    assert.deepEqual(boxB1.messages, ["before", "while down", "after restart", "from B after restart"]);
  } finally {
    await Promise.all([a1.stop(), b1.stop()]);
  }
});

test("cluster: a server killed with SIGKILL leaves no membership and no channel behind", { skip: !(onCluster && urlC) }, async () => {
  const a1 = await started(urlA);
  const [c1, c2] = [connect(urlC, { token: "user-doomed" }), connect(urlC)];
  try {
    const boxA1 = inbox(a1);
    await a1.invoke("JoinGroup", "shared");
    await askHarness("snapshot");
    await Promise.all([c1.start(), c2.start()]);
    const boxC1 = inbox(c1);
    await c1.invoke("JoinGroup", "shared");
    await c1.invoke("JoinGroup", "doomed");
    await c2.invoke("JoinGroup", "doomed");
    // The doomed server's memberships work across servers before the kill.
    await a1.invoke("SendToGroup", "doomed", "reach C");
    await boxC1.until("reach C");
    await a1.invoke("SendToUser", "doomed", "reach user");
    await boxC1.until("reach user");
    const c1Id = await c1.invoke("GetConnectionId");

    // The harness kills C and waits until the cluster has no subscription of
    // it left (it answers how long that took).
    const tookMs = await askHarness("kill-c");
    process.stdout.write(`# the killed server's channels were gone after ${tookMs} ms\n`);

    // No node holds the dead connection any more: a client result for it
    // fails at once (no node answers), not after a timeout.
    const started_ = Date.now();
    await assert.rejects(a1.invoke("AskConnection", c1Id, "?"));
    assert.ok(Date.now() - started_ < 2000, "a client result for a dead node's connection must fail at once");
    // Its groups and user are gone from the others: sends to them are no
    // error and reach nobody; the surviving member of a shared group still
    // gets its messages.
    await a1.invoke("SendToGroup", "doomed", "nobody");
    await a1.invoke("SendToUser", "doomed", "nobody");
    await a1.invoke("SendToGroup", "shared", "still here");
    await boxA1.until("still here");
    assert.deepEqual(boxA1.messages, ["still here"]);
  } finally {
    await Promise.allSettled([a1.stop(), c1.stop(), c2.stop()]);
  }
});

test("cluster: a shard failover while broadcasts flow loses nothing sent before or after it", { skip: !onCluster || !process.env.HUB_FAILOVER }, async () => {
  const [sender, receiver] = await Promise.all([started(urlA), started(urlB)]);
  try {
    const box = inbox(receiver);
    const before = Array.from({ length: 50 }, (_, i) => `before ${i}`);
    await Promise.all(before.map((m) => sender.send("Broadcast", m)));
    assert.deepEqual(await box.next(50, 10000), before, "every message sent before the failover arrives, in order");

    const during = [];
    let pumping = true;
    const pump = (async () => {
      for (let i = 0; pumping; i++) {
        const message = `during ${i}`;
        during.push(message);
        await sender.send("Broadcast", message);
        await sleep(10);
      }
    })();
    const tookMs = await askHarness("failover");
    await sleep(500);
    pumping = false;
    await pump;

    const after = Array.from({ length: 50 }, (_, i) => `after ${i}`);
    for (const m of after) await sender.send("Broadcast", m);
    await box.until("after 49", 20000);
    const got = box.messages;
    const gotDuring = got.filter((m) => m.startsWith("during "));
    const unique = [...new Set(gotDuring)];
    const lost = during.filter((m) => !unique.includes(m));
    process.stdout.write(
      `# failover took ${tookMs} ms; during it ${during.length} sent, ${unique.length} arrived, ` +
        `${gotDuring.length - unique.length} twice, lost: ${JSON.stringify(lost)}\n`,
    );
    assert.deepEqual(got.filter((m) => m.startsWith("after ")), after,
      "every message sent after the failover arrives exactly once, in order");
    // The receiving server may hear the shard over two subscriptions (the
    // demoted primary still relays): it drops the second copies.
    assert.equal(gotDuring.length - unique.length, 0,
      "no message sent during the failover arrives twice");
    assert.deepEqual(unique, during.filter((m) => unique.includes(m)),
      "what arrives of the messages sent during the failover arrives in the order sent");
  } finally {
    await Promise.all([sender.stop(), receiver.stop()]);
  }
});
