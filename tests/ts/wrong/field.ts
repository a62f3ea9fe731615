// expect: TS2561
// The wire name of `station_id` is `stationId` (serde's rename_all).
import type { HubConnection } from "@microsoft/signalr";
import { createIStationHub } from "../generated/station.js";

export async function wrong(connection: HubConnection): Promise<void> {
  await createIStationHub(connection).addReading({
    station_id: "north",
    celsius: 1,
    takenAt: "2024-01-01T00:00:00Z",
    note: null,
    source: { type: "manual", by: "ann" },
    extras: {},
  });
}
