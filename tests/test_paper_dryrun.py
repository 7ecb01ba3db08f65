"""A paper-scale dry run on CPU: the used-by command for the paper's GTSRB run, made tiny.

ViT-B/32 with random weights saved to a local file stands in for OpenAI's (same architecture, same tensor
names); GTSRB, MNIST and DTD are small fixtures written in torchvision's raw layouts, a few images per class,
at varied sizes (so the prepared store and the training crops see non-square, non-224 images). Only the
parameters that point at the weights and the data, and that make the run tiny, are given.
"""
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

NBS = Path(__file__).resolve().parent.parent/'nbs'


def _img(rng, h, w):
    "A smooth random RGB image (so resizing it is meaningful), uint8 [h, w, 3]."
    small = rng.integers(0, 256, (max(h // 8, 2), max(w // 8, 2), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def _save(path, a):
    path.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(path)


def write_gtsrb(raw, rng, per_class=1, n_test=8):
    "GTSRB as torchvision reads it: GTSRB/Training/<class:05d>/*.ppm, GTSRB/Final_Test/Images/*.ppm + GT-final_test.csv."
    base = raw/'gtsrb'/'gtsrb'
    for c in range(43):
        for k in range(per_class): _save(base/'GTSRB'/'Training'/f'{c:05d}'/f'{k:05d}_{c:05d}.ppm', _img(rng, *rng.integers(30, 90, 2)))
    rows = ['Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId']
    for k in range(n_test):
        h, w = rng.integers(30, 90, 2)
        _save(base/'GTSRB'/'Final_Test'/'Images'/f'{k:05d}.ppm', _img(rng, h, w))
        rows.append(f'{k:05d}.ppm;{w};{h};0;0;{w - 1};{h - 1};{int(rng.integers(43))}')
    (base/'GT-final_test.csv').write_text('\n'.join(rows) + '\n')


def write_mnist(raw, rng, n_train=20, n_test=10):
    "MNIST's IDX files in MNIST/raw/."
    d = raw/'mnist'/'MNIST'/'raw'; d.mkdir(parents=True)
    def idx(path, a): path.write_bytes(bytes([0, 0, 8, a.ndim]) + b''.join(int(s).to_bytes(4, 'big') for s in a.shape) + a.tobytes())
    for pre, n in (('train', n_train), ('t10k', n_test)):
        idx(d/f'{pre}-images-idx3-ubyte', rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        idx(d/f'{pre}-labels-idx1-ubyte', (np.arange(n) % 10).astype(np.uint8))


def write_dtd(raw, rng, classes=('banded', 'dotted', 'striped', 'zigzagged'), per_class=2):
    "DTD: dtd/images/<class>/*.jpg + dtd/labels/{train,test}1.txt (partition 1); images larger than 224 px."
    base = raw/'dtd'/'dtd'/'dtd'
    for split in ('train', 'test'):
        lines = []
        for c in classes:
            for k in range(per_class):
                f = f'{c}/{c}_{split}_{k}.jpg'; lines.append(f)
                _save(base/'images'/f, _img(rng, *rng.integers(240, 330, 2)))
        (base/'labels').mkdir(exist_ok=True); (base/'labels'/f'{split}1.txt').write_text('\n'.join(lines) + '\n')


@pytest.fixture(scope='module')
def paper_setup(tmp_path_factory):
    "Random ViT-B/32 weights in a local file and three fixture datasets."
    import open_clip, torch
    from safetensors.torch import save_file
    root = tmp_path_factory.mktemp('paper')
    torch.manual_seed(0)
    model = open_clip.create_model('ViT-B-32-quickgelu', pretrained=None)
    weights = root/'vit-b-32-random.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    rng = np.random.default_rng(0)
    data = root/'data'
    write_gtsrb(data/'raw', rng); write_mnist(data/'raw', rng); write_dtd(data/'raw', rng)
    return root, weights, data


@pytest.mark.slow
def test_paper_dry_run(paper_setup, tmp_path):
    "papermill nbs/run_experiment.ipynb out.ipynb -p method ldifs -p dataset gtsrb, pointed at local weights and data, tiny."
    root, weights, data = paper_setup
    runs = tmp_path/'runs'
    cmd = [sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(tmp_path/'out.ipynb'),
           '-p', 'method', 'ldifs', '-p', 'dataset', 'gtsrb',
           '-p', 'pretrained', str(weights), '-p', 'data_root', str(data),
           '-p', 'steps', '2', '-p', 'batch_size', '8', '-p', 'eval_datasets', 'gtsrb,mnist,dtd',
           '-p', 'ckpt_fractions', '0,1', '-p', 'out_dir', str(runs), '-p', 'device', 'cpu', '--cwd', str(NBS)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env={**__import__('os').environ, 'LDIFS_QUIET': '1'})
    assert r.returncode == 0, r.stderr[-4000:]
    rd = runs/'gtsrb'/'lp-init-ldifs'/'0'
    man = json.loads((rd/'manifest.json').read_text())
    cfg = man['config']
    assert man['activation'] == 'QuickGELU'                       # OpenAI's architecture, from a local file
    assert (cfg['model'], cfg['quick_gelu'], cfg['augment'], cfg['lp_protocol']) == ('ViT-B-32-quickgelu', True, True, 'adamw')
    assert man['status'] == 'finished' and [c['step'] for c in man['checkpoints']] == [0, 2]
    assert all((rd/c['file']).exists() for c in man['checkpoints'])
    res = pd.read_csv(rd/'results.csv')
    assert set(res['dataset']) >= {'gtsrb', 'mnist', 'dtd'}
    assert sorted(res['step'].unique()) == [0, 2]
    have = set(res['metric'])
    assert {'zs_top1', 'lp_top1', 'delta_zs', 'delta_lp', 'feature_distance', 'param_distance', 'clf_top1'} <= have
    final = res[(res['step'] == 2) & (res['split'] == 'test')]
    assert final[final['metric'] == 'lp_top1']['value'].between(0, 100).all()
    assert (res[(res['step'] == 0) & (res['metric'] == 'delta_lp')]['value'].abs() < 1e-9).all()  # step 0 is the reference
    # the LP-init head came from the released protocol: the step-0 classifier is a fitted probe, not zeros
    from safetensors.torch import load_file
    s0 = load_file(str(rd/man['checkpoints'][0]['file']))
    assert float(s0['head.weight'].abs().sum()) > 0 and tuple(s0['head.weight'].shape) == (43, 512)
    nb = json.loads((tmp_path/'out.ipynb').read_text())
    shown = ''.join(''.join(o.get('data', {}).get('text/plain', '')) for c in nb['cells'] for o in c.get('outputs', []))
    assert 'delta_lp' in shown or 'Δ' in shown                   # the Δ table is in the executed notebook
