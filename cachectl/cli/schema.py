"""cachectl schema: print the policy's JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def command(
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write to this file instead of stdout.")] = None,
    json_out: Annotated[bool, typer.Option(
        "--json", help="Accepted like every command's --json; the schema is JSON already.")]
    = False,
) -> int:
    """Print the policy file's JSON Schema, for editors and CI validators.

    Example: cachectl schema -o schema/policy.v1.json
    """
    from cachectl.policy.schema import policy_json_schema

    text = json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
    return 0
