"""The integrations command as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.kafka_broker import REPO

TOKEN = "tok_secret_in_a_broken_file_0123"


def test_a_yaml_syntax_error_names_its_position_never_the_line_with_its_token(tmp_path):
    broken = tmp_path / "integrations.yaml"
    broken.write_text(f'- app_id: app1\n  pixel_id: PIX1\n  access_token: "{TOKEN}\n')
    done = subprocess.run([sys.executable, "-m", "worker", "integrations", "apply", str(broken)], cwd=REPO,
                          env=os.environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "syntax error at line 4, column 1, in what begins at line 3, column 17" in done.stderr
    assert TOKEN[:8] not in done.stdout + done.stderr
