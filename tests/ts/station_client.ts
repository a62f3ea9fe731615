// The station contract from TypeScript: every kind of call through the
// wrapper generated from the Rust traits (tests/src/station.rs), against
// the Rust StationHub. Compiled with `tsc --strict` and run with node by
// tests/tests/typescript.rs, which passes:
//   STATION_URL  the hub, http://127.0.0.1:PORT/hubs/station
//   INTEROP_DIR  tests/interop, where @microsoft/signalr is installed
import type * as SignalR from "@microsoft/signalr";
import { createRequire } from "node:module";
import {
  createIStationClientReceiver,
  createIStationHub,
  type Reading,
} from "./generated/station.js";

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

const url = process.env.STATION_URL;
const interopDir = process.env.INTEROP_DIR;
check(url !== undefined && interopDir !== undefined, "STATION_URL and INTEROP_DIR must be set");

const signalR = createRequire(`${interopDir}/package.json`)("@microsoft/signalr") as typeof SignalR;
const connection = new signalR.HubConnectionBuilder()
  .withUrl(url!)
  .configureLogging(signalR.LogLevel.Warning)
  .build();
const hub = createIStationHub(connection);
const added: Reading[] = [];
const asked: string[] = [];
const registration = createIStationClientReceiver(connection).register({
  readingAdded(reading: Reading): void {
    added.push(reading);
  },
  confirmReset(stationId: string): boolean {
    asked.push(stationId);
    return stationId === "obsolete";
  },
});

const reading: Reading = {
  stationId: "north",
  celsius: 21.5,
  takenAt: "2024-05-01T12:00:00.250Z",
  note: null,
  source: { type: "sensor", sensorId: 7 },
  extras: { humidity: 40 },
};

await connection.start();
try {
  check((await hub.addReading(reading)) === 1, "addReading counts");
  const hot: Reading = {
    ...reading,
    stationId: "south",
    celsius: 38,
    note: "sunny",
    source: { type: "manual", by: "ann" },
  };
  check((await hub.addReading(hot)) === 1, "addReading counts per station");
  for (let i = 0; i < 100 && added.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
  check(added.length === 2, `readingAdded twice, got ${added.length}`);
  check(added[0].takenAt === reading.takenAt, `a date is a string: ${added[0].takenAt}`);
  check(added[1].source.type === "manual" && added[1].source.by === "ann", "a tagged enum");

  const latest = await hub.latest("south");
  check(latest !== null && latest.note === "sunny" && latest.celsius === 38, "latest");
  check((await hub.latest("nowhere")) === null, "Option is null");

  const streamed: Reading[] = await new Promise((resolve, reject) => {
    const items: Reading[] = [];
    hub.readings("north", 10).subscribe({
      next: (item) => items.push(item),
      error: reject,
      complete: () => resolve(items),
    });
  });
  check(streamed.length === 1 && streamed[0].extras.humidity === 40, "a server stream");

  const upload = new signalR.Subject<Reading>();
  const uploaded = hub.uploadReadings(upload);
  upload.next({ ...reading, celsius: 1 });
  upload.next({ ...reading, celsius: 2 });
  upload.complete();
  check((await uploaded) === 2, "an upload stream");

  await hub.log("fire-and-forget");
  let lines: string[] = [];
  for (let i = 0; i < 100 && !lines.includes("fire-and-forget"); i++) {
    lines = await hub.logLines();
  }
  check(lines.includes("fire-and-forget"), "send reached the hub");

  const levels = await hub.levels();
  check(levels.north === "NORMAL" && levels.south === "HEAT_WARNING", JSON.stringify(levels));

  await hub.addReading({ ...reading, stationId: "obsolete" });
  check((await hub.reset("obsolete")) === true, "a client result: yes");
  check((await hub.reset("north")) === false, "a client result: no");
  check(asked.join(",") === "obsolete,north", `confirmReset asked ${asked.join(",")}`);
  check((await hub.latest("obsolete")) === null, "reset deleted the readings");

  let failed = "";
  try {
    await hub.addReading({ ...reading, celsius: -300 });
  } catch (error) {
    failed = String(error);
  }
  check(failed.includes("absolute zero"), `a hub error reaches the caller: ${failed}`);

  registration.dispose();
  await hub.addReading(reading);
  await new Promise((r) => setTimeout(r, 200));
  check(added.length === 3, `no handler after dispose(): ${added.length}`);
  console.log("station: ok");
} finally {
  await connection.stop();
}
