// The chat page, against the TypeScript generated from the Rust contract
// (src/generated/chat.ts, from `IChatHub` and `IChatClient` in
// examples/src/chat.rs). Compiled with `tsc -p examples/web/chat` into
// dist/, which the `chat` binary bundles; a test checks dist/ is up to date.
//
// `?user=NAME` signs in (bearer token `user-NAME`), `&role=ROLE` (repeatable)
// adds a role (token `user-NAME.role-ROLE`: `&role=moderator` may type
// `/announce TEXT`), `?room=ROOM` picks the room (default lobby).
import type * as SignalR from "@microsoft/signalr";
import { createIChatHub, createIChatClientReceiver } from "./generated/chat.js";
import type { ChatMessage } from "./generated/chat.js";

// The official browser client, loaded by /lib/signalr.min.js.
declare const signalR: typeof SignalR;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing`);
  return found as T;
}

const params = new URLSearchParams(location.search);
const user = params.get("user");
const token = user === null ? null : `user-${user}${params.getAll("role").map((role) => `.role-${role}`).join("")}`;
const room = params.get("room") ?? "lobby";
const statusEl = element("status");
const messagesEl = element<HTMLUListElement>("messages");
const form = element<HTMLFormElement>("post");
const input = element<HTMLInputElement>("text");
element("room").textContent = room;

function setStatus(state: "connecting" | "connected" | "disconnected", text: string): void {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function append(from: string | null, text: string): void {
  const item = document.createElement("li");
  if (from === null) {
    item.className = "notice";
    item.textContent = text;
  } else {
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = `${from}: `;
    item.append(who, text);
  }
  messagesEl.append(item);
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

const connection = new signalR.HubConnectionBuilder()
  .withUrl("/hubs/chat", token === null ? {} : { accessTokenFactory: () => token })
  .withAutomaticReconnect()
  .configureLogging(signalR.LogLevel.Warning)
  .build();
const chat = createIChatHub(connection);

createIChatClientReceiver(connection).register({
  messagePosted(message: ChatMessage): void {
    append(message.from, message.text);
  },
  whispered(message: ChatMessage): void {
    append(`${message.from} (whisper)`, message.text);
  },
  joined(joinedRoom: string, who: string): void {
    append(null, `${who} joined ${joinedRoom}`);
  },
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (text === "") return;
  input.value = "";
  if (text.startsWith("/announce ")) {
    // Moderators only: anyone else gets an error and stays connected.
    chat
      .announce(room, text.slice("/announce ".length))
      .catch((error: unknown) => append(null, `not announced: ${String(error)}`));
  } else {
    chat.post(room, text).catch((error: unknown) => append(null, `not posted: ${String(error)}`));
  }
});

async function join(): Promise<void> {
  await chat.join(room);
  const me = await chat.whoami();
  setStatus("connected", me === null ? "connected as a guest (read only)" : `connected as ${me}`);
}

// A new connection is in no group: join again after a reconnect.
connection.onreconnecting(() => setStatus("connecting", "reconnecting…"));
connection.onreconnected(() => void join());
connection.onclose(() => setStatus("disconnected", "disconnected"));

async function start(): Promise<void> {
  try {
    await connection.start();
    await join();
  } catch (error: unknown) {
    setStatus("disconnected", `cannot connect: ${String(error)}`);
  }
}
void start();
