import pytest

try:
    import trainlint.rules  # noqa: F401  (installed as trainlint.rules, not from the checkout)
except ImportError:  # pragma: no cover - guidance for a checkout that was never installed
    pytest.exit(
        "trainlint.rules is not importable: install the project (`pip install '.[test]'`, "
        "which maps rules/ to trainlint.rules) and run `pytest`; `python -m pytest` from the "
        "repository root imports the uninstalled checkout first",
        returncode=2,
    )
