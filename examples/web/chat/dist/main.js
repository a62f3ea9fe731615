import { createIChatHub, createIChatClientReceiver } from "./generated/chat.js";
function element(id) {
    const found = document.getElementById(id);
    if (found === null)
        throw new Error(`#${id} is missing`);
    return found;
}
const params = new URLSearchParams(location.search);
const user = params.get("user");
const token = user === null ? null : `user-${user}${params.getAll("role").map((role) => `.role-${role}`).join("")}`;
const room = params.get("room") ?? "lobby";
const statusEl = element("status");
const messagesEl = element("messages");
const form = element("post");
const input = element("text");
element("room").textContent = room;
function setStatus(state, text) {
    statusEl.dataset.state = state;
    statusEl.textContent = text;
}
function append(from, text) {
    const item = document.createElement("li");
    if (from === null) {
        item.className = "notice";
        item.textContent = text;
    }
    else {
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
    messagePosted(message) {
        append(message.from, message.text);
    },
    whispered(message) {
        append(`${message.from} (whisper)`, message.text);
    },
    joined(joinedRoom, who) {
        append(null, `${who} joined ${joinedRoom}`);
    },
});
form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text === "")
        return;
    input.value = "";
    if (text.startsWith("/announce ")) {
        // Moderators only: anyone else gets an error and stays connected.
        chat
            .announce(room, text.slice("/announce ".length))
            .catch((error) => append(null, `not announced: ${String(error)}`));
    }
    else {
        chat.post(room, text).catch((error) => append(null, `not posted: ${String(error)}`));
    }
});
async function join() {
    await chat.join(room);
    const me = await chat.whoami();
    setStatus("connected", me === null ? "connected as a guest (read only)" : `connected as ${me}`);
}
// A new connection is in no group: join again after a reconnect.
connection.onreconnecting(() => setStatus("connecting", "reconnecting…"));
connection.onreconnected(() => void join());
connection.onclose(() => setStatus("disconnected", "disconnected"));
async function start() {
    try {
        await connection.start();
        await join();
    }
    catch (error) {
        setStatus("disconnected", `cannot connect: ${String(error)}`);
    }
}
void start();
