"End-to-end: the forgetting report of a checkpoint against its base model, from the shell and from Python."
import os, subprocess

import pandas as pd
import torch

from ldifs_nb.core import RESULT_COLUMNS
from ldifs_nb.forgetting import forgetting_report
from ldifs_nb.models import load_clip
from ldifs_nb.train import finetune
from ldifs_nb.experiment import evaluate_run

from conftest import check_help_imports_no_torch

ENV = dict(os.environ, LDIFS_QUIET='1')
DATASETS = ['micro-colour', 'micro-shape']


def test_help_is_fast_and_imports_no_torch():
    "`--help` is answered by argparse before torch is imported."
    check_help_imports_no_torch('forgetting_cli', 'forgetting_cli', 'ldifs-forgetting')


def test_cli_perturbed_micro_clip(tmp_path):
    "micro-CLIP vs a perturbed copy of itself (a .pt vision-tower state dict with DDP names): a full report folder."
    model, _, _ = load_clip('micro-clip')
    with torch.no_grad(): model.visual.conv1.weight.mul_(1.3)
    torch.save({'state_dict': {f'module.{k}': v for k, v in model.visual.state_dict().items()}}, tmp_path/'ft.pt')
    r = subprocess.run(['ldifs-forgetting', str(tmp_path/'ft.pt'), '--datasets', *DATASETS, '--out', str(tmp_path/'rep'),
                        '--device', 'cpu'], capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Δ_ZS' in r.stdout and 'micro-colour' in r.stdout
    res = pd.read_csv(tmp_path/'rep'/'results.csv')
    assert list(res.columns) == RESULT_COLUMNS
    v = res.set_index(['dataset', 'split', 'metric'])['value']
    assert all(v[(d, 'test', 'feature_distance')] > 0 for d in DATASETS)
    assert v[(DATASETS[0], 'test', 'zs_top1')] - v[(DATASETS[0], 'test', 'delta_zs')] > 50   # the base model's A_ZS
    assert {'forgetting.png', 'summary.md', 'manifest.json'} <= {p.name for p in (tmp_path/'rep').iterdir()}
    assert not (tmp_path/'rep'/'embeddings').exists()   # the checkpoint's embeddings are gone once evaluated


def test_cli_refuses_other_architectures(tmp_path):
    "Weights of another architecture, or a file that holds no weights: one clear error, exit status 1."
    import open_clip
    from safetensors.torch import save_file
    save_file(open_clip.create_model('ViT-B-32').visual.state_dict(), str(tmp_path/'vitb.safetensors'))
    (tmp_path/'notes.bin').write_text('hello')
    for f, msg in [('vitb.safetensors', 'another shape'), ('notes.bin', 'Cannot read')]:
        r = subprocess.run(['ldifs-forgetting', str(tmp_path/f), '--datasets', 'micro-colour', '--out', str(tmp_path/'x')],
                           capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 1 and 'ldifs-forgetting: error:' in r.stderr and msg in r.stderr, r.stderr[-2000:]
        assert 'Traceback' not in r.stderr


def test_equals_own_run(tmp_path, capsys):
    """A run with a non-default seed: a report on one of its checkpoint files (settings given) and a report on the run folder
    (settings from its manifest, none given) are that run's own results, value for value."""
    rd = finetune(method='lp-init-ldifs', dataset='micro-colour', steps=4, ckpt_fractions=(0.0, 1.0), eval_datasets=DATASETS,
                  seed=3, out_dir=str(tmp_path/'runs'), device='cpu')
    run = evaluate_run(rd, device='cpu').set_index(['step', 'dataset', 'split', 'metric'])['value']
    own = {(d, s, m) for d in DATASETS for s in ('test', 'val10') for m in ('clf_top1', 'clf_ece', 'own_zs_top1')}   # the run's head: not in a report
    rep = forgetting_report(rd/'ckpt'/'step_000004.safetensors', 'micro-clip', DATASETS, tmp_path/'rep', task='micro-colour',
                            seed=3, device='cpu').set_index(['dataset', 'split', 'metric'])['value']
    assert set(rep.index) == set(run[4].index) - own
    pd.testing.assert_series_equal(rep.sort_index(), run[4][rep.index].sort_index(), check_exact=False, rtol=0, atol=1e-9)
    capsys.readouterr()
    whole = forgetting_report(rd, out_dir=tmp_path/'rep_run', device='cpu')   # a run folder: its trajectory, as the run evaluated it
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith(f'settings (run = from the manifest of {rd}') and 'seed 3 (run)' in first and 'task micro-colour (run)' in first, first
    assert sorted(whole['step'].unique()) == [0, 4] and set(whole['task']) == {'micro-colour'}
    whole = whole.set_index(['step', 'dataset', 'split', 'metric'])['value']
    assert set(whole.index) == {i for i in run.index if i[1:] not in own}
    pd.testing.assert_series_equal(whole.sort_index(), run[whole.index].sort_index(), check_exact=False, rtol=0, atol=1e-9)
