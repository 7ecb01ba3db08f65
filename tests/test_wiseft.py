"End-to-end: `ldifs-wiseft` on a finished run folder, from the shell."
import os, subprocess

import pandas as pd

from ldifs_nb.train import finetune
from ldifs_nb.wiseft import WISEFT_COLUMNS

from conftest import check_help_imports_no_torch

ENV = dict(os.environ, LDIFS_QUIET='1')


def test_help_is_fast_and_imports_no_torch():
    "`--help` is answered by argparse before torch is imported."
    check_help_imports_no_torch('wiseft_cli', 'wiseft_cli', 'ldifs-wiseft')


def test_cli_run_folder(tmp_path):
    "A tiny ZS-init CE run, α = 0 and 1 from the shell: the tidy table with `alpha`, the summary, and bad input refused."
    rd = finetune(method='zs-init-ce', dataset='micro-colour', steps=2, ckpt_fractions=(0.0, 1.0),
                  eval_datasets=['micro-colour', 'micro-shape'], out_dir=str(tmp_path/'runs'), device='cpu')
    out = tmp_path/'wise'
    r = subprocess.run(['ldifs-wiseft', str(rd), '--alphas', '0,1', '--out', str(out), '--device', 'cpu'],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'task acc. (%)' in r.stdout and 'mean ZS ECE (%)' in r.stdout and 'wiseft.csv' in r.stdout
    res = pd.read_csv(out/'wiseft.csv')
    assert list(res.columns) == WISEFT_COLUMNS and sorted(res['alpha'].unique()) == [0, 1]
    v = res.set_index(['alpha', 'dataset', 'split', 'metric'])['value']
    assert v[(0, 'micro-shape', 'test', 'delta_lp')] == 0 and v[(0, 'micro-colour', '-', 'param_distance')] == 0
    assert v[(1, 'micro-colour', '-', 'param_distance')] > 0
    assert {'summary.md', 'wiseft.png'} <= {p.name for p in out.iterdir()}
    for args, msg in [([str(rd), '--alphas', '1.5'], 'outside [0, 1]'), ([str(tmp_path)], 'not a run folder')]:
        r = subprocess.run(['ldifs-wiseft', *args, '--out', str(tmp_path/'bad')], capture_output=True, text=True, env=ENV, timeout=120)
        assert r.returncode == 1 and 'ldifs-wiseft: error:' in r.stderr and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'bad').exists()
