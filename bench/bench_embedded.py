"""The embedded model: time to first token and tokens/s through Rejoinder vs llama-cpp-python direct.

Both sides load the same GGUF with the same context size and thread default and answer the same
prompt at temperature 0; runs alternate (direct, Rejoinder, direct, ...) so that load from other
processes hits both alike. Rejoinder is a real ``rejoinder serve`` process streaming
``/v1/responses`` over loopback; TTFT is measured to the first ``response.output_text.delta``.
A last round sends ``--concurrency`` requests at once, to show the queue serving them in turn.

    python bench/bench_embedded.py [--runs 5] [--tokens 64] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import rejoinder, rss_mb
from rejoinder.backends.embedded import find_model_file
from rejoinder.config import EmbeddedConfig

PROMPT = "Write a short story about a robot who learns to paint."


def direct_run(llm: Any, tokens: int) -> tuple[float, float, int]:
    """(TTFT s, tokens/s after the first, tokens) from llama-cpp-python's own streaming chat call."""
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], max_tokens=tokens,
                                            temperature=0, top_p=1.0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            last = time.perf_counter()
            if n == 0:
                first = last
            n += 1
    return first - start, (n - 1) / (last - first) if n > 1 else 0.0, n


def rejoinder_run(url: str, model: str, tokens: int) -> tuple[float, float, int]:
    """The same through Rejoinder: a streamed Responses call, timed on the client."""
    body = {"model": model, "input": PROMPT, "max_output_tokens": tokens, "temperature": 0, "top_p": 1.0,
            "stream": True, "store": False}
    start = time.perf_counter()
    first = last = 0.0
    n = 0
    with httpx.stream("POST", url + "/v1/responses", json=body, timeout=300) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if line.startswith("data: ") and '"response.output_text.delta"' in line:
                last = time.perf_counter()
                if n == 0:
                    first = last
                n += 1
    return first - start, (n - 1) / (last - first) if n > 1 else 0.0, n


async def concurrent_round(url: str, model: str, tokens: int, concurrency: int) -> tuple[float, int, list[float]]:
    """Wall time, total output tokens and each request's TTFT for ``concurrency`` requests at once."""

    async def one(client: httpx.AsyncClient) -> tuple[int, float]:
        start = time.perf_counter()
        ttft = 0.0
        async with client.stream("POST", "/v1/responses", json={
            "model": model, "input": PROMPT, "max_output_tokens": tokens, "temperature": 0, "stream": True,
            "store": False,
        }) as r:
            async for line in r.aiter_lines():
                if not ttft and '"response.output_text.delta"' in line:
                    ttft = time.perf_counter() - start
                if line.startswith("data: ") and ('"response.completed"' in line or '"response.incomplete"' in line):
                    usage = json.loads(line[6:])["response"]["usage"]
                    return usage["output_tokens"], ttft
        return 0, ttft

    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(client) for _ in range(concurrency)))
        return time.perf_counter() - start, sum(n for n, _ in results), sorted(t for _, t in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    from llama_cpp import Llama

    config = EmbeddedConfig()
    path = find_model_file(config)
    if path is None:
        sys.exit("The embedded model is not installed: run scripts/install.")
    llm = Llama(str(path), n_ctx=config.n_ctx, verbose=False)
    extra = {"models": {}, "embedded": {"enabled": "on"}}
    with rejoinder("http://127.0.0.1:9", extra=extra) as (url, pid):
        direct_run(llm, 16)  # warm both sides: model load, first grammar-free decode
        rejoinder_run(url, config.name, 16)
        direct: list[tuple[float, float, int]] = []
        served: list[tuple[float, float, int]] = []
        for _ in range(args.runs):
            direct.append(direct_run(llm, args.tokens))
            served.append(rejoinder_run(url, config.name, args.tokens))
        wall, total, ttfts = asyncio.run(concurrent_round(url, config.name, args.tokens, args.concurrency))
        rss = rss_mb(pid)

    def line(label: str, runs: list[tuple[float, float, int]]) -> str:
        ttft = statistics.median(r[0] for r in runs) * 1000
        rate = statistics.median(r[1] for r in runs)
        tokens = statistics.median(r[2] for r in runs)
        return f"{label:<24} TTFT p50 {ttft:7.1f} ms   decode p50 {rate:6.1f} tokens/s   ({tokens:.0f} tokens)"

    print(f"SmolLM2-135M Q4_1, n_ctx {config.n_ctx}, {args.runs} runs of {args.tokens} tokens, temperature 0")
    print(line("llama-cpp-python", direct))
    print(line("Rejoinder /v1/responses", served))
    print(f"{args.concurrency} concurrent via Rejoinder: {total} tokens in {wall:.1f} s = {total / wall:.1f} tokens/s; "
          f"TTFT {', '.join(f'{t:.1f}' for t in ttfts)} s (each waits its turn)")
    print(f"Rejoinder server RSS: {rss:.0f} MB")


if __name__ == "__main__":
    main()
