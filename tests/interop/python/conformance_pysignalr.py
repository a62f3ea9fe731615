"""Python's pysignalr client against the conformance server.

Run by tests/tests/interop_python.rs, which starts conformance-server and
passes HUB_URL (the `/hubs/test` URL) and HUB_PROTOCOL (`json` or
`messagepack`). Exits non-zero, naming the failed scenario, when any
scenario fails.
"""

import asyncio
import os
import sys
import time
import traceback

from pysignalr.client import SignalRClient
from pysignalr.messages import CompletionMessage
from pysignalr.protocol.json import JSONProtocol
from pysignalr.protocol.messagepack import MessagepackProtocol

URL = os.environ["HUB_URL"]
PROTOCOL = os.environ.get("HUB_PROTOCOL", "json")
TIMEOUT = 10.0


class Connection:
    """One started pysignalr client and what it received."""

    def __init__(self) -> None:
        protocol = MessagepackProtocol() if PROTOCOL == "messagepack" else JSONProtocol()
        self.client = SignalRClient(URL, protocol=protocol)
        self.received: list = []
        self.errors: list = []
        self._opened = asyncio.Event()
        self._task = None

        async def on_open() -> None:
            self._opened.set()

        async def on_receive(arguments) -> None:
            self.received.append(arguments[0])

        async def on_error(message: CompletionMessage) -> None:
            self.errors.append(message.error)

        self.client.on_open(on_open)
        self.client.on("Receive", on_receive)
        self.client.on_error(on_error)

    async def start(self) -> "Connection":
        self._task = asyncio.create_task(self.client.run())
        await asyncio.wait_for(self._opened.wait(), TIMEOUT)
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def invoke(self, method: str, *arguments) -> CompletionMessage:
        done = asyncio.get_running_loop().create_future()

        async def on_completion(message: CompletionMessage) -> None:
            if not done.done():
                done.set_result(message)

        await self.client.send(method, list(arguments), on_invocation=on_completion)
        return await asyncio.wait_for(done, TIMEOUT)

    async def result(self, method: str, *arguments):
        message = await self.invoke(method, *arguments)
        assert not message.error, f"{method} failed: {message.error}"
        return message.result

    async def wait_received(self, count: int) -> list:
        deadline = time.monotonic() + TIMEOUT
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"expected {count} messages, got {self.received}"
            await asyncio.sleep(0.01)
        return self.received


async def connections(count: int) -> list:
    return list(await asyncio.gather(*(Connection().start() for _ in range(count))))


async def stop_all(conns) -> None:
    await asyncio.gather(*(c.stop() for c in conns))


async def settle(*conns) -> None:
    """Each connection's messages arrive in order: after an answer to an
    invocation, everything the server sent before it has arrived."""
    for c in conns:
        assert await c.result("Echo", "settle") == "settle"


async def scenario_echo() -> None:
    [c] = await connections(1)
    try:
        assert await c.result("Echo", "hello") == "hello"
        text = "héllo wörld — 你好 🎉 \"quoted\" \\ \n"
        assert await c.result("Echo", text) == text
        nested = {"a": [1, 2, {"b": None, "c": "x"}], "d": {"e": [True, False]}, "g": 1.5}
        assert await c.result("Echo2", nested) == nested
    finally:
        await stop_all([c])


async def scenario_add() -> None:
    [c] = await connections(1)
    try:
        assert await c.result("Add", 2, 3) == 5
        assert await c.result("Add", -7, 3) == -4
        assert await c.result("Add", 2**40, 2**40) == 2**41
        assert await c.result("Add", 2**62, 2**62 - 1) == 2**63 - 1
    finally:
        await stop_all([c])


async def scenario_broadcast() -> None:
    conns = await connections(3)
    try:
        await conns[0].result("Broadcast", "to all")
        for c in conns:
            assert await c.wait_received(1) == ["to all"]
        await conns[1].result("SendToOthers", "to others")
        await conns[0].wait_received(2)
        await conns[2].wait_received(2)
        await settle(*conns)
        assert conns[1].received == ["to all"]
    finally:
        await stop_all(conns)


async def scenario_groups() -> None:
    member, outsider, sender = await connections(3)
    try:
        group = f"py-{time.time_ns()}"
        await member.result("JoinGroup", group)
        await sender.result("SendToGroup", group, "first")
        assert await member.wait_received(1) == ["first"]
        await member.result("LeaveGroup", group)
        await sender.result("SendToGroup", group, "second")
        await settle(member, outsider)
        assert member.received == ["first"]
        assert outsider.received == []
    finally:
        await stop_all([member, outsider, sender])


async def scenario_server_stream() -> None:
    [c] = await connections(1)
    try:
        items: list = []
        done = asyncio.get_running_loop().create_future()

        async def on_next(item) -> None:
            items.append(item)

        async def on_complete(message) -> None:
            if not done.done():
                done.set_result(message)

        async def on_error(message) -> None:
            if not done.done():
                done.set_exception(AssertionError(f"stream failed: {message.error}"))

        await c.client.stream("Counter", [5, 10], on_next, on_complete, on_error)
        await asyncio.wait_for(done, TIMEOUT)
        assert items == [0, 1, 2, 3, 4], items
    finally:
        await stop_all([c])


async def scenario_fail() -> None:
    [c] = await connections(1)
    try:
        message = await c.invoke("Fail", "boom-123")
        assert message.error and "boom-123" in message.error, message.error
        assert await c.result("Echo", "still here") == "still here"
    finally:
        await stop_all([c])


async def scenario_ask_client() -> None:
    c = Connection()

    async def on_question(arguments):
        return f"answer to {arguments[0]}"

    c.client.on("Question", on_question)
    await c.start()
    try:
        assert await c.result("AskClient", "why?") == "answer to why?"
    finally:
        await stop_all([c])


SCENARIOS = [
    scenario_echo,
    scenario_add,
    scenario_broadcast,
    scenario_groups,
    scenario_server_stream,
    scenario_fail,
    scenario_ask_client,
]


async def main() -> int:
    failed = []
    for scenario in SCENARIOS:
        name = f"{scenario.__name__} ({PROTOCOL})"
        try:
            await asyncio.wait_for(scenario(), 4 * TIMEOUT)
            print(f"ok   {name}", flush=True)
        except BaseException:
            failed.append(name)
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
    print(f"{len(SCENARIOS) - len(failed)} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
