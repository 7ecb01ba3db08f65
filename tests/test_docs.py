"""The docs site as a reader gets it, checked without Quarto (and with it, where one is on PATH):
nothing of a notebook's text is lost by nbdev's processing, every page has its own output name, no docstring or
markdown line turns into raw HTML, and the results pages show what their committed data gives (helpers and the
rules in `tests/docs_pages.py`)."""
import os, shutil, subprocess, sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_pages import ROOT, NBS, RESULTS_PAGES, check_processed, check_rendered, stale_outputs

IGNORE = shutil.ignore_patterns('.git', '_proc', '_docs', 'runs', '__pycache__', '*.egg-info', '.venv')


def test_docs_processing_keeps_every_page_whole(tmp_path):
    "nbdev's docs processing (what `nbdev-docs` runs before Quarto) keeps every paragraph, with unique page names."
    repo = tmp_path/'repo'
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    code = "from nbdev.serve import proc_nbs; proc_nbs(n_workers=0)"
    r = subprocess.run([sys.executable, '-c', code], cwd=repo, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, LDIFS_QUIET='1'))
    assert r.returncode == 0, r.stderr[-3000:]
    assert (repo/'_proc'/'_quarto.yml').exists() and (repo/'_proc'/'sidebar.yml').exists()
    problems = check_processed(repo/'nbs', repo/'_proc')
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('page', RESULTS_PAGES)
def test_results_page_is_fresh(page):
    "A results page's saved outputs are what a fresh execution on the committed results files shows."
    stale = stale_outputs(NBS/page)
    assert not stale, (f"{page} shows outputs that its committed data no longer gives; re-execute it with "
                       f"`python tests/docs_pages.py --save nbs/{page} && nbdev-clean`:\n" + '\n'.join(stale))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('quarto') is None, reason='Quarto is not on PATH (the site is checked without it above)')
def test_site_renders_every_page(tmp_path):
    "With Quarto: `nbdev-docs` renders the site, and every page shows its opening paragraph and its images."
    repo = tmp_path/'repo'
    shutil.copytree(ROOT, repo, ignore=IGNORE)
    r = subprocess.run(['nbdev-docs'], cwd=repo, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, LDIFS_QUIET='1'))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    problems = check_rendered(repo/'nbs', repo/'_docs')
    assert not problems, '\n'.join(problems)
