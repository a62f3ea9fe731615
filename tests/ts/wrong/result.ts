// expect: TS2322
// `latest` answers `Reading | null`, not a number.
import type { HubConnection } from "@microsoft/signalr";
import { createIStationHub } from "../generated/station.js";

export async function wrong(connection: HubConnection): Promise<number> {
  const celsius: number = await createIStationHub(connection).latest("north");
  return celsius;
}
