// The clock page, against the TypeScript generated from the Rust contract
// (src/generated/clock.ts, from `IClockHub` and `IClock` in
// clock-demo/src/lib.rs). Compiled with `tsc -p clock-demo/web` into
// dist/, which the server bundles; a test checks dist/ is up to date.
import type * as SignalR from "@microsoft/signalr";
import { createIClockHub, createIClockReceiver } from "./generated/clock.js";

// The official browser client, loaded by /lib/signalr.min.js.
declare const signalR: typeof SignalR;

const hubUrl = "/hubs/clock";

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing`);
  return found;
}

const timeEl = element("time");
const dateEl = element("date");
const statusEl = element("status");
const wireEl = element("wire");
element("hub").textContent = hubUrl;

function setStatus(state: "connecting" | "connected" | "disconnected", text: string): void {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

function show(iso: string): void {
  const now = new Date(iso);
  timeEl.textContent = now.toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });
  dateEl.textContent = now.toLocaleDateString(undefined, {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
  });
  wireEl.textContent = iso;
  timeEl.classList.remove("tick");
  void timeEl.offsetWidth; // restart the animation
  timeEl.classList.add("tick");
}

const connection = new signalR.HubConnectionBuilder()
  .withUrl(hubUrl)
  .withAutomaticReconnect()
  .configureLogging(signalR.LogLevel.Warning)
  .build();
const hub = createIClockHub(connection);

// IClock.show_time, pushed every second by the server's worker.
createIClockReceiver(connection).register({
  showTime(now: string): void {
    show(now);
  },
});

connection.onreconnecting(() => setStatus("connecting", "reconnecting…"));
connection.onreconnected(() => setStatus("connected", "connected"));
// Automatic reconnect gave up: keep trying, as the sample's client does.
connection.onclose(() => {
  setStatus("disconnected", "disconnected — retrying…");
  void start();
});

async function start(): Promise<void> {
  for (;;) {
    try {
      await connection.start();
      break;
    } catch {
      setStatus("disconnected", "server unreachable — retrying…");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
  setStatus("connected", "connected");
  try {
    // IClockHub.get_time: the time at once, not at the next tick.
    show(await hub.getTime());
  } catch {
    // The worker's next tick shows it.
  }
}
void start();
