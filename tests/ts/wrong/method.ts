// expect: TS2551
// A method the hub does not have (a typo of `latest`).
import type { HubConnection } from "@microsoft/signalr";
import { createIStationHub } from "../generated/station.js";

export async function wrong(connection: HubConnection): Promise<void> {
  await createIStationHub(connection).lates("north");
}
