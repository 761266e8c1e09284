"""The sync cache and its tests are generated from the async source: committed copies current."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from tests.support.scripts import load_script

REPO = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    return load_script("async_to_sync")


def test_generated_files_are_current() -> None:
    stale = [str(path.relative_to(REPO)) for path, text in _generator().generate().items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    assert stale == [], f"stale: {stale}; run: python scripts/async_to_sync.py"


def test_generated_files_say_so() -> None:
    for source, target in _generator().FILES:
        first = (REPO / target).read_text(encoding="utf-8").splitlines()[0]
        assert first == (f"# generated from {Path(source).name} by scripts/async_to_sync.py, "
                         "do not edit")


def test_the_transformation() -> None:
    gen = _generator()
    source = '''\
import asyncio
from collections.abc import Awaitable, Callable

from cachectl.cache._acompat import AEvent, aresult


class AsyncCache:
    async def __aenter__(self) -> AsyncCache:  # a comment survives
        return self

    async def run(self, fn: Callable[[], Awaitable[int]]) -> int:
        if True:  # ASYNC
            await asyncio.sleep(0)
        else:
            pass  # only in the sync twin
        async with self.lock:
            async for x in self.items():
                await self.client.aclose()
        return await aresult(await fn(), 1.0)
'''
    out = gen.convert(source, "x_async.py", "cachectl/x.py")
    assert out.splitlines()[0] == "# generated from x_async.py by scripts/async_to_sync.py, do not edit"
    body = out.split("\n", 1)[1]
    assert "async" not in body and "await" not in body
    assert "import asyncio" not in out  # used only by the async side: dropped
    assert "from cachectl.cache._acompat import result_of" in out  # AEvent unused: dropped
    assert "class Cache:" in out and "def __enter__(self) -> Cache:  # a comment survives" in out
    assert "fn: Callable[[], int]" in out
    assert "pass  # only in the sync twin" in out and "sleep" not in out
    assert "with self.lock:" in out and "for x in self.items():" in out
    assert "self.client.close()" in out and "return result_of(fn(), 1.0)" in out
