"The docs site: every notebook goes through nbdev's docs processing without error (Quarto itself is not needed)."
import os, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_notebooks_process_for_docs(tmp_path):
    repo = tmp_path/'repo'
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns('.git', '_proc', '_docs', 'runs', '__pycache__'))
    code = "from nbdev.serve import proc_nbs; proc_nbs(n_workers=0)"
    r = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, LDIFS_QUIET='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    nbs = {p.name for p in (ROOT/'nbs').glob('*.ipynb')}
    done = {p.name for p in (repo/'_proc').rglob('*.ipynb')}
    assert nbs <= done, sorted(nbs - done)
    assert (repo/'_proc'/'_quarto.yml').exists() and (repo/'_proc'/'sidebar.yml').exists()
