"""`trainlint server` without the `server` extra says what to install instead of a traceback."""

from __future__ import annotations

import subprocess
import sys

WITHOUT_PYGLS = (
    "import sys; sys.modules['pygls'] = None; sys.modules['lsprotocol'] = None\n"
    "from trainlint.cli import main\n"
    "main(['server'], prog_name='trainlint')\n"
)


def test_server_without_pygls_names_the_extra():
    result = subprocess.run([sys.executable, "-c", WITHOUT_PYGLS], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "trainlint: error: the server needs pygls: pip install 'trainlint[server]'\n"
