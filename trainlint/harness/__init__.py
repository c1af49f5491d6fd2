"""Runtime verification of fixes: run the original and the fixed code and compare.

This package executes code from the linted project (in a subprocess, with a timeout and a
memory cap). Only `trainlint verify` and `trainlint check --fix --verify` use it; plain
`check` and the pre-commit hook never import it. torch is imported only inside the probe
subprocess.
"""
