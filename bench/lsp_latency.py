"""Editor latency of `trainlint server`: from `textDocument/didChange` to the
`textDocument/publishDiagnostics` for that version.

Two generated documents (or the files named with --file): a 2,000-line training script
(the clean fixtures' training loops, schedulers and losses, repeated with renamed
definitions, and one buggy loss)
and a 5,000-line model module (nn.Module blocks). A client started here speaks JSON-RPC to
`python -m trainlint server` over stdio, opens each document, then types a comment at its
end several times, waiting for each version's diagnostics. The baseline, measured in the
same run, is `engine.lint` of the same text in this process: the ratio is what the server
adds (its debounce of trainlint.server.app.DEBOUNCE_S, JSON-RPC, conversion).

    python bench/lsp_latency.py [--changes 5] [--file PATH ...]

Not a test: it prints figures and judges nothing but the stated goal (300 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from trainlint import engine
from trainlint.registry import select
from trainlint.server.app import DEBOUNCE_S

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
GOAL_S = 0.300

BLOCK = '''\
class Block{i}(nn.Module):
    """Pre-norm MLP block {i}."""

    def __init__(self, dim, hidden=256, dropout=0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.fc2(self.drop(F.gelu(self.fc1(self.norm(x)))))
        return x + self.drop(y)


'''


def training_script(lines: int) -> str:
    """The clean fixtures, definitions renamed per copy, then one buggy loss (the LDAM seed)."""
    parts = [p.read_text(encoding="utf-8") for p in sorted(FIXTURES.glob("clean/*.py"))]
    out: list[str] = []
    copy = 0
    while sum(part.count("\n") for part in out) < lines:
        out += [re.sub(r"^(def|class) (\w+)", rf"\1 \2_{copy}", part, flags=re.M) for part in parts]
        copy += 1
    return "".join(out) + (FIXTURES / "seed" / "ldam_train.py").read_text(encoding="utf-8")


def model_module(lines: int) -> str:
    head = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
    count = (lines - head.count("\n")) // BLOCK.count("\n") + 1
    return head + "".join(BLOCK.replace("{i}", str(i)) for i in range(count))


async def measure(uri: str, text: str, changes: int) -> list[float]:
    """didChange -> publishDiagnostics seconds, one figure per change."""
    client = LanguageClient("trainlint-bench", "1")
    published: dict[int, float] = {}
    arrived = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_publish(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version is not None:
            published[params.version] = time.perf_counter()
            arrived.set()

    async def wait_for(version: int) -> float:
        while version not in published:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 600)
        return published[version]

    await client.start_io(sys.executable, "-m", "trainlint", "server")
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True)
            )
        )
    ))
    client.initialized(types.InitializedParams())
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)
    ))
    await wait_for(1)
    end = types.Position(line=text.count("\n"), character=0)
    latencies = []
    for version in range(2, changes + 2):
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=end, end=end), text=f"# edit {version}\n"
            )],
        ))
        sent = time.perf_counter()
        end = types.Position(line=end.line + 1, character=0)
        latencies.append(await wait_for(version) - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies


def engine_seconds(text: str, runs: int) -> float:
    rules = select(None, [], [])
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        engine.lint("document.py", text.encode("utf-8"), rules, want_edits=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=5, help="didChange notifications per document")
    parser.add_argument("--file", type=Path, action="append", help="measure this file instead")
    args = parser.parse_args()
    if args.file:
        documents = [(str(p), p.read_text(encoding="utf-8")) for p in args.file]
    else:
        documents = [("2,000-line training script", training_script(2000)),
                     ("5,000-line model module", model_module(5000))]
    print(f"debounce {DEBOUNCE_S * 1000:.0f} ms; goal: under {GOAL_S * 1000:.0f} ms")
    print("| document | lines | didChange -> diagnostics, median (min-max) | engine.lint alone, median | ratio |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, text in documents:
            uri = (Path(folder) / "document.py").as_uri()
            latencies = asyncio.run(measure(uri, text, args.changes))
            baseline = engine_seconds(text, args.changes)
            median = statistics.median(latencies)
            print(
                f"| {name} | {text.count(chr(10)):,} | {median * 1000:.0f} ms "
                f"({min(latencies) * 1000:.0f}-{max(latencies) * 1000:.0f}) | {baseline * 1000:.0f} ms "
                f"| {median / baseline:.2f}x |"
            )


if __name__ == "__main__":
    main()
