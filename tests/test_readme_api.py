"""The README's Python API example runs as printed: prune and save, then load, export and verify in a
fresh process (the section says so; a README that drifts from the API fails here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_api_example_runs(tmp_path):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "api_example.py"
    script.write_text(code)
    for step in ("prune", "load"):
        proc = subprocess.run([sys.executable, str(script), step], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ViT verify: True" in proc.stdout and "TinyNet verify: True" in proc.stdout
    assert (tmp_path / "out" / "vit" / "model.onnx").is_file() and (tmp_path / "out" / "net" / "isodeploy.json").is_file()
