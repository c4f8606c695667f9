"""What checking a custom tool's call against its grammar costs (tools/grammar.py).

Codex's apply_patch grammar (the Lark it sends) against patches of growing size: the first
compile of the grammar, then each check (llguidance over a byte tokenizer), valid and broken at the
end. Every call of a grammar tool is checked once before the client sees it.

Run: ``python bench/bench_grammar.py [--rounds 50]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rejoinder.tools.grammar import compile_grammar

CODEX_APPLY_PATCH = r'''start: begin_patch hunk+ end_patch
begin_patch: "*** Begin Patch" LF
end_patch: "*** End Patch" LF?

hunk: add_hunk | delete_hunk | update_hunk
add_hunk: "*** Add File: " filename LF add_line+
delete_hunk: "*** Delete File: " filename LF
update_hunk: "*** Update File: " filename LF change_move? change?

filename: /(.+)/
add_line: "+" /(.*)/ LF -> line

change_move: "*** Move to: " filename LF
change: (change_context | change_line)+ eof_line?
change_context: ("@@" | "@@ " /(.+)/) LF
change_line: ("+" | "-" | " ") /(.*)/ LF
eof_line: "*** End of File" LF

%import common.LF
'''


def patch(lines: int) -> str:
    body = "".join(f"+line {i} of the new file, with some text\n" for i in range(lines))
    return f"*** Begin Patch\n*** Add File: src/new_module.py\n{body}*** End Patch\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    started = time.perf_counter()
    grammar = compile_grammar("lark", CODEX_APPLY_PATCH)
    print(f"compile (first, then cached): {(time.perf_counter() - started) * 1e3:.1f} ms")
    print(f"{'patch':>16} {'valid check (ms, median)':>26} {'broken at the end (ms)':>24}")
    for lines in (10, 100, 1000):
        text = patch(lines)
        broken = text.replace("*** End Patch", "*** End Ptch")
        assert grammar.mismatch(text) is None and grammar.mismatch(broken) is not None
        ok, bad = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            grammar.mismatch(text)
            ok.append(time.perf_counter() - t)
            t = time.perf_counter()
            grammar.mismatch(broken)
            bad.append(time.perf_counter() - t)
        size = f"{lines} lines, {len(text) // 1024} KiB" if len(text) >= 1024 else f"{lines} lines, {len(text)} B"
        print(f"{size:>16} {statistics.median(ok) * 1e3:>26.2f} {statistics.median(bad) * 1e3:>24.2f}")


if __name__ == "__main__":
    main()
