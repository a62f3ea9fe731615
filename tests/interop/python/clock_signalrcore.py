"""Python's signalrcore client receives the clock demo's time pushes.

Run by tests/tests/interop_signalrcore.rs, which serves the clock hub and
passes HUB_URL (the `/hubs/clock` URL) and HUB_TRANSPORT
(`ServerSentEvents` or `LongPolling`). Prints what it received; exits
non-zero unless three consecutive ticks arrived, each a later ISO 8601 time
than the one before, over the requested transport.
"""

import datetime
import os
import sys
import threading
import time

from signalrcore.hub_connection_builder import HubConnectionBuilder
from signalrcore.types import HttpTransportType

URL = os.environ["HUB_URL"]
TRANSPORT = HttpTransportType(os.environ.get("HUB_TRANSPORT", "ServerSentEvents"))
WANTED = 3
TIMEOUT = 30.0


def parse(value: str) -> datetime.datetime:
    # 2026-11-25T04:39:42.725123456Z: Python keeps microseconds only.
    text = value.rstrip("Z")
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6]}"
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)


def main() -> int:
    ticks = []
    errors = []
    enough = threading.Event()
    opened = threading.Event()

    def on_show_time(arguments) -> None:
        try:
            ticks.append(parse(arguments[0]))
        except Exception as error:  # reported below
            errors.append(f"cannot parse {arguments!r}: {error}")
        if len(ticks) >= WANTED:
            enough.set()

    connection = (
        HubConnectionBuilder()
        .with_url(URL, options={"transport": TRANSPORT})
        .build()
    )
    connection.on_open(opened.set)
    connection.on_error(lambda message: errors.append(f"hub error: {message}"))
    connection.on("ShowTime", on_show_time)
    connection.start()
    try:
        if not opened.wait(TIMEOUT):
            print("the connection did not open", file=sys.stderr)
            return 1
        used = type(connection.transport).__name__ if hasattr(connection, "transport") else "?"
        print(f"transport: {used}")
        if not enough.wait(TIMEOUT):
            print(f"only {len(ticks)} ticks in {TIMEOUT} s: {ticks}", file=sys.stderr)
            return 1
    finally:
        connection.stop()
        time.sleep(0.2)
    print("ticks:", [tick.isoformat() for tick in ticks])
    if errors:
        print("errors:", errors, file=sys.stderr)
        return 1
    if any(later <= earlier for earlier, later in zip(ticks, ticks[1:])):
        print("ticks are not increasing", file=sys.stderr)
        return 1
    now = datetime.datetime.now(datetime.timezone.utc)
    if abs((now - ticks[-1]).total_seconds()) > 60:
        print(f"the last tick {ticks[-1]} is far from now {now}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
