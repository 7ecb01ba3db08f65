"""GPU check in one short call: what this package does on one GPU, without weights or data (≤ 8 minutes on one GPU).

Random-init open_clip ViT-B/32 and ViT-L/14 (`pretrained=None`) and a synthetic image store, so nothing is
downloaded. It measures, in one process:
  1. training steps, CE (zs-init-ce) against LDIFS (zs-init-ldifs), in fp32 and in bf16 autocast, TF32 matmuls
     on: step time, images/s and peak GPU memory (a batch that does not fit is halved until it does, and said);
  2. evaluation: images/s of the package's `embed` (the encoder over a stored split) in fp32 and bf16;
  3. one NCCL all-reduce under torchrun with 1 rank (this script started again as torchrun's worker);
  4. a 20-step LDIFS run on a micro task with the evaluation of the micro suite (`run_experiment`, device cuda).
Every section stops at the first error and says so; the others still run. Sections past the time budget are
skipped. The figures are printed, and written as JSON with `--json`.

    python bench/gpu_check.py                          # on a machine with a GPU
    python bench/gpu_check.py --json gpu_check.json    # also keep the figures
    python bench/gpu_check.py --dry-run                # the same code paths on the CPU with tiny sizes (tests/test_gpu_check.py)
"""
import argparse, copy, json, os, shutil, subprocess, sys, tempfile, time, traceback
from pathlib import Path

DRY = dict(models=['micro-clip'], batch=4, steps=1, warmup=1, eval_images=48, allreduce_mb=1, run_steps=2)
FULL = dict(models=['ViT-B-32', 'ViT-L-14'], batch=128, steps=5, warmup=2, eval_images=2048, allreduce_mb=256, run_steps=20)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dry-run', action='store_true', help='run every section on the CPU with tiny sizes (checks the script, measures nothing)')
    p.add_argument('--models', nargs='+', default=None, help=f"open_clip models, random init (default: {' '.join(FULL['models'])})")
    p.add_argument('--batch', type=int, default=None, help=f"training batch (default: {FULL['batch']}, the paper's)")
    p.add_argument('--steps', type=int, default=None, help=f"timed training steps per setting (default: {FULL['steps']})")
    p.add_argument('--eval-images', type=int, default=None, help=f"images in the synthetic store (default: {FULL['eval_images']})")
    p.add_argument('--run-steps', type=int, default=None, help=f"steps of the micro run (default: {FULL['run_steps']})")
    p.add_argument('--budget', type=float, default=420., help='seconds after which the remaining sections are skipped (default: 420)')
    p.add_argument('--json', default=None, help='also write the figures to this JSON file')
    p.add_argument('--allreduce-worker', action='store_true', help=argparse.SUPPRESS)   # torchrun's worker (section 3)
    p.add_argument('--allreduce-mb', type=float, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for k, v in (DRY if a.dry_run else FULL).items():
        if getattr(a, k, None) is None: setattr(a, k, v)
    return a


def sync(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def peak_reset(dev):
    import torch
    if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(dev)


def peak_str(g) -> str: return 'peak n/a (CPU)' if g is None else f'peak {g} GiB'


def peak_gib(dev):
    import torch
    return round(torch.cuda.max_memory_allocated(dev) / 2**30, 2) if dev.type == 'cuda' else None


def step_setting(clip, method: str, precision: str, batch: int, steps: int, warmup: int, dev) -> dict:
    "Mean step time, images/s and peak memory of `steps` training steps of `method` (after `warmup` untimed steps)."
    import torch, torch.nn.functional as F
    from ldifs_nb.models import ImageClassifier, image_size_of
    from ldifs_nb.losses import METHODS, method_loss
    size, K = image_size_of(clip.visual), 10
    g = torch.Generator().manual_seed(0)
    head = F.normalize(torch.randn(K, clip.text_projection.shape[1], generator=g), dim=-1).to(dev)
    net = ImageClassifier(copy.deepcopy(clip.visual), head, scale=100.).to(dev).train()
    ref = copy.deepcopy(clip.visual).to(dev).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5, weight_decay=0.1)
    x = torch.randn(batch, 3, size, size, generator=g).to(dev)
    y = torch.randint(K, (batch,), generator=g).to(dev)
    peak_reset(dev)
    times = []
    for i in range(warmup + steps):
        sync(dev); t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
            out = method_loss(METHODS[method], net, x, y, ref_encoder=ref)
        opt.zero_grad(set_to_none=True); out['loss'].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0); opt.step()
        sync(dev)
        if i >= warmup: times.append(time.perf_counter() - t0)
        if not torch.isfinite(out['loss'].detach()): raise FloatingPointError(f"non-finite loss {float(out['loss'].detach())}")
    s = sum(times) / len(times)
    return dict(step_s=round(s, 4), img_per_s=round(batch / s, 1), peak_gib=peak_gib(dev), loss=round(float(out['loss'].detach()), 4))


def section_steps(a, dev, out: dict):
    "1. CE vs LDIFS steps, fp32 and bf16, on each model; a batch that does not fit is halved (and the batch used is said)."
    import torch
    from ldifs_nb.models import load_clip
    rows = out.setdefault('steps', [])
    for name in a.models:
        clip = load_clip(name, pretrained='random', device='cpu').model   # random init: no weights downloaded
        for precision in ('fp32', 'bf16'):
            for method in ('zs-init-ce', 'zs-init-ldifs'):
                b = a.batch
                while True:
                    try:
                        r = step_setting(clip, method, precision, b, a.steps, a.warmup, dev); break
                    except torch.cuda.OutOfMemoryError:
                        if b <= 8: r = dict(error=f'out of memory at batch {b}'); break
                        b //= 2
                    finally:
                        if dev.type == 'cuda': torch.cuda.empty_cache()
                rows.append(dict(model=name, precision=precision, method=method, batch=b, **r))
                print(f"  {name:10s} {precision:5s} {method:14s} batch {b:4d}  " +
                      (f"{r['step_s']:.3f} s/step  {r['img_per_s']:8.1f} img/s  {peak_str(r['peak_gib'])}" if 'step_s' in r else r['error']), flush=True)
        del clip
    for name in a.models:   # the LDIFS / CE step-time ratio, same model, precision and batch
        for precision in ('fp32', 'bf16'):
            ce, ld = ([r for r in rows if r['model'] == name and r['precision'] == precision and r['method'] == m] for m in ('zs-init-ce', 'zs-init-ldifs'))
            if ce and ld and 'step_s' in ce[0] and 'step_s' in ld[0] and ce[0]['batch'] == ld[0]['batch']:
                out.setdefault('ldifs_over_ce', {})[f'{name} {precision}'] = round(ld[0]['step_s'] / ce[0]['step_s'], 3)


def synthetic_dataset(n: int, size: int = 224):
    "A registered dataset of `n` random `size`-pixel images per split (10 classes): a store made without any download."
    import numpy as np
    from ldifs_nb.data import DatasetSpec, register_dataset

    class Synthetic:
        def __call__(self, raw, split, download=True):
            rng = np.random.default_rng(0 if split == 'train' else 1)
            return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, 10, n)
        def __str__(self): return f'bench/gpu_check.py random images ({n} per split, {size} px)'
    return register_dataset(DatasetSpec('gpu-check-synthetic', [f'class {i}' for i in range(10)], ['a photo of a {}.'], 1,
                                        Synthetic(), 'made by bench/gpu_check.py', kind='micro')).name


def section_eval(a, dev, root: Path, out: dict):
    "2. images/s of `embed` over the synthetic store (a fresh embedding cache per timing, after one untimed pass)."
    from ldifs_nb.models import load_clip, image_size_of
    from ldifs_nb.data import load_split
    from ldifs_nb.evaluate import embed
    name = synthetic_dataset(a.eval_images)
    rows = out.setdefault('eval', [])
    for model in a.models:
        visual = load_clip(model, pretrained='random', device=dev).model.visual
        load_split(name, 'test', root, image_size_of(visual))   # the store, made once (not timed)
        for precision in ('fp32', 'bf16'):
            cache = Path(tempfile.mkdtemp(dir=root))
            embed(visual, name, 'test', root, device=dev, cache_dir=cache/'warm', precision=precision)   # warm-up
            peak_reset(dev); sync(dev); t0 = time.perf_counter()
            e = embed(visual, name, 'test', root, device=dev, cache_dir=cache/'timed', precision=precision)
            sync(dev); s = time.perf_counter() - t0
            shutil.rmtree(cache)
            rows.append(dict(model=model, precision=precision, images=len(e), seconds=round(s, 3), img_per_s=round(len(e) / s, 1), peak_gib=peak_gib(dev)))
            print(f"  {model:10s} {precision:5s} embed {len(e)} images: {len(e) / s:9.1f} img/s  {peak_str(peak_gib(dev))}", flush=True)
        del visual


def allreduce_worker(a):
    "torchrun's worker: one all-reduce of `--allreduce-mb` MB (NCCL on CUDA, gloo on the CPU), its result checked; a JSON line."
    import torch, torch.distributed as dist
    cuda = torch.cuda.is_available() and not a.dry_run
    backend = 'nccl' if cuda else 'gloo'
    rank, world = int(os.environ['RANK']), int(os.environ['WORLD_SIZE'])
    dev = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}") if cuda else torch.device('cpu')
    if cuda: torch.cuda.set_device(dev)
    dist.init_process_group(backend)
    try:
        x = torch.full((int(a.allreduce_mb * 2**20 / 4),), float(rank + 1), device=dev)
        dist.all_reduce(x); sync(dev)   # the first call sets up the communicator
        x.fill_(float(rank + 1)); sync(dev)
        t0 = time.perf_counter(); dist.all_reduce(x); sync(dev); s = time.perf_counter() - t0
        want = world * (world + 1) / 2
        ok = bool(torch.all(x == want))
        v = torch.cuda.nccl.version() if cuda else None
        ver = '.'.join(map(str, v)) if isinstance(v, tuple) else None if v is None else str(v)
        if rank == 0: print(json.dumps(dict(backend=backend, nccl=ver, world=world, mb=a.allreduce_mb, seconds=round(s, 5), correct=ok)), flush=True)
    finally: dist.destroy_process_group()
    if not ok: sys.exit(f"all-reduce gave the wrong sum (expected {want})")


def section_allreduce(a, out: dict):
    "3. this script again as torchrun's one worker (`--standalone`, a free port), one all-reduce."
    argv = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '1', __file__,
            '--allreduce-worker', '--allreduce-mb', str(a.allreduce_mb)] + (['--dry-run'] if a.dry_run else [])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    lines = [l for l in r.stdout.splitlines() if l.startswith('{')]
    if r.returncode != 0 or not lines: raise RuntimeError(f"torchrun exited with {r.returncode}: {(r.stderr or r.stdout).strip()[-1500:]}")
    out['allreduce'] = res = json.loads(lines[-1])
    if not res['correct']: raise RuntimeError(f"all-reduce gave a wrong sum: {res}")
    print(f"  torchrun 1 rank, {res['backend']} {res['nccl'] or ''}: all-reduce of {res['mb']} MB in {res['seconds'] * 1000:.2f} ms, sum correct", flush=True)


def section_run(a, dev, root: Path, out: dict):
    "4. a short LDIFS run on micro-shape, evaluated on the micro suite (dry run: on micro-shape only, one checkpoint)."
    from ldifs_nb.experiment import run_experiment
    kw = dict(eval_datasets=('micro-shape',), ckpt_fractions=(1.0,)) if a.dry_run else {}
    t0 = time.perf_counter()
    res = run_experiment('lp-init-ldifs', 'micro-shape', device=str(dev), steps=a.run_steps, out_dir=str(root/'runs'), data_root=str(root/'data'), **kw)
    s = time.perf_counter() - t0
    last = res[res['step'] == res['step'].max()]
    clf = last[(last['metric'] == 'clf_top1') & (last['split'] == 'test')]['value']
    out['run'] = dict(steps=a.run_steps, seconds=round(s, 1), datasets=sorted(res['dataset'].unique()), rows=len(res),
                      clf_top1_test=round(float(clf.mean()), 2) if len(clf) else None)
    print(f"  lp-init-ldifs on micro-shape, {a.run_steps} steps + evaluation of {len(out['run']['datasets'])} dataset(s): {s:.1f} s, "
          f"{len(res)} result rows, test accuracy of the classifier {out['run']['clf_top1_test']}", flush=True)


def main(argv=None):
    a = parse(argv)
    if a.allreduce_worker: return allreduce_worker(a)
    t_start = time.perf_counter()
    import torch
    if not a.dry_run and not torch.cuda.is_available():
        sys.exit(f"gpu_check: error: no CUDA device here (torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                 "run it on a machine with a GPU, or with --dry-run to check the script on the CPU")
    os.environ.setdefault('LDIFS_QUIET', '1')   # no progress bars between the figures
    dev = torch.device('cpu' if a.dry_run else 'cuda')
    if dev.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True   # TF32 on (the fp32 settings)
        p = torch.cuda.get_device_properties(dev)
        where = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, torch {torch.__version__}"
    else: where = f"CPU (dry run), torch {torch.__version__}"
    out = dict(device=where, dry_run=a.dry_run, models=a.models, batch=a.batch, sections={})
    print(f"gpu_check on {where}", flush=True)
    root = Path(tempfile.mkdtemp(prefix='gpu_check_'))
    sections = [('steps', 'training steps, CE vs LDIFS, fp32 and bf16 (TF32 on)', lambda: section_steps(a, dev, out)),
                ('eval', 'evaluation: images/s of embed, fp32 and bf16', lambda: section_eval(a, dev, root/'data', out)),
                ('allreduce', 'one all-reduce under torchrun, 1 rank', lambda: section_allreduce(a, out)),
                ('run', f'a {a.run_steps}-step run + evaluation of the micro suite', lambda: section_run(a, dev, root, out))]
    try:
        for key, what, fn in sections:
            spent = time.perf_counter() - t_start
            if spent > a.budget:
                out['sections'][key] = f'skipped: {spent:.0f} s spent, budget {a.budget:.0f} s'; print(f"{what}: {out['sections'][key]}"); continue
            print(f"{what}:", flush=True)
            t0 = time.perf_counter()
            try: fn(); out['sections'][key] = f'ok in {time.perf_counter() - t0:.1f} s'
            except Exception as e:
                out['sections'][key] = f'failed: {type(e).__name__}: {e}'.splitlines()[0]
                print(f"  FAILED: {type(e).__name__}: {e}", flush=True); traceback.print_exc()
    finally: shutil.rmtree(root, ignore_errors=True)
    out['seconds'] = round(time.perf_counter() - t_start, 1)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + '\n')
    failed = [k for k, v in out['sections'].items() if not v.startswith('ok')]
    print(f"gpu_check: {len(sections) - len(failed)} of {len(sections)} sections ok in {out['seconds']} s" + (f"; not ok: {', '.join(failed)}" if failed else '')
          + (f"; figures in {a.json}" if a.json else ''))
    if failed: sys.exit(1)


if __name__ == '__main__':
    main()
