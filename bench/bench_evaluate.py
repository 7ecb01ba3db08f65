"""Evaluation benchmark: the default micro run's evaluation time against its training time, and the evaluation engine
(`ldifs_nb.evaluate.evaluate_checkpoint`: one forward per image per checkpoint, the reference's side cached once) against
the old path (a minimal copy below: embeddings, then two more forwards per image for the feature distance, the reference
re-run at every checkpoint), on the same checkpoints and datasets, side by side in one process; plus how far bf16
autocast moves the ZS/LP accuracies of the micro suite against fp32 (`--precision`).

    python bench/bench_evaluate.py                 # ldifs-run --method ldifs --dataset micro-position, then both paths
    python bench/bench_evaluate.py --steps 24 --ckpts 0,0.5,1 --datasets micro-position,micro-shape   # a shorter run, extrapolated
    python bench/bench_evaluate.py --precision     # fp32 vs bf16: accuracies and embedding time on the micro suite
"""
import argparse, copy, shutil, tempfile, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ldifs_nb.data import load_split, eval_batch, default_root, get_dataset, MICRO_DATASETS
from ldifs_nb.models import load_clip, image_size_of, norm_stats
from ldifs_nb.features import tap_features
from ldifs_nb.losses import ldifs_distance, get_method
from ldifs_nb.evaluate import (evaluate_checkpoint, zeroshot_accuracy, linear_probe, param_distance, dataset_head,
                               model_fingerprint, accuracies, fd_rows)
from ldifs_nb.train import resolve_config, finetune
from ldifs_nb.runs import checkpoint_states, split_state
from ldifs_nb.experiment import evaluate_run


# ---- the old path, minimal copy (as of commit 95f049b): every checkpoint re-runs itself AND the reference for the distance
def old_normalize(feats, eps=1e-10): return [f / (f.norm(dim=1, keepdim=True) + eps) for f in feats]

@torch.no_grad()
def old_embed(visual, name, split, root, device, cache, batch_size=256):
    key = (model_fingerprint(visual), name, split)
    if key not in cache:                                   # the old path cached embeddings per fingerprint (on disk)
        ds = load_split(name, split, root, image_size_of(visual)); size, (mean, std) = image_size_of(visual), norm_stats(visual)
        visual.eval()
        cache[key] = torch.cat([F.normalize(visual(eval_batch(ds, np.arange(i, min(len(ds), i + batch_size)), size, mean, std, device)).float(), dim=-1)
                                for i in range(0, len(ds), batch_size)]).numpy()
    return cache[key]

@torch.no_grad()
def old_feature_distance(visual, ref, name, split, root, device, max_examples=2000, batch_size=128):
    ds = load_split(name, split, root, image_size_of(visual)); size, (mean, std) = image_size_of(visual), norm_stats(visual)
    idx, total = fd_rows(len(ds), max_examples), 0.
    for i in range(0, len(idx), batch_size):
        x = eval_batch(ds, idx[i:i + batch_size], size, mean, std, device)
        feats = []
        for enc in (visual, ref):
            with tap_features(enc) as t: enc(x)
            feats.append(old_normalize(t))
        total += float(ldifs_distance(*feats, 'none').sum())
    return total / len(idx)

def old_evaluate_checkpoint(visual, ref, clip_model, tok, datasets, task, root, device, seed, cache):
    rows, same = [], model_fingerprint(visual) == model_fingerprint(ref)
    for name in datasets:
        head, acc = dataset_head(clip_model, tok, name), {}
        for enc, key in ((visual, ''), (ref, 'ref_')):
            e = {s: old_embed(enc, name, s, root, device, cache) for s in ('train', 'test')}
            y = {s: load_split(name, s, root, image_size_of(enc)).labels for s in ('train', 'test')}
            ck = ('scores', model_fingerprint(enc), name)
            if ck not in cache:
                lp = linear_probe(e['train'], y['train'], e['test'], y['test'], seed=seed, n_classes=len(get_dataset(name).classnames), device=device)
                cache[ck] = {'zs_top1': zeroshot_accuracy(e['test'], y['test'], head)['top1'], 'lp_top1': lp.acc}
            acc |= {key + k: v for k, v in cache[ck].items()}
        rows += [(name, 'test', k, acc[k]) for k in ('zs_top1', 'lp_top1')]
        rows += [(name, 'test', 'delta_zs', acc['zs_top1'] - acc['ref_zs_top1']), (name, 'test', 'delta_lp', acc['lp_top1'] - acc['ref_lp_top1'])]
        for s in (('train', 'test') if name == task else ('test',)):
            rows.append((name, s, 'feature_distance', 0. if same else old_feature_distance(visual, ref, name, s, root, device)))
    rows.append((task, '-', 'param_distance', param_distance(visual, ref)))
    return pd.DataFrame(rows, columns=['dataset', 'split', 'metric', 'value'])


def fresh_root(src: Path, dst: Path) -> Path:
    "A data root with the prepared images of `src` and no cached embeddings (every path starts cold)."
    shutil.copytree(src/'cache', dst/'cache'); return dst

def compare(args):
    src = Path(args.data_root or default_root())
    tmp = Path(tempfile.mkdtemp())
    for n in MICRO_DATASETS: load_split(n, 'test', src, 32)                  # images prepared before any timing
    kw = dict(steps=args.steps) if args.steps else {}
    if args.ckpts: kw['ckpt_fractions'] = tuple(float(f) for f in args.ckpts.split(','))
    if args.datasets: kw['eval_datasets'] = tuple(args.datasets.split(','))
    cfg = resolve_config(method='ldifs', dataset='micro-position', out_dir=str(tmp/'runs'), data_root=str(fresh_root(src, tmp/'d_train')), device='cpu', **kw)
    full = resolve_config(method='ldifs', dataset='micro-position')          # the default run, for the extrapolation
    t0 = time.perf_counter(); rd = finetune(cfg); t_train = time.perf_counter() - t0
    from ldifs_nb.data import load_split as _ls
    from ldifs_nb.train import total_steps
    steps, steps_full = total_steps(cfg, len(_ls(cfg.dataset, 'train90', src, 32))), total_steps(full, len(_ls(full.dataset, 'train90', src, 32)))
    root_new, root_old = fresh_root(src, tmp/'d_new'), fresh_root(src, tmp/'d_old')
    t0 = time.perf_counter(); res = evaluate_run(rd, device='cpu', data_root=str(root_new)); t_eval = time.perf_counter() - t0
    shutil.rmtree(rd/'results'); (rd/'results.csv').unlink()
    t0 = time.perf_counter(); evaluate_run(rd, device='cpu', data_root=str(root_new)); t_eval_warm = time.perf_counter() - t0
    # the two paths on the same checkpoints, interleaved checkpoint by checkpoint
    clip_model, _, tok = load_clip(cfg.model, cfg.pretrained); ref = clip_model.visual.eval()
    m, cache, t_new, t_old, diffs = get_method(cfg.method), {}, 0., 0., []
    for step, frac, st in checkpoint_states(rd):
        v = copy.deepcopy(ref); v.load_state_dict(split_state(st, m.objective)['visual']); v.eval()
        t0 = time.perf_counter()
        new = evaluate_checkpoint(v, cfg.eval_datasets, ref, clip_model, tok, task=cfg.dataset, root=root_old, device='cpu',
                                  seed=cfg.seed, cache_dir=tmp/'ck', ref_cache_dir=tmp/'refcache')
        shutil.rmtree(tmp/'ck', ignore_errors=True); t_new += time.perf_counter() - t0
        t0 = time.perf_counter()
        old = old_evaluate_checkpoint(v, ref, clip_model, tok, cfg.eval_datasets, cfg.dataset, root_old, 'cpu', cfg.seed, cache)
        cache = {k: x for k, x in cache.items() if model_fingerprint(ref) in k}   # the old path kept the reference's only
        t_old += time.perf_counter() - t0
        j = old.merge(new, on=['dataset', 'split', 'metric'], suffixes=('_old', '_new'))
        diffs.append(j.assign(step=step))
    d = pd.concat(diffs); d['abs'] = (d['value_new'] - d['value_old']).abs(); d['rel'] = d['abs'] / d['value_old'].abs().clip(lower=1e-12)
    print(f"machine: {torch.get_num_threads()} threads, shared with other engineers' jobs (ratios only)")
    n_ck, n_ds = len(checkpoint_states(rd)), len(cfg.eval_datasets)
    print(f"training: {t_train:.1f} s for {steps} steps; evaluate_run ({n_ck} checkpoints x {n_ds} datasets): {t_eval:.1f} s cold, "
          f"{t_eval_warm:.1f} s with the reference cached")
    print(f"evaluation / training, this run: {t_eval / t_train:.2f} cold, {t_eval_warm / t_train:.2f} warm")
    if (steps, n_ck, n_ds) != (steps_full, len(full.ckpt_fractions), len(full.eval_datasets)):
        scale = (len(full.ckpt_fractions) / n_ck) * (len(full.eval_datasets) / n_ds) / (steps_full / steps)
        print(f"extrapolated to the default run ({steps_full} steps, {len(full.ckpt_fractions)} checkpoints x {len(full.eval_datasets)} "
              f"datasets, evaluation linear in checkpoints x datasets, training in steps): evaluation / training ≈ "
              f"{t_eval * scale / t_train:.2f} cold, {t_eval_warm * scale / t_train:.2f} warm")
    print(f"same checkpoints, interleaved: old path {t_old:.1f} s, engine {t_new:.1f} s, old / engine = {t_old / t_new:.2f}")
    acc = d[d['metric'].str.contains('top1|delta')]; fdm = d[d['metric'] == 'feature_distance']
    print(f"max |engine - old|: accuracies and deltas {acc['abs'].max():.2e} points; feature distance relative {fdm['rel'].max():.2e} "
          f"(absolute {fdm['abs'].max():.2e}); param distance {d[d['metric'] == 'param_distance']['abs'].max():.2e}")
    sizes = {p: sum(f.stat().st_size for f in Path(p).rglob('*') if f.is_file()) for p in (rd, root_new/'embeddings')}
    print(f"run folder: {sizes[rd] / 2**20:.1f} MiB ({', '.join(sorted(x.name for x in rd.iterdir()))}); "
          f"reference cache: {sizes[root_new/'embeddings'] / 2**20:.1f} MiB")

def precision(args):
    root = args.data_root
    clip_model, _, tok = load_clip('micro-clip'); ref = clip_model.visual.eval()
    rows = []
    for name in MICRO_DATASETS:
        head = dataset_head(clip_model, tok, name)
        r = {}
        for p in ('fp32', 'bf16'):
            cache = Path(tempfile.mkdtemp())
            t0 = time.perf_counter(); a = accuracies(ref, name, head, root, 'cpu', precision=p, cache_dir=cache); t = time.perf_counter() - t0
            r |= {f'zs_{p}': a['zs_top1'], f'lp_{p}': a['lp_top1'], f's_{p}': t}
        rows.append(dict(dataset=name, **r))
    df = pd.DataFrame(rows)
    df['zs_moved'], df['lp_moved'] = df['zs_bf16'] - df['zs_fp32'], df['lp_bf16'] - df['lp_fp32']
    print(df.round(2).to_string(index=False))
    print(f"max |moved|: ZS {df['zs_moved'].abs().max():.2f}, LP {df['lp_moved'].abs().max():.2f} points; "
          f"time bf16 / fp32 (embeddings + probes, CPU): {df['s_bf16'].sum() / df['s_fp32'].sum():.2f}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--precision', action='store_true', help='fp32 vs bf16 accuracies on the micro suite (CPU)')
    p.add_argument('--data-root', default=None)
    p.add_argument('--steps', type=int, default=None, help='fewer training steps than the default run (then extrapolated)')
    p.add_argument('--ckpts', default=None, help='checkpoint fractions, e.g. 0,0.5,1 (default: the run default, 6)')
    p.add_argument('--datasets', default=None, help='evaluation datasets, comma-separated (default: the micro suite)')
    a = p.parse_args()
    precision(a) if a.precision else compare(a)
