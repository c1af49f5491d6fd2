import pytest

try:
    import trainlint.rules  # noqa: F401  (installed as trainlint.rules, not from the checkout)
except ImportError:  # pragma: no cover - guidance for a checkout that was never installed
    pytest.exit(
        "trainlint is not installed: run `python -m pip install -e '.[test]'` "
        "(rules/ is installed as trainlint.rules)",
        returncode=2,
    )
