"""Evaluation against its bound: `evaluate_run` on the default micro run (`ldifs-run --dataset micro-position`) against
encoding every evaluated image once per checkpoint (the package's own `embed` over the train and test splits of the
suite, for every checkpoint), side by side in one process; and the linear probes of every checkpoint, today's
(`ldifs_nb.probe.linear_probes`: all datasets of a checkpoint fitted together) against the previous layout (a copy
below: one dataset at a time, logits [N, 5K] and `torch.softmax` over the [N·5, K] view), on the same embeddings, with
the chosen lrs, the accuracies, the probes' FLOP count and achieved FLOP/s, and the time of their matrix products alone.

    python bench/bench_eval_bound.py                       # trains the default run first (minutes)
    python bench/bench_eval_bound.py --run RUN_FOLDER      # a finished default run (e.g. from ldifs-run), not retrained
"""
import argparse, copy, math, os, shutil, tempfile, time
from pathlib import Path

import torch
import torch.nn.functional as F

from ldifs_nb.data import load_split, default_root, get_dataset, xval_indices
from ldifs_nb.models import load_clip
from ldifs_nb.losses import get_method
from ldifs_nb.evaluate import embed
from ldifs_nb.probe import (linear_probes, accuracy_scores, _threads_for, _linear_init, _first_best, _probe_groups,
                            LP_LRS, LP_STEPS)
from ldifs_nb.train import resolve_config, finetune
from ldifs_nb.runs import checkpoint_states, split_state, read_manifest, run_config
from ldifs_nb.experiment import evaluate_run


# ---- the previous probe, minimal copy (as of commit 09b3921): one dataset at a time, logits [N, G·K], softmax over the [N·G, K] view
@torch.no_grad()
def old_fit_adamw(x, y, k, lrs, seed=0, steps=LP_STEPS, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8):
    (n, d), G = x.shape, len(lrs)
    x1 = torch.cat([x, x.new_ones(n, 1)], 1)
    W0, b0 = _linear_init(k, d, seed)
    P = torch.cat([W0, b0[:, None]], 1).repeat(G, 1)
    onehot = F.one_hot(y, k).to(x.dtype).repeat_interleave(G, 0)
    lr = torch.tensor(lrs, dtype=torch.float64).repeat_interleave(k)[:, None]
    decay = (1 - lr * weight_decay).float()
    m, v = torch.zeros_like(P), torch.zeros_like(P)
    for t in range(1, steps + 1):
        p = torch.softmax((x1 @ P.T).view(n * G, k), -1).sub_(onehot)
        g = p.view(n, G * k).T @ x1 / n
        P.mul_(decay)
        m.lerp_(g, 1 - betas[0])
        v.mul_(betas[1]).addcmul_(g, g, value=1 - betas[1])
        step = (lr / (1 - betas[0] ** t)).float()
        P.addcdiv_(m, (v.sqrt() / math.sqrt(1 - betas[1] ** t)).add_(eps).div_(step), value=-1)
    P = P.view(G, k, d + 1)
    return P[..., :d].contiguous(), P[..., d].contiguous()

def old_linear_probe(xtr, ytr, xte, yte, k, seed=0):
    "(test top-1, chosen lr): choose on the seeded 90/10 split of train, refit on all of it (the released protocol)."
    x, y = F.normalize(torch.as_tensor(xtr).float(), dim=-1), torch.as_tensor(ytr).long()
    tr, va = (torch.as_tensor(i) for i in xval_indices(len(y), seed))
    with _threads_for(x.numel() * k * len(LP_LRS)):
        W, b = old_fit_adamw(x[tr], y[tr], k, LP_LRS, seed)
        val = [100 * float(((x[va] @ Wg.T + bg).argmax(1) == y[va]).float().mean()) for Wg, bg in zip(W, b)]
        i = _first_best(LP_LRS, val)
        W, b = old_fit_adamw(x, y, k, LP_LRS[i:i + 1], seed)
    pred = (F.normalize(torch.as_tensor(xte).float(), dim=-1) @ W[0].T + b[0]).argmax(1).numpy()
    return accuracy_scores(pred, yte)['top1'], LP_LRS[i]


def probe_flops(n: int, d: int, k: int, G: int = len(LP_LRS), steps: int = LP_STEPS) -> float:
    "Multiply-add FLOPs of the two products of every step of one probe (selection on 90 % with G lrs, refit with one)."
    n_sel = len(xval_indices(n, 0)[0])
    return steps * 2 * 2 * (d + 1) * k * (n_sel * G + n)

def products_alone(problems, seed=0, steps=100) -> float:
    "Seconds of the two batched products per step alone, for the groups `linear_probes` makes (selection and refit), scaled to LP_STEPS."
    total = 0.
    for G in (len(LP_LRS), 1):
        probs = []
        for xtr, ytr, _, _, k in problems:
            n = len(xval_indices(len(ytr), seed)[0]) if G > 1 else len(ytr)
            probs.append((torch.zeros(n, xtr.shape[1]), None, k, LP_LRS[:G]))
        for idx in _probe_groups(probs):
            B, k, d, n = len(idx), probs[idx[0]][2], probs[idx[0]][0].shape[1], max(len(probs[i][0]) for i in idx)
            X, P, L = torch.randn(B, n, d + 1), torch.randn(B, G * k, d + 1), torch.empty(B, G * k, n)
            with _threads_for(B * n * (d + 1) * k * G):
                torch.bmm(P, X.mT, out=L); torch.bmm(L, X)
                t0 = time.perf_counter()
                for _ in range(steps): torch.bmm(P, X.mT, out=L); torch.bmm(L, X)
                total += (time.perf_counter() - t0) * LP_STEPS / steps
    return total


def fresh_root(src: Path, dst: Path) -> Path:
    "A data root with the prepared images of `src` and no cached embeddings (every path starts cold)."
    shutil.copytree(src/'cache', dst/'cache'); return dst

def main(a):
    src = Path(a.data_root or default_root())
    tmp = Path(tempfile.mkdtemp(prefix='bench_eval_bound_'))
    if a.run: rd0 = Path(a.run)
    else:
        cfg = resolve_config(dataset='micro-position', out_dir=str(tmp/'runs'), data_root=str(src), device='cpu')
        t0 = time.perf_counter(); rd0 = finetune(cfg); print(f"trained the default run in {time.perf_counter() - t0:.1f} s")
    man = read_manifest(rd0); cfg = run_config(man)
    names = list(cfg.eval_datasets)
    for n in names:
        for s in ('train', 'test'): load_split(n, s, src, 32)               # images prepared before any timing
    clip_model, _, _ = load_clip(cfg.model, cfg.pretrained, quick_gelu=cfg.quick_gelu); base = clip_model.visual.eval()
    m = get_method(cfg.method)
    visuals = []
    for step, frac, st in checkpoint_states(rd0):
        v = copy.deepcopy(base); v.load_state_dict(split_state(st, m.objective)['visual']); visuals.append(v.eval())

    def bound(tag):
        "The reference: `embed` over the train and test split of every evaluated dataset, once per checkpoint (nothing cached)."
        out, t0, c0 = [], time.perf_counter(), time.process_time()
        for i, v in enumerate(visuals):
            out.append({(n, s): embed(v, n, s, src, device='cpu', cache_dir=tmp/f'bound_{tag}_{i}') for n in names for s in ('train', 'test')})
        t = (time.perf_counter() - t0, time.process_time() - c0)
        for i in range(len(visuals)): shutil.rmtree(tmp/f'bound_{tag}_{i}')
        return t, out

    def evaluation(tag, root):
        rd = tmp/f'run_{tag}'; shutil.rmtree(rd, ignore_errors=True)
        shutil.copytree(rd0, rd, ignore=shutil.ignore_patterns('results', 'results.csv', 'embeddings'))
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate_run(rd, device='cpu', data_root=str(root)); return time.perf_counter() - t0, time.process_time() - c0

    root = fresh_root(src, tmp/'d_eval')
    load0 = os.getloadavg()
    t_b1, embs = bound('a')
    t_cold = evaluation('cold', root)                                         # the reference's side computed too
    t_warm = evaluation('warm', root)                                         # the reference's side cached (every later run)
    t_b2, _ = bound('b')
    t_b = [(x + y) / 2 for x, y in zip(t_b1, t_b2)]
    print(f"load average before / after: {load0[0]:.1f} / {os.getloadavg()[0]:.1f} (2-core machine shared with other jobs); "
          f"torch threads {torch.get_num_threads()}")
    for j, what in enumerate(('wall', 'CPU (this process, all threads; less sensitive to other jobs)')):
        print(f"{what} time:")
        print(f"  bound (embed over train+test of {len(names)} datasets x {len(visuals)} checkpoints): {t_b1[j]:.1f} s, {t_b2[j]:.1f} s (mean {t_b[j]:.1f} s)")
        print(f"  evaluate_run: {t_cold[j]:.1f} s cold (reference's side computed), {t_warm[j]:.1f} s warm (reference cached)")
        print(f"  evaluation / bound: {t_cold[j] / t_b[j]:.2f} cold, {t_warm[j] / t_b[j]:.2f} warm   (target <= 2)")

    # ---- the probes, today's against the previous layout, on the same embeddings, interleaved checkpoint by checkpoint
    y = {(n, s): load_split(n, s, src, 32).labels for n in names for s in ('train', 'test')}
    t_new = t_old = flops = 0.; same_lr, max_dacc, t_prod = True, 0., 0.
    for i, e in enumerate(embs):
        problems = [(e[n, 'train'], y[n, 'train'], e[n, 'test'], y[n, 'test'], len(get_dataset(n).classnames)) for n in names]
        flops += sum(probe_flops(len(p[1]), p[0].shape[1], p[4]) for p in problems)
        t0 = time.perf_counter(); new = linear_probes(problems, seed=cfg.seed); t_new += time.perf_counter() - t0
        if not a.skip_old:
            t0 = time.perf_counter(); old = [old_linear_probe(*p[:4], p[4], cfg.seed) for p in problems]; t_old += time.perf_counter() - t0
            for n, r, (acc, lr) in zip(names, new, old):
                same_lr &= r.lr == lr; max_dacc = max(max_dacc, abs(r.acc - acc))
                if r.lr != lr or abs(r.acc - acc) > 0.1: print(f"  checkpoint {i} {n}: new {r.acc:.2f} (lr {r.lr}), old {acc:.2f} (lr {lr})")
        if i == 0: t_prod = products_alone(problems, cfg.seed) * len(embs)
    print(f"probes of {len(embs)} checkpoints x {len(names)} datasets ({len(embs) * len(names)} probes, 5-lr selection + refit, "
          f"{LP_STEPS} steps): {flops / 1e12:.3f} TFLOP in the products")
    print(f"  today (linear_probes, all datasets of a checkpoint together): {t_new:.1f} s = {flops / t_new / 1e9:.1f} GFLOP/s; "
          f"its products alone: {t_prod:.1f} s ({flops / t_prod / 1e9:.1f} GFLOP/s), so the probe costs {t_new / t_prod:.2f}x its products")
    if not a.skip_old:
        print(f"  previous layout (copy in this script): {t_old:.1f} s = {flops / t_old / 1e9:.1f} GFLOP/s; speed-up {t_old / t_new:.1f}x")
        print(f"  same chosen lr everywhere: {same_lr}; max |test accuracy today - previous|: {max_dacc:.2f} points")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    shutil.rmtree(tmp, ignore_errors=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--run', default=None, help='a finished default run folder (default: train it first)')
    p.add_argument('--data-root', default=None)
    p.add_argument('--skip-old', action='store_true', help='no previous-probe comparison')
    main(p.parse_args())
