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
from collections.abc import Awaitable, Callable
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


async def atimed(rounds: int, warmup: int, fn: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(warmup):
        await fn()
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        await fn()
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
        settings = Settings(data_dir=Path(tmp), storage_url=f"sqlite:///{tmp}/bench.db",
                            models={MODEL: {"base_url": up.url + "/v1"}}, embedded={"enabled": "off"})
        mcp_url = mcp_srv.url + "/mcp"
        with ThreadServer(create_app(settings)) as rj, httpx.Client(base_url=rj.url, timeout=30) as http:
            direct = openai.AsyncOpenAI(base_url=up.url + "/v1", api_key="x", max_retries=0)
            chat_tools = [{"type": "function", "function": {"name": t["name"], "parameters": t["parameters"]}}
                          for t in FUNCTION_TOOLS]

            async def direct_chat(messages: list[dict[str, Any]]) -> dict[str, Any]:
                """One streamed chat completion, accumulated into a call (or text)."""
                call: dict[str, Any] = {"id": "", "name": "", "arguments": ""}
                content = ""
                stream = await direct.chat.completions.create(
                    model=MODEL, messages=messages, tools=chat_tools, stream=True,  # type: ignore[arg-type]
                    stream_options={"include_usage": True})
                async for chunk in stream:
                    for choice in chunk.choices:
                        content += choice.delta.content or ""
                        for tc in choice.delta.tool_calls or []:
                            call["id"] = tc.id or call["id"]
                            if tc.function:
                                call["name"] += tc.function.name or ""
                                call["arguments"] += tc.function.arguments or ""
                return {"content": content, "call": call}

            async def direct_round(tool: Callable[[dict[str, Any]], Awaitable[str]] | None) -> None:
                user = {"role": "user", "content": "charlie?"}
                first = (await direct_chat([user]))["call"]
                result = await tool(json.loads(first["arguments"])) if tool else "user_11111"
                assistant = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": first["id"], "type": "function",
                     "function": {"name": first["name"], "arguments": first["arguments"]}}]}
                await direct_chat([user, assistant, {"role": "tool", "tool_call_id": first["id"], "content": result}])

            async def cold_call(arguments: dict[str, Any]) -> str:
                async with streamable_http_client(mcp_url) as streams, \
                        ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    await session.list_tools()
                    result = await session.call_tool("get_user_id", arguments)
                    return result.content[0].text  # type: ignore[union-attr]

            async def baselines() -> dict[str, list[float]]:
                """The direct rows, in one task: MCP sessions must close in the task that opened them."""
                out = {"function round trip, direct upstream (2 chat calls)":
                       await atimed(args.rounds, args.warmup, lambda: direct_round(None))}
                async with streamable_http_client(mcp_url) as streams, \
                        ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    await session.list_tools()

                    async def warm_call(arguments: dict[str, Any]) -> str:
                        result = await session.call_tool("get_user_id", arguments)
                        return result.content[0].text  # type: ignore[union-attr]

                    out["MCP round trip, direct, warm MCP session (call only)"] = await atimed(
                        args.rounds, args.warmup, lambda: direct_round(warm_call))
                out["MCP round trip, direct, new session (init+list+call)"] = await atimed(
                    args.rounds, args.warmup, lambda: direct_round(cold_call))
                await direct.close()
                return out

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

            direct_rows = asyncio.run(baselines())
            results = {
                **{k: v for k, v in direct_rows.items() if k.startswith("function")},
                "function round trip, via Rejoinder (2 requests)": timed(args.rounds, args.warmup, function_round),
                **{k: v for k, v in direct_rows.items() if k.startswith("MCP")},
                "MCP round trip, via Rejoinder (1 request)": timed(args.rounds, args.warmup, mcp_round),
            }

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
