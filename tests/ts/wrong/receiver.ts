// expect: TS2345
// A receiver must implement every client method (`confirmReset` is missing).
import type { HubConnection } from "@microsoft/signalr";
import { createIStationClientReceiver } from "../generated/station.js";

export function wrong(connection: HubConnection): void {
  createIStationClientReceiver(connection).register({
    readingAdded(): void {},
  });
}
