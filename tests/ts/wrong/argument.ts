// expect: TS2345
// A number where the hub method takes a station id (a string).
import type { HubConnection } from "@microsoft/signalr";
import { createIStationHub } from "../generated/station.js";

export async function wrong(connection: HubConnection): Promise<void> {
  await createIStationHub(connection).latest(42);
}
