"""The docs site as a reader gets it, checked without Quarto (and with it, where one is on PATH):
nothing of a notebook's text is lost by nbdev's processing, every page has its own output name, no docstring or
markdown line turns into raw HTML, and the results pages show what their committed data gives (helpers and the
rules in `tests/docs_pages.py`)."""
import os, shutil, subprocess, sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_pages import ROOT, NBS, RESULTS_PAGES, check_processed, check_rendered, stale_outputs, execute_page

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


def test_paper_results_shows_the_shifts_as_a_group(tmp_path):
    "A run that evaluated ImageNet's shifts: the paper page shows them as one group (Δ and ECE), the paper's tables only the nine."
    import json
    import pandas as pd
    from ldifs_nb.core import RESULT_COLUMNS
    rows = []
    for step, frac in ((0, 0.), (10, 1.)):
        for k, ds in enumerate(('cifar10', 'mnist', 'imagenet', 'imagenet-r', 'imagenet-sketch')):
            for metric, v in (('delta_zs', -frac * (k + 1)), ('delta_lp', -frac * (k + 2)), ('zs_ece', 5. + k), ('lp_ece', 3. + frac * k),
                              ('zs_top1', 50.), ('lp_top1', 60.)):
                rows.append(('cifar10', 'lp-init-ldifs', 0, 1, step, frac, ds, 'test', metric, v))
    run = tmp_path/'runs'/'cifar10'/'lp-init-ldifs'/'0'
    run.mkdir(parents=True)
    pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(run/'results.csv', index=False)
    nb = json.loads((NBS/'paper_results.ipynb').read_text())
    cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).startswith('RUNS = '))
    cell['source'] = [f"RUNS = {str(tmp_path/'runs')!r}"]
    # the cells that load the runs, summarise them (the nine) and show the shifts: seconds, not the whole page
    keep = [next(c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).startswith(head)) for head in
            ('RUNS = ', 'from pathlib import Path', 'folders = ', 'if len(res):\n    t = forgetting_table', "shifts = ['imagenet']")]
    page = tmp_path/'paper_results.ipynb'
    page.write_text(json.dumps(nb | {'cells': keep}))
    out = execute_page(page)['cells']
    shown = lambda c: [''.join(o.get('data', {}).get(k, '')) for o in c.get('outputs', []) for k in ('text/markdown', 'text/html', 'text/plain')]
    groups = [m for m in shown(out[-1]) if m.startswith('**')]
    assert [m.splitlines()[0] for m in groups] == ['**Δ_ZS (points)**', '**Δ_LP (points)**', '**ZS ECE (%)**', '**LP ECE (%)**'], groups
    assert all('| task | method | imagenet | imagenet-r | imagenet-sketch |' in m for m in groups)
    assert '| cifar10 | lp-init-ldifs | -3.0 | -4.0 | -5.0 |' in groups[0] and '| cifar10 | lp-init-ldifs | 5.0 | 6.0 | 7.0 |' in groups[3]
    summary = ' '.join(shown(out[-2]))   # mean Δ_LP over the other datasets of the nine: MNIST's −3 (with the shifts it would be −4.5)
    assert '**-3.0**' in summary and '-4.5' not in summary and '1 paper-scale runs found' in ' '.join(shown(out[2]))


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
