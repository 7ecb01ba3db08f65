"""What the content checks of cache and results files cost (`ldifs_nb.core.record_check` / `verify_file`).

1. The default run (`ldifs-run --method ldifs --dataset micro-position`, as `run_experiment`) with the real checks
   against the same run with a size-only stand-in for `ldifs_nb.core.content_check` (no hashing), interleaved,
   each mode on its own warmed data root (a warm-up run per mode, untimed), a fresh run folder per timed run,
   and the in-process "already verified" memo cleared before each run (a new process starts with it empty).
2. The check itself on files of paper-scale sizes: a full SHA-256 (files up to `FULL_HASH_BYTES`) and the
   sampled one used above it, against reading the file once (what loading it costs anyway).

    python bench/bench_verify.py               # both parts (about 6 minutes on 2 idle cores)
    python bench/bench_verify.py --reps 1 --sizes 64,1024
"""
import argparse, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
import torch

import ldifs_nb.core as core
from ldifs_nb.experiment import run_experiment


def size_only(path, full_limit=core.FULL_HASH_BYTES):
    "The stand-in: what `content_check` records, without hashing (a truncation is still caught, a flip is not)."
    return {'size': os.path.getsize(path), 'kind': 'size-only', 'sha256': ''}


def default_run(out: Path, data: Path) -> float:
    core._VERIFIED.clear()
    t = time.perf_counter()
    run_experiment('ldifs', 'micro-position', device='cpu', out_dir=str(out), data_root=str(data))
    return time.perf_counter() - t


def run_part(reps: int, work: Path) -> None:
    real = core.content_check
    modes = {'checked': real, 'size-only': size_only}
    for name, fn in modes.items():                        # warm-up: the data roots' stores and reference caches
        core.content_check = fn
        default_run(work/f'warm-{name}', work/f'data-{name}')
    times = {m: [] for m in modes}
    for r in range(reps):
        for name, fn in (modes.items() if r % 2 == 0 else reversed(list(modes.items()))):
            core.content_check = fn
            times[name].append(default_run(work/f'run-{name}-{r}', work/f'data-{name}'))
            print(f"  rep {r}: {name:9s} {times[name][-1]:6.1f} s", flush=True)
    core.content_check = real
    a, b = statistics.median(times['checked']), statistics.median(times['size-only'])
    ratios = [x / y for x, y in zip(times['checked'], times['size-only'])]
    print(f"default run, median of {reps}: checked {a:.1f} s, size-only {b:.1f} s -> ratio {a / b:.3f} "
          f"(per rep {', '.join(f'{x:.3f}' for x in ratios)})")
    n = sum(1 for _ in (work/'run-checked-0').rglob('*.check'))
    print(f"files with a content check in one run folder: {n}")


def hash_part(sizes_mb, work: Path) -> None:
    for mb in sizes_mb:
        f = work/f'blob{mb}.bin'
        with open(f, 'wb') as h:
            for _ in range(mb): h.write(np.random.default_rng(0).bytes(1 << 20))
        def read():
            with open(f, 'rb') as h:
                while h.read(1 << 20): pass
        t = {}
        for k in range(2):   # the second round: the file is in the page cache for all three
            for name, fn in (('read', read), ('full sha256', lambda: core.content_check(f, full_limit=1 << 62)),
                             ('as recorded', lambda: core.content_check(f))):
                s = time.perf_counter(); fn(); t[name] = time.perf_counter() - s
        kind = core.content_check(f)['kind']
        print(f"{mb:5d} MB: read {t['read']:.3f} s, full SHA-256 {t['full sha256']:.3f} s "
              f"({mb / t['full sha256']:.0f} MB/s, {t['full sha256'] / t['read']:.1f}x a read), as recorded ({kind}) {t['as recorded']:.4f} s")
        f.unlink()


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=2)
    p.add_argument('--sizes', default='16,64,256,1024', help='file sizes (MB) for part 2')
    p.add_argument('--skip-run', action='store_true', help='part 2 only')
    p.add_argument('--threads', type=int, default=None)
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    os.environ.setdefault('LDIFS_QUIET', '1')
    with tempfile.TemporaryDirectory() as d:
        if not a.skip_run: run_part(a.reps, Path(d))
        hash_part([int(s) for s in a.sizes.split(',')], Path(d))
