"""TL901 lives with the suppression machinery it checks; this module registers it."""

from trainlint import suppress


class UnusedSuppression(suppress.UnusedSuppression):
    __doc__ = suppress.UnusedSuppression.__doc__
    code = suppress.UNUSED_SUPPRESSION
    # Off by default, like ruff's RUF100: enable with `--extend-select TL901`.
    default_enabled = False
