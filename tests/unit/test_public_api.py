"""The public API: one ``__all__``, every name importable, every error a CachectlError."""

from __future__ import annotations

import subprocess
import sys

import cachectl
from cachectl.errors import CachectlError


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert cachectl.__all__ == sorted(cachectl.__all__)
    for name in cachectl.__all__:
        assert getattr(cachectl, name) is not None, name
    assert set(cachectl.__all__) == set(cachectl._LAZY) | {"__version__"}


def test_dir_lists_the_lazy_exports() -> None:
    assert set(cachectl.__all__) <= set(dir(cachectl))


def test_every_exported_exception_is_a_cachectl_error() -> None:
    errors = [getattr(cachectl, n) for n in cachectl.__all__
              if isinstance(getattr(cachectl, n), type)
              and issubclass(getattr(cachectl, n), BaseException)]
    assert {e.__name__ for e in errors} >= {"UsageError", "LoadTimeoutError", "KeyParamError",
                                            "ValueTooLargeError", "RedisUnavailableError"}
    assert all(issubclass(e, CachectlError) for e in errors)
    # what callers caught before still catches them
    assert issubclass(cachectl.LoadTimeoutError, TimeoutError)
    assert issubclass(cachectl.KeyParamError, ValueError)
    assert issubclass(cachectl.KeyParamError, cachectl.UsageError)
    assert issubclass(cachectl.ValueTooLargeError, cachectl.UsageError)
    err = cachectl.LoadTimeoutError("waited 5 ms", hint="raise hard_timeout_ms")
    assert (str(err), err.hint) == ("waited 5 ms", "raise hard_timeout_ms")


def test_every_error_the_library_modules_define_is_exported() -> None:
    import cachectl.cache as cache_pkg
    import cachectl.errors as errors_mod

    for module in (errors_mod, cache_pkg):
        for name in dir(module):
            obj = getattr(module, name)
            if isinstance(obj, type) and issubclass(obj, CachectlError):
                assert name in cachectl.__all__, f"{module.__name__}.{name} is not in __all__"


def test_importing_cachectl_stays_cheap() -> None:
    code = "import sys, cachectl; print('redis' in sys.modules, 'cachectl.cache' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_sync_get_or_load_returns_the_loaders_type() -> None:
    hints = cachectl.Cache.get_or_load.__annotations__  # strings: postponed annotations
    assert (hints["loader"], hints["return"]) == ("Callable[[], T]", "T")
    assert cachectl.Cache.get_or_load.__doc__ == cachectl.AsyncCache.get_or_load.__doc__
