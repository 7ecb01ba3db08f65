"""`bench/gpu_check.py`, the one-call GPU check: what can be checked without a GPU.

`--dry-run` runs every section's code on the CPU with tiny sizes (micro-CLIP, a 48-image synthetic store, a gloo
all-reduce under torchrun, a 2-step run): a script that would break on the GPU machine for a reason that is not the
GPU (an import, a changed package function, torchrun's command line) fails here instead. Without --dry-run and
without CUDA it must stop at once with one clear error.
"""
import json, subprocess, sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1]/'bench'/'gpu_check.py'


def test_dry_run_runs_every_section(tmp_path):
    out = tmp_path/'figures.json'
    r = subprocess.run([sys.executable, SCRIPT, '--dry-run', '--json', out], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    f = json.loads(out.read_text())
    assert set(f['sections']) == {'steps', 'eval', 'allreduce', 'run'} and all(v.startswith('ok') for v in f['sections'].values()), f['sections']
    # CE and LDIFS, fp32 and bf16: four finite step times, and their ratios
    assert sorted((s['precision'], s['method']) for s in f['steps']) == [(p, m) for p in ('bf16', 'fp32') for m in ('zs-init-ce', 'zs-init-ldifs')]
    assert all(s['step_s'] > 0 and s['img_per_s'] > 0 for s in f['steps'])
    assert set(f['ldifs_over_ce']) == {'micro-clip fp32', 'micro-clip bf16'}
    assert [(e['precision'], e['images']) for e in f['eval']] == [('fp32', 48), ('bf16', 48)]
    assert f['allreduce']['correct'] and f['allreduce']['backend'] == 'gloo' and f['allreduce']['world'] == 1
    assert f['run']['steps'] == 2 and f['run']['datasets'] == ['micro-shape'] and 0 <= f['run']['clf_top1_test'] <= 100


def test_without_cuda_it_stops_at_once():
    import torch
    if torch.cuda.is_available(): pytest.skip('a GPU is here: the script would run')
    r = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ''
    assert r.stderr.strip().startswith('gpu_check: error: no CUDA device here') and '--dry-run' in r.stderr, r.stderr
