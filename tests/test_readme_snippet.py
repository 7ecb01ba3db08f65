"The README's 'LDIFS as a drop-in regulariser' code block runs as written, in a fresh interpreter, so it never rots."
import re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "LDIFS as a drop-in regulariser in your own loop"


def readme_snippet() -> str:
    "The first ```python block after the marker line of README.md."
    text = (ROOT/'README.md').read_text()
    assert MARKER in text, f"README.md has no line starting {MARKER!r}"
    m = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], re.S)
    assert m, f"no ```python block after {MARKER!r} in README.md"
    return m.group(1)


def test_readme_regulariser_snippet(tmp_path):
    code = readme_snippet()
    assert 'LDIFS(' in code and 'backward()' in code and 'opt.step()' in code  # still the drop-in example
    r = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"after the step: ([-+0-9.e]+)", r.stdout)
    assert m, r.stdout
    assert float(m.group(1)) > 0  # one optimiser step moved the encoder away from the snapshot
