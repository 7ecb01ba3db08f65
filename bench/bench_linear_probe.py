"""Linear-probe benchmark: the protocols of `ldifs_nb.probe.linear_probe` on the same features, side by side
(wall time, test accuracy, chosen hyper-parameter, held-out accuracy per value), interleaved repetitions:

- `adamw`        the default, released protocol: the 5 learning rates fitted in one batched full-batch AdamW run
                 (1,000 steps) on a 90/10 split of train, the first best on the 10 %, one refit on all of train;
- `adamw-loop`   the same protocol written plainly as in the released code: `nn.Linear` + `torch.optim.AdamW`, one
                 lr after the other, then the refit (same seeded init, same selection);
- `l2-torch`     the L-grid protocol (7 values of L on the 90/10 split, refit), preconditioned L-BFGS back-end;
- `l2-sklearn`   the same with sklearn's LogisticRegression, the reference.

Features: CLIP-like synthetic embeddings by default (20,000 train / 5,000 test, 512-d, 45 classes: overlapping class
means in a 64-d subspace, off-subspace noise with a decaying spectrum, a shared mean direction, L2-normalised), or
`--micro TASK` for real micro-CLIP embeddings of a micro task, or `--npz FILE` with train_x, train_y, test_x, test_y.

    python bench/bench_linear_probe.py                     # paper scale, synthetic, torch's default thread count
    python bench/bench_linear_probe.py --threads 1         # both back-ends single-threaded
    python bench/bench_linear_probe.py --micro micro-position
    python bench/bench_linear_probe.py --n 4000 --n-test 2000 --d 128 --k 20 --threads 1   # a size the loop runs in minutes on CPU
    python bench/bench_linear_probe.py --methods adamw,l2-sklearn                          # only some of them
"""
import argparse, os, time

os.environ.setdefault('LDIFS_QUIET', '1')  # no progress bars in the printed report
import numpy as np
import torch

import torch.nn as nn
import torch.nn.functional as F

from ldifs_nb.data import xval_indices
from ldifs_nb.evaluate import linear_probe, accuracy_scores, LP_LRS, LP_STEPS

METHODS = ('adamw', 'adamw-loop', 'l2-torch', 'l2-sklearn')


def clip_like(n: int, k: int = 45, d: int = 512, seed: int = 0, rank: int = 64, sigma: float = 2.0):
    "Synthetic L2-normalised embeddings with class structure (classes fixed by a separate seed)."
    g, rank = np.random.default_rng(1234), min(rank, d)
    basis = np.linalg.qr(g.normal(size=(d, rank)))[0]
    means = g.normal(size=(k, rank))
    common = g.normal(size=d); common *= 2.0 / np.linalg.norm(common)
    rot = np.linalg.qr(g.normal(size=(d, d)))[0]
    spectrum = np.exp(-np.arange(d) / 100.0)
    r = np.random.default_rng(seed)
    y = r.integers(0, k, n)
    z = means[y] + sigma * r.normal(size=(n, rank))
    x = z @ basis.T / np.sqrt(rank) + 0.5 * (r.normal(size=(n, d)) * spectrum) @ rot.T + common
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


def micro_features(task: str, root=None):
    "micro-CLIP embeddings of a micro task (computed once, cached by ldifs_nb.evaluate.embed)."
    from ldifs_nb.models import load_clip
    from ldifs_nb.data import load_split
    from ldifs_nb.evaluate import embed
    visual = load_clip('micro-clip').model.visual
    out = []
    for split in ('train', 'test'):
        out += [embed(visual, task, split, root), load_split(task, split, root, 32).labels]
    return out


def adamw_loop(xtr, ytr, xte, yte, k: int, device, seed: int = 0):
    "The released probe written plainly: per lr nn.Linear + torch.optim.AdamW, first best on 10 % of train, refit, test."
    x, y = F.normalize(torch.as_tensor(xtr, device=device), dim=-1), torch.as_tensor(ytr, device=device)
    def fit(x, y, lr):
        torch.manual_seed(seed); lin = nn.Linear(x.shape[1], k).to(device)
        opt = torch.optim.AdamW(lin.parameters(), lr=lr)
        for _ in range(LP_STEPS):
            opt.zero_grad(); F.cross_entropy(lin(x), y).backward(); opt.step()
        return lin
    def acc(lin, x, y):
        with torch.no_grad(): return accuracy_scores(lin(x).argmax(1).cpu().numpy(), np.asarray(y))['top1']
    tr, va = (torch.as_tensor(i, device=device) for i in xval_indices(len(y), seed))
    val = {lr: acc(fit(x[tr], y[tr], lr), x[va], ytr[va.cpu().numpy()]) for lr in LP_LRS}
    best = max(LP_LRS, key=lambda lr: (val[lr], -LP_LRS.index(lr)))
    lin = fit(x, y, best)
    with torch.no_grad(): pred = lin(F.normalize(torch.as_tensor(xte, device=device), dim=-1)).argmax(1).cpu().numpy()
    return argparse.Namespace(**accuracy_scores(pred, yte), hparam=best, val_acc=val)


def run(method: str, xtr, ytr, xte, yte, k: int, device):
    if method == 'adamw-loop': return adamw_loop(xtr, ytr, xte, yte, k, device)
    protocol, backend = {'adamw': ('adamw', 'torch'), 'l2-torch': ('l2', 'torch'), 'l2-sklearn': ('l2', 'sklearn')}[method]
    r = linear_probe(xtr, ytr, xte, yte, protocol, backend, n_classes=k, device=device if backend == 'torch' else None)
    return argparse.Namespace(top1=r.acc, mean_recall=r.mean_recall, hparam=r.hparam, val_acc=r.val_acc)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=20000); p.add_argument('--n-test', type=int, default=5000)
    p.add_argument('--d', type=int, default=512); p.add_argument('--k', type=int, default=45)
    p.add_argument('--micro', default=None, help='use micro-CLIP embeddings of this micro task instead')
    p.add_argument('--npz', default=None, help='use features from an .npz (train_x, train_y, test_x, test_y)')
    p.add_argument('--threads', type=int, default=None, help='torch and BLAS threads for both back-ends')
    p.add_argument('--device', default=None, help="device of the torch methods (default: cuda if available)")
    p.add_argument('--methods', default=','.join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}")
    p.add_argument('--reps', type=int, default=3, help='interleaved repetitions (times: median)')
    a = p.parse_args()
    if a.threads:
        from threadpoolctl import threadpool_limits
        torch.set_num_threads(a.threads); threadpool_limits(a.threads)
    if a.npz:
        f = np.load(a.npz, allow_pickle=False); xtr, ytr, xte, yte = f['train_x'], f['train_y'], f['test_x'], f['test_y']; what = a.npz
    elif a.micro:
        xtr, ytr, xte, yte = micro_features(a.micro); what = f'micro-CLIP embeddings of {a.micro}'
    else:
        xtr, ytr = clip_like(a.n, a.k, a.d, seed=0); xte, yte = clip_like(a.n_test, a.k, a.d, seed=1); what = 'CLIP-like synthetic'
    methods = [m for m in a.methods.split(',') if m]
    if bad := [m for m in methods if m not in METHODS]: p.error(f"unknown methods {bad}; valid: {', '.join(METHODS)}")
    dev = torch.device(a.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    k = int(max(ytr.max(), yte.max())) + 1
    print(f"{what}: train {xtr.shape}, test {xte.shape}, {k} classes; torch threads {torch.get_num_threads()}, device {dev}")
    res, times = {}, {m: [] for m in methods}
    for rep in range(a.reps):  # interleaved, so that every method sees the same machine load
        for m in methods:
            if dev.type == 'cuda': torch.cuda.synchronize()
            t = time.perf_counter()
            res[m] = run(m, xtr, ytr, xte, yte, k, dev)
            if dev.type == 'cuda': torch.cuda.synchronize()
            times[m].append(time.perf_counter() - t)
            print(f"  rep {rep + 1}: {m} {times[m][-1]:.1f}s (load average {os.getloadavg()[0]:.1f})", flush=True)
    med = {m: float(np.median(v)) for m, v in times.items()}
    print(f"\n{'method':11s} {'median s':>9s} {'min s':>7s} {'test acc %':>10s} {'mean rec %':>10s} {'chosen':>7s}   held-out acc % per value")
    for m, r in res.items():
        print(f"{m:11s} {med[m]:9.1f} {min(times[m]):7.1f} {r.top1:10.2f} {r.mean_recall:10.2f} {r.hparam:7g}   " +
              ' '.join(f'{h:g}:{v:.1f}' for h, v in r.val_acc.items()))
    def ratio(slow, fast, what):
        if slow in res and fast in res:
            print(f"{what}: {med[slow] / med[fast]:.1f}x (median; per rep: "
                  f"{', '.join(f'{s / f:.1f}x' for s, f in zip(times[slow], times[fast]))}); "
                  f"accuracy {fast} - {slow}: {res[fast].top1 - res[slow].top1:+.2f} points")
    print()
    ratio('adamw-loop', 'adamw', 'speed-up adamw batched vs per-lr loop')
    ratio('l2-sklearn', 'adamw', 'time l2-sklearn / adamw')
    ratio('l2-sklearn', 'l2-torch', 'speed-up l2 torch vs sklearn')


if __name__ == '__main__':
    main()
