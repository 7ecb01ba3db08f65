"""Data-parallel training on CPU: `torchrun --nproc-per-node 2` (gloo, DDP) against one process, same global batch.

For CE (with augmentation: each rank crops only its rows), LP-init-LDIFS and FLYP (features gathered across ranks),
2 ranks × about b images give the parameters and losses of 1 process × the whole batch (8 = 4 + 4; 9 = 5 + 4, an
uneven split), after 4 steps; L2SP and FLYP-CE with batches of 1 (one rank has nothing: it runs a stand-in with
weight 0, since every rank takes part in every reduction). Parameters are compared at PARAM_TOL, except the attention *key* biases, whose true
gradient is exactly zero (softmax ignores a constant added to every key): their gradient is rounding noise, which
AdamW normalises into steps of up to ~lr, different in each summation order (KEY_BIAS_TOL = 4 steps × lr). Losses at
LOSS_TOL (relative). A 2-rank run killed after its resume state and run again ends bit-identical to an uninterrupted
2-rank run; its evaluation is compared with one process's on every determined metric (ZS, the classifier's own
accuracy, distances, ECE of those) at 1e-4. The linear-probe metrics are not compared: the AdamW probe picks its lr
by an argmax over validation accuracies, which rounding can flip (an LP accuracy once moved 1.12 points that way).
Measured differences: see the numbers the tests print (`pytest -s`) and `nbs/scaling.ipynb`.
"""
import json, os, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ldifs_nb.core import read_json
from ldifs_nb.runs import load_state
from ldifs_nb.experiment import evaluate_run

COMMON = dict(dataset='micro-shape', steps=4, eval_datasets=('micro-shape',), device='cpu', lr=1e-3, warmup=1,
              ckpt_fractions=(0., .5, 1.))
CASES = {'zs-init-ce': dict(batch_size=8, augment=True), 'lp-init-ldifs': dict(batch_size=9), 'flyp': dict(batch_size=9),
         'zs-init-l2sp': dict(batch_size=1), 'flyp-ce': dict(batch_size=1)}   # batch 1: rank 1's shard is empty (a stand-in with weight 0)
PARAM_TOL = 2e-5         # max abs parameter difference, all but the key biases
KEY_BIAS_TOL = 4 * 1e-3  # key biases: rounding noise turned into AdamW steps, at most ~lr per step
LOSS_TOL = 1e-5          # relative difference of each step's logged loss

TRAIN = f'''
import sys, torch
from ldifs_nb.train import FinetuneConfig, finetune
torch.set_num_threads(1)
for method, kw in {CASES!r}.items():
    finetune(FinetuneConfig(method=method, out_dir=sys.argv[1], **{COMMON!r}, **kw))
'''

def _torchrun(): return shutil.which('torchrun') or pytest.skip('torchrun not installed')

def _env(data, **kw): return dict(os.environ, LDIFS_QUIET='1', OMP_NUM_THREADS='1', LDIFS_DATA=str(data), **kw)

def _run(cmd, env, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    if check: assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def _compare_ckpt(a: dict, b: dict):
    "Max abs difference (all but key biases, key biases) between two checkpoints."
    rest = kb = 0.
    for k in a:
        d = (a[k] - b[k]).abs().flatten()
        if k.endswith('attn.in_proj_bias'):
            D = len(d) // 3
            kb = max(kb, float(d[D:2 * D].max())); d = torch.cat([d[:D], d[2 * D:]])
        rest = max(rest, float(d.max()) if d.numel() else 0.)
    return rest, kb

def _compare_results(r1: pd.DataFrame, r2: pd.DataFrame, tol: float = 1e-4):
    "Every metric but the linear probe's equal to `tol`; the probe's rows present in both."
    keys = [c for c in r1.columns if c != 'value']
    m = r1.merge(r2, on=keys, how='outer', indicator=True)
    assert (m['_merge'] == 'both').all(), m[m['_merge'] != 'both']
    d = (m['value_x'] - m['value_y']).abs()
    lp = m['metric'].str.startswith('lp_') | (m['metric'] == 'delta_lp')
    assert d[~lp].max() <= tol, m[~lp & (d > tol)]
    return float(d[~lp].max())

def _rd(out, method): return Path(out)/'micro-shape'/method/'0'

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The three methods trained in one process and under torchrun with 2 ranks (same configs)."
    tr = _torchrun()
    root = tmp_path_factory.mktemp('ddp')
    (root/'train.py').write_text(TRAIN)
    env = _env(root/'data')
    _run([sys.executable, str(root/'train.py'), str(root/'one')], env)          # also prepares the data
    _run([tr, '--standalone', '--nproc-per-node', '2', str(root/'train.py'), str(root/'two')], env)
    return root

@pytest.mark.parametrize('method', list(CASES))
def test_two_ranks_match_one_process(runs, method):
    rd1, rd2 = _rd(runs/'one', method), _rd(runs/'two', method)
    m1, m2 = read_json(rd1/'manifest.json'), read_json(rd2/'manifest.json')
    assert (m1['world_size'], m2['world_size'], m2['status']) == (1, 2, 'finished')
    assert [c['step'] for c in m1['checkpoints']] == [c['step'] for c in m2['checkpoints']] == [0, 2, 4]
    assert m1['config'] == m2['config']
    for c in m1['checkpoints']:
        rest, kb = _compare_ckpt(load_state(rd1/c['file']), load_state(rd2/c['file']))
        print(f"{method} step {c['step']}: max abs parameter difference {rest:.3g} (key biases {kb:.3g})")
        assert rest <= PARAM_TOL and kb <= KEY_BIAS_TOL
    # one log, written by rank 0, with the global-batch loss of every step
    l1, l2 = ([json.loads(l) for l in (rd/'log.jsonl').read_text().splitlines()] for rd in (rd1, rd2))
    assert [l['step'] for l in l2] == [1, 2, 3, 4]
    dl = max(abs(a['loss'] - b['loss']) / max(1, abs(a['loss'])) for a, b in zip(l1, l2))
    print(f"{method}: max relative loss difference {dl:.3g}")
    assert dl <= LOSS_TOL

def test_killed_two_rank_run_resumes(runs):
    "A 2-rank ldifs-run killed at step 3 (resume state at step 2), run again: the same weights as the uninterrupted 2-rank run."
    tr = _torchrun()
    kw = {**COMMON, **CASES['lp-init-ldifs']}
    args = ['--method', 'lp-init-ldifs', '--dataset', kw['dataset'], '--steps', str(kw['steps']), '--batch-size', str(kw['batch_size']),
            '--eval-datasets', *kw['eval_datasets'], '--device', 'cpu', '--lr', str(kw['lr']), '--warmup', str(kw['warmup']),
            '--ckpt-fractions', *map(str, kw['ckpt_fractions']), '--resume-every', '2', '--out-dir', str(runs/'cut')]
    cmd = [tr, '--standalone', '--nproc-per-node', '2', '--no-python', 'ldifs-run', *args]
    r = _run(cmd, _env(runs/'data', LDIFS_FAULT='step@3:kill'), check=False)
    assert r.returncode != 0
    rd = _rd(runs/'cut', 'lp-init-ldifs')
    man = read_json(rd/'manifest.json')
    assert man['status'] == 'running' and man['resume']['step'] == 2
    _run(cmd, _env(runs/'data'))
    man = read_json(rd/'manifest.json')
    assert man['status'] == 'finished' and man['world_size'] == 2
    assert [json.loads(l)['step'] for l in (rd/'log.jsonl').read_text().splitlines()] == [1, 2, 3, 4]
    full = _rd(runs/'two', 'lp-init-ldifs')
    for c in man['checkpoints']:
        a, b = load_state(full/c['file']), load_state(rd/c['file'])
        assert all(torch.equal(a[k], b[k]) for k in a), c   # bit-identical on CPU
    # its evaluation (shared by the 2 ranks) against one process's evaluation of the one-process run
    one = evaluate_run(_rd(runs/'one', 'lp-init-ldifs'), device='cpu', data_root=str(runs/'data'))
    print(f"2-rank vs 1-process results, every metric but the probe's: max difference {_compare_results(one, pd.read_csv(rd/'results.csv')):.3g}")

SHARDED_EVAL = '''
import copy, dataclasses, json, sys, torch
from pathlib import Path
from ldifs_nb.data import register_micro_task
from ldifs_nb.world import MICRO_TASKS
from ldifs_nb.models import load_clip
from ldifs_nb.ranks import init_distributed
from ldifs_nb.evaluate import evaluate_checkpoint, sharded_evaluation, eval_world
torch.set_num_threads(1)
root, tag = Path(sys.argv[1]), sys.argv[2]
register_micro_task(dataclasses.replace(MICRO_TASKS['micro-colour'], name='micro-tiny', n_train=200, n_test=101))
d, dev = init_distributed('cpu')
clip_model, _, tok = load_clip('micro-clip'); ref = clip_model.visual.eval()
ft = copy.deepcopy(ref)
with torch.no_grad(): ft.conv1.weight.mul_(1.1)
seen = {'ft': 0, 'ref': 0}
ft.register_forward_hook(lambda m, i, o: seen.__setitem__('ft', seen['ft'] + len(i[0])))
ref.register_forward_hook(lambda m, i, o: seen.__setitem__('ref', seen['ref'] + len(i[0])))
with sharded_evaluation():
    world = eval_world()[1]
    df = evaluate_checkpoint(ft, ['micro-tiny'], ref, clip_model, tok, task='micro-tiny', root=root/'data',
                             cache_dir=root/f'ckpt-{tag}', ref_cache_dir=root/f'ref-{tag}')
(root/f'{tag}-rank{d.rank}.json').write_text(json.dumps({'seen': seen, 'world': world, 'table': df.to_dict('records')}))
'''

def test_sharded_evaluation_matches_one_process(tmp_path):
    "Under torchrun each rank encodes its part of every split (reference and checkpoint); the gathered results equal one process's."
    tr = _torchrun()
    (tmp_path/'eval.py').write_text(SHARDED_EVAL)
    _run([sys.executable, str(tmp_path/'eval.py'), str(tmp_path), 'one'], _env(tmp_path/'data'))            # also prepares the data
    _run([tr, '--standalone', '--nproc-per-node', '2', str(tmp_path/'eval.py'), str(tmp_path), 'two'], _env(tmp_path/'data'))
    one = json.loads((tmp_path/'one-rank0.json').read_text())
    r0, r1 = (json.loads((tmp_path/f'two-rank{k}.json').read_text()) for k in (0, 1))
    assert (one['world'], r0['world'], r1['world']) == (1, 2, 2)
    # alone: 200 train + 101 test images through each encoder, once; two ranks: 151 and 150 each
    assert one['seen'] == {'ft': 301, 'ref': 301}, one['seen']
    assert r0['seen'] == {'ft': 151, 'ref': 151} and r1['seen'] == {'ft': 150, 'ref': 150}, (r0['seen'], r1['seen'])
    t1, t2 = pd.DataFrame(one['table']), pd.DataFrame(r0['table'])
    assert pd.DataFrame(r1['table']).equals(t2)          # every rank holds the same gathered data and fits the same probes
    _compare_results(t1, t2)
    # the reference's cached taps, gathered from both ranks in row order, equal those of one process
    f1 = sorted((tmp_path/'ref-one').rglob('*taps*.npy')); f2 = sorted((tmp_path/'ref-two').rglob('*taps*.npy'))
    assert [f.name for f in f1] == [f.name for f in f2] and len(f1) == 2
    for a, b in zip(f1, f2):
        x, y = np.load(a), np.load(b)
        assert x.shape == y.shape and np.abs(x.astype(np.float32) - y.astype(np.float32)).max() <= 2e-3
