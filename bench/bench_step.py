"""Step benchmark: time and peak memory of one optimisation step of each of the eight methods, on the
same model and batch, printed as ratios to zs-init-ce measured side by side (methods interleaved
round-robin in one process for time; one fresh subprocess per method for peak memory).

    python bench/bench_step.py                      # ViT-B-32 (random init), batch 8, and micro-CLIP, batch 64
    python bench/bench_step.py --models ViT-B-32 --batch 4 --reps 3
"""
import argparse, copy, os, subprocess, sys, time

import torch
import torch.nn.functional as F

from ldifs_nb.models import load_clip, ImageClassifier
from ldifs_nb.losses import METHODS, method_loss, reference_params, class_prompt_tokens


def setup(model_name: str, method: str, batch: int, seed: int = 0):
    "Model, optimiser and one fixed batch for `method` (random-init weights: timing does not depend on them)."
    torch.manual_seed(seed)
    clip, _, tok = load_clip(model_name, pretrained='random')
    m = METHODS[method]
    size = clip.visual.image_size[0] if isinstance(clip.visual.image_size, (tuple, list)) else clip.visual.image_size
    K = 10
    x, y = torch.randn(batch, 3, size, size), torch.arange(batch) % K
    if m.objective == 'ce':
        head = F.normalize(torch.randn(K, clip.text_projection.shape[1]), dim=-1)
        net = ImageClassifier(copy.deepcopy(clip.visual), head, torch.zeros(K) if m.init == 'lp' else None, scale=100.)
        ref = copy.deepcopy(clip.visual).eval().requires_grad_(False)
        kw = dict(ref_encoder=ref, ref_params=reference_params(ref) if m.regulariser == 'l2sp' else None)
        params = list(net.parameters())
    else:
        net = copy.deepcopy(clip)
        names = [f'class {i}' for i in range(K)]
        kw = dict(class_tokens=class_prompt_tokens(tok, names, ['a photo of a {}.', 'a {}.']), logit_scale=100.,
                  generator=torch.Generator().manual_seed(seed))
        params = [p for n, p in net.named_parameters() if not n.startswith('logit_')]
    net.train()
    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.1)
    def step():
        out = method_loss(m, net, x, y, **kw)
        opt.zero_grad(set_to_none=True); out['loss'].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0); opt.step()
    return step


def rss_mb() -> float:
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def peak_child(model_name, method, batch):
    "Run in a fresh subprocess: peak RSS growth (MB) during two steps after one warm-up step, sampled every ms."
    import threading
    step = setup(model_name, method, batch)
    step()
    base, peak, done = rss_mb(), [0.], threading.Event()
    def sample():
        while not done.is_set(): peak[0] = max(peak[0], rss_mb()); time.sleep(0.001)
    t = threading.Thread(target=sample); t.start()
    step(); step()
    done.set(); t.join()
    return peak[0] - base


def bench(model_name, batch, reps):
    mem = {}
    for m in METHODS:  # before the timing models exist, so each child starts small
        r = subprocess.run([sys.executable, __file__, '--child', model_name, m, str(batch)], capture_output=True, text=True)
        mem[m] = float(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else float('nan')
    steps = {m: setup(model_name, m, batch) for m in METHODS}
    for s in steps.values(): s()  # warm-up
    times = {m: [] for m in METHODS}
    for _ in range(reps):
        for m, s in steps.items():
            t0 = time.perf_counter(); s(); times[m].append(time.perf_counter() - t0)
    del steps
    med = {m: sorted(v)[len(v) // 2] for m, v in times.items()}
    print(f"\n{model_name}, batch {batch}, {reps} interleaved reps (median step time), peak memory growth of a step")
    print(f"{'method':15s} {'step s':>8s} {'time/CE':>8s} {'peak MB':>9s} {'mem/CE':>7s}")
    for m in METHODS:
        print(f"{m:15s} {med[m]:8.3f} {med[m] / med['zs-init-ce']:8.2f} {mem[m]:9.0f} {mem[m] / mem['zs-init-ce']:7.2f}")
    return med, mem


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        torch.set_num_threads(int(os.environ.get('BENCH_THREADS', torch.get_num_threads())))
        print(peak_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))); sys.exit(0)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=['ViT-B-32', 'micro-clip'])
    p.add_argument('--batch', type=int, nargs='+', default=None, help='one per model (default 8 for ViT-B-32, 64 otherwise)')
    p.add_argument('--reps', type=int, default=5)
    a = p.parse_args()
    batches = a.batch or [8 if m.startswith('ViT') else 64 for m in a.models]
    for mname, b in zip(a.models, batches): bench(mname, b, a.reps)
