"""The real Codex CLI against Rejoinder: how long a turn takes, on the scripted backend and on the
embedded model. Each run starts ``rejoinder serve`` the README's way (a model of Codex's catalog,
``gpt-5.5``, as the alias), writes a CODEX_HOME with the README's config.toml, and runs
``codex exec`` then ``codex exec resume --last`` in a fresh directory.

- ``scripted``: a scripted upstream (tests/fake_upstream.py) has the model create notes.txt with
  exec_command, edit it with the custom apply_patch tool, then read it back on the resumed turn;
  the script checks the file says what the patch made it say.
- ``embedded``: SmolLM2-135M in-process (``embedded.n_ctx`` 16384: Codex's instructions alone are
  about 10,000 tokens). It is far too small to use Codex's tools: the figure is the turn's time.

    python bench/bench_codex.py [--codex PATH] [--backend scripted|embedded] [--websocket]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_upstream import FakeUpstream, ThreadServer, Turn, text  # noqa: E402

SCRIPT = [
    Turn(reasoning="Create it with the shell first.",
         tool_calls=[("exec_command", {"cmd": "printf 'hello\\n' > notes.txt"})]),
    Turn(reasoning="Now edit it through apply_patch.", tool_calls=[("apply_patch", {
        "input": "*** Begin Patch\n*** Update File: notes.txt\n@@\n-hello\n+hello, patched\n*** End Patch\n"})]),
    text("Created notes.txt and patched it."),
    Turn(reasoning="Read the file back.", tool_calls=[("exec_command", {"cmd": "cat notes.txt"})]),
    text("notes.txt says: hello, patched"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "rejoinder", "serve", "--port", str(port)], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"rejoinder did not start: see {log}")


def codex(binary: str, home: Path, cwd: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([binary, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
                           *args], cwd=cwd, env={**os.environ, "CODEX_HOME": str(home)}, capture_output=True,
                          text=True, timeout=1800, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--codex", default=shutil.which("codex") or "codex")
    parser.add_argument("--backend", choices=("scripted", "embedded"), default="scripted")
    parser.add_argument("--websocket", action="store_true", help="supports_websockets = true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-codex-"))
    port = free_port()
    env = {**os.environ, "REJOINDER_DATA_DIR": str(work / "data")}
    upstream = None
    if args.backend == "scripted":
        fake = FakeUpstream()
        fake.queue(*SCRIPT)
        upstream = ThreadServer(fake.app).__enter__()
        env.update(REJOINDER_BACKEND_URL=upstream.url + "/v1", REJOINDER_BACKEND_MODELS="gpt-5.5=fake-model")
    else:
        env.update(REJOINDER_EMBEDDED__NAME="gpt-5.5", REJOINDER_EMBEDDED__N_CTX="16384")
    home, project = work / "codex-home", work / "project"
    home.mkdir()
    project.mkdir()
    (home / "config.toml").write_text(
        'model = "gpt-5.5"\nmodel_provider = "rejoinder"\n\n[model_providers.rejoinder]\nname = "Rejoinder"\n'
        f'base_url = "http://127.0.0.1:{port}/v1"\nwire_api = "responses"\nstream_idle_timeout_ms = 1800000\n'
        + ("supports_websockets = true\n" if args.websocket else ""))
    proc = serve(env, port, work / "rejoinder.log")
    try:
        first, out1 = codex(args.codex, home, project, "Create notes.txt saying hello, then patch it")
        second, out2 = codex(args.codex, home, project, "resume", "--last", "What does notes.txt say now?")
    finally:
        proc.terminate()
        proc.wait(30)
        if upstream is not None:
            upstream.__exit__(None, None, None)
    print(f"backend={args.backend} websocket={args.websocket}")
    print(f"  first turn:   {first:7.2f} s")
    print(f"  resumed turn: {second:7.2f} s")
    if args.backend == "scripted":
        content = (project / "notes.txt").read_text() if (project / "notes.txt").exists() else "(missing)"
        ok = content == "hello, patched\n" and "hello, patched" in out2
        print(f"  notes.txt: {content!r} -> {'ok' if ok else 'FAILED'}")
        if not ok:
            print(out1[-2000:], out2[-2000:], sep="\n")
            raise SystemExit(1)
    else:
        for name, out in (("first", out1), ("resumed", out2)):
            tail = " | ".join(line for line in out.strip().splitlines()[-4:] if "bubblewrap" not in line)
            print(f"  {name} turn ended: {tail[:400]}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
