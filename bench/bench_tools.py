"""Latency Rejoinder adds to tool turns, against the same scripted upstream called directly.

Measures, over N rounds each (all servers on loopback, SQLite storage):

* function round trip: POST /v1/responses -> function_call, then POST with the
  function_call_output (previous_response_id) -> final message. Baseline: the same two
  streamed chat completions sent to the fake upstream directly.
* MCP round trip: one POST /v1/responses that lists the MCP server's tools, runs one call and
  answers. Baselines: the same two chat completions plus one MCP tool call, over a warm session,
  and over a new session (initialize, list, call, close) as a response must open one.

Everything runs in one process on shared cores, so the figures include GIL contention between
the servers; compare rows with each other, not with production numbers.

Run: ``python bench/bench_tools.py [--rounds 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from rejoinder.config import Settings
from rejoinder.http.app import create_app
from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, calls, text
from tests.mcp_server import FUNCTION_TOOLS, McpLog, build_server

MODEL = "bench-model"


def scripted(body: dict[str, Any]) -> Turn:
    """Call get_user_id once, then answer with its result."""
    if any(m["role"] == "tool" for m in body["messages"]):
        return text("charlie is " + body["messages"][-1]["content"])
    return calls(("get_user_id", {"username": "charlie"}))


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000, statistics.fmean(ordered) * 1000


def timed(rounds: int, warmup: int, fn: Callable[[], None]) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()

    upstream = FakeUpstream()
    upstream.responder = scripted
    with tempfile.TemporaryDirectory() as tmp, ThreadServer(upstream.app) as up, \
            ThreadServer(build_server(McpLog()).streamable_http_app()) as mcp_srv:
        settings = Settings(data_dir=Path(tmp), storage_url=f"sqlite+aiosqlite:///{tmp}/bench.db",
                            models={MODEL: {"base_url": up.url + "/v1"}}, embedded={"enabled": "off"})
        mcp_url = mcp_srv.url + "/mcp"
        with ThreadServer(create_app(settings)) as rj, httpx.Client(base_url=rj.url, timeout=30) as http:
            direct = openai.OpenAI(base_url=up.url + "/v1", api_key="x", max_retries=0)
            chat_tools = [{"type": "function", "function": {"name": t["name"], "parameters": t["parameters"]}}
                          for t in FUNCTION_TOOLS]

            def direct_chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
                """One streamed chat completion, accumulated into an assistant message."""
                call: dict[str, Any] = {"id": "", "name": "", "arguments": ""}
                content = ""
                stream = direct.chat.completions.create(
                    model=MODEL, messages=messages, tools=chat_tools, stream=True,  # type: ignore[arg-type]
                    stream_options={"include_usage": True})
                for chunk in stream:
                    for choice in chunk.choices:
                        content += choice.delta.content or ""
                        for tc in choice.delta.tool_calls or []:
                            call["id"] = tc.id or call["id"]
                            if tc.function:
                                call["name"] += tc.function.name or ""
                                call["arguments"] += tc.function.arguments or ""
                return {"content": content, "call": call}

            def direct_round(with_mcp: Callable[[dict[str, Any]], str] | None) -> None:
                user = {"role": "user", "content": "charlie?"}
                first = direct_chat([user])["call"]
                result = with_mcp(json.loads(first["arguments"])) if with_mcp else "user_11111"
                assistant = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": first["id"], "type": "function",
                     "function": {"name": first["name"], "arguments": first["arguments"]}}]}
                direct_chat([user, assistant, {"role": "tool", "tool_call_id": first["id"], "content": result}])

            def function_round() -> None:
                r = http.post("/v1/responses", json={"model": MODEL, "input": "charlie?",
                                                     "tools": FUNCTION_TOOLS}).json()
                call = r["output"][0]
                out = {"type": "function_call_output", "call_id": call["call_id"], "output": "user_11111"}
                r2 = http.post("/v1/responses", json={"model": MODEL, "previous_response_id": r["id"],
                                                      "input": [out], "tools": FUNCTION_TOOLS}).json()
                assert r2["status"] == "completed", r2

            mcp_tool = {"type": "mcp", "server_label": "lab", "server_url": mcp_url, "require_approval": "never",
                        "allowed_tools": ["get_user_id"]}

            def mcp_round() -> None:
                r = http.post("/v1/responses", json={"model": MODEL, "input": "charlie?", "tools": [mcp_tool]}).json()
                assert [i["type"] for i in r["output"]] == ["mcp_list_tools", "mcp_call", "message"], r

            # A warm MCP session in a loop of its own thread, for the baseline's tool call.
            loop = asyncio.new_event_loop()
            session_box: dict[str, Any] = {}

            async def open_session() -> None:
                cm = streamable_http_client(mcp_url)
                streams = await cm.__aenter__()
                session = ClientSession(streams[0], streams[1])
                await session.__aenter__()
                await session.initialize()
                await session.list_tools()
                session_box.update(cm=cm, session=session)

            loop.run_until_complete(open_session())

            def mcp_direct(arguments: dict[str, Any]) -> str:
                result = loop.run_until_complete(session_box["session"].call_tool("get_user_id", arguments))
                return result.content[0].text

            async def cold_call(arguments: dict[str, Any]) -> str:
                async with streamable_http_client(mcp_url) as streams, \
                        ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    await session.list_tools()
                    result = await session.call_tool("get_user_id", arguments)
                    return result.content[0].text

            def mcp_direct_cold(arguments: dict[str, Any]) -> str:
                return loop.run_until_complete(cold_call(arguments))

            results = {
                "function round trip, direct upstream (2 chat calls)": timed(
                    args.rounds, args.warmup, lambda: direct_round(None)),
                "function round trip, via Rejoinder (2 requests)": timed(args.rounds, args.warmup, function_round),
                "MCP round trip, direct, warm MCP session (call only)": timed(
                    args.rounds, args.warmup, lambda: direct_round(mcp_direct)),
                "MCP round trip, direct, new session (init+list+call)": timed(
                    args.rounds, args.warmup, lambda: direct_round(mcp_direct_cold)),
                "MCP round trip, via Rejoinder (1 request)": timed(args.rounds, args.warmup, mcp_round),
            }
            try:
                loop.run_until_complete(session_box["session"].__aexit__(None, None, None))
                loop.run_until_complete(session_box["cm"].__aexit__(None, None, None))
            except Exception as exc:  # a bench teardown hiccup must not hide the figures
                print(f"(closing the baseline MCP session failed: {exc!r})")
            loop.close()

    print(f"{args.rounds} rounds after {args.warmup} warm-up; milliseconds")
    print(f"{'scenario':55} {'p50':>8} {'p99':>8} {'mean':>8}")
    rows = {name: percentiles(s) for name, s in results.items()}
    for name, (p50, p99, mean) in rows.items():
        print(f"{name:55} {p50:8.2f} {p99:8.2f} {mean:8.2f}")
    names = list(rows)
    for direct_name, via_name in ((names[0], names[1]), (names[2], names[4]), (names[3], names[4])):
        added = rows[via_name][0] - rows[direct_name][0]
        print(f"p50 added: {via_name.split(',')[0]} vs {direct_name.split(', ', 1)[1]}: {added:+.2f} ms")


if __name__ == "__main__":
    main()
