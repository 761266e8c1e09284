"""cachectl.secrets: redaction by plain text, whatever the URL holds."""

from __future__ import annotations

import io

import pytest

from cachectl import secrets


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
    ("redis://user:pw@h:1/0", "redis://user:***@h:1/0"),
    ("redis://:ab/cd#ef?gh@ij@h:1/0", "redis://:***@h:1/0"),  # no parser would get this right
    ("redis://user@h:1/0", "redis://user@h:1/0"),
    ("redis://h:1/0?password=x/y&db=1", "redis://h:1/0?password=***&db=1"),
    ("http://reader:p%40ss@api.test/x", "http://reader:***@api.test/x"),
    ("not a url at all", "not a url at all"),
])
def test_redact_url_masks_the_password_without_parsing(url: str, expected: str) -> None:
    assert secrets.redact_url(url) == expected


def test_url_secrets_take_the_userinfo_up_to_the_last_at() -> None:
    assert secrets.url_secrets("redis://u:a@b/c#d?e@h:1/0") == ("a@b/c#d?e",)
    assert secrets.userinfo_password("redis://u@h") is None


def test_a_registered_secret_is_masked_whole_encoded_and_in_pieces() -> None:
    secrets.reset()
    secrets.register("QxZj/Vk9#Jqz")
    try:
        for text in ("QxZj/Vk9#Jqz", "QxZj%2FVk9%23Jqz", "port 'QxZj'"):
            assert "QxZj" not in secrets.scrub(text), text
        out = io.StringIO()
        secrets.ScrubbingStream(out).write("error: redis://:QxZj/Vk9#Jqz@h\n")
        assert "QxZj" not in out.getvalue() and "***" in out.getvalue()
        exc = ValueError("bad port QxZj")
        secrets.scrub_exception(exc)
        assert "QxZj" not in str(exc)
    finally:
        secrets.reset()
    assert secrets.scrub("QxZj/Vk9#Jqz") == "QxZj/Vk9#Jqz"  # a new run starts empty
