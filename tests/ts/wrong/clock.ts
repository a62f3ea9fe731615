// expect: TS2554
// The clock hub's `getTime` takes no argument.
import type { HubConnection } from "@microsoft/signalr";
import { createIClockHub } from "../../../clock-demo/web/src/generated/clock.js";

export async function wrong(connection: HubConnection): Promise<string> {
  return createIClockHub(connection).getTime("now");
}
