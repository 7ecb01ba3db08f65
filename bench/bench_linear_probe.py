"""Linear-probe benchmark: the fast PyTorch back-end of `ldifs_nb.evaluate.linear_probe` against the sklearn reference,
on the same features and with the same protocol (L chosen on a 90/10 split of train from 7 values, refit, score on
test): wall time, test accuracy and chosen L side by side.

Features: CLIP-like synthetic embeddings by default (20,000 train / 5,000 test, 512-d, 45 classes: overlapping class
means in a 64-d subspace, off-subspace noise with a decaying spectrum, a shared mean direction, L2-normalised), or
`--micro TASK` for real micro-CLIP embeddings of a micro task, or `--npz FILE` with train_x, train_y, test_x, test_y.

    python bench/bench_linear_probe.py                     # paper scale, synthetic, torch's default thread count
    python bench/bench_linear_probe.py --threads 1         # both back-ends single-threaded
    python bench/bench_linear_probe.py --micro micro-position
"""
import argparse, os, time

os.environ.setdefault('LDIFS_QUIET', '1')  # no progress bars in the printed report
import numpy as np
import torch

from ldifs_nb.evaluate import linear_probe


def clip_like(n: int, k: int = 45, d: int = 512, seed: int = 0, rank: int = 64, sigma: float = 2.0):
    "Synthetic L2-normalised embeddings with class structure (classes fixed by a separate seed)."
    g = np.random.default_rng(1234)
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--n', type=int, default=20000); p.add_argument('--n-test', type=int, default=5000)
    p.add_argument('--d', type=int, default=512); p.add_argument('--k', type=int, default=45)
    p.add_argument('--micro', default=None, help='use micro-CLIP embeddings of this micro task instead')
    p.add_argument('--npz', default=None, help='use features from an .npz (train_x, train_y, test_x, test_y)')
    p.add_argument('--threads', type=int, default=None, help='torch and BLAS threads for both back-ends')
    p.add_argument('--device', default=None, help="torch back-end device (default: cuda if available)")
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
    k = int(max(ytr.max(), yte.max())) + 1
    print(f"{what}: train {xtr.shape}, test {xte.shape}, {k} classes; torch threads {torch.get_num_threads()}, "
          f"device {a.device or ('cuda' if torch.cuda.is_available() else 'cpu')}")
    res, times = {}, {'torch': [], 'sklearn': []}
    for rep in range(a.reps):  # interleaved, so that both back-ends see the same machine load
        for backend in ('torch', 'sklearn'):
            t = time.perf_counter()
            res[backend] = linear_probe(xtr, ytr, xte, yte, backend=backend, n_classes=k, device=a.device if backend == 'torch' else None)
            times[backend].append(time.perf_counter() - t)
            print(f"  rep {rep + 1}: {backend} {times[backend][-1]:.1f}s (load average {os.getloadavg()[0]:.1f})", flush=True)
    med = {b: float(np.median(v)) for b, v in times.items()}
    print(f"\n{'backend':8s} {'median s':>9s} {'min s':>7s} {'test acc %':>10s} {'mean rec %':>10s} {'chosen L':>9s}   val acc % per L")
    for b, r in res.items():
        print(f"{b:8s} {med[b]:9.1f} {min(times[b]):7.1f} {r.acc:10.2f} {r.mean_recall:10.2f} {r.reg:9g}   " +
              ' '.join(f'{L:g}:{v:.1f}' for L, v in r.val_acc.items()))
    print(f"\nspeed-up torch vs sklearn (median): {med['sklearn'] / med['torch']:.1f}x "
          f"(per rep: {', '.join(f'{s / t:.1f}x' for s, t in zip(times['sklearn'], times['torch']))}); "
          f"accuracy difference torch - sklearn: {res['torch'].acc - res['sklearn'].acc:+.2f} points")


if __name__ == '__main__':
    main()
