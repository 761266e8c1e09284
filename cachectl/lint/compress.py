"""CP409: a compress codec whose package is not installed where lint runs.

Unknown codecs (CP408) and levels out of range (CP410) are the loader's: a namespace with
either cannot be built. A missing package is a warning only: lint may run in CI without
the ``compress`` extra while the application has it.
"""

from __future__ import annotations

from cachectl import compression
from cachectl.diagnostics import Code
from cachectl.errors import install_extra_hint
from cachectl.lint.context import LintContext


def check(ctx: LintContext) -> None:
    places: list[tuple[str, tuple[str | int, ...]]] = []
    if ctx.spec.defaults.compress is not None:
        places.append((ctx.spec.defaults.compress.codec, ("defaults", "compress", "codec")))
    for name, ns in ctx.namespaces():
        if ns.compress is not None:
            places.append((ns.compress.codec, ("namespaces", name, "compress", "codec")))
    for codec, at in places:
        package = compression.missing_package(codec) \
            if codec in compression.POLICY_CODECS else None
        if package is not None:
            ctx.report(Code.CODEC_NOT_INSTALLED, f"codec {codec} needs the {package} package, which is not "
                       "installed here", ctx.value(*at),
                       install_extra_hint("compress") + " wherever the policy is used")
