"The console scripts explain themselves: `--help` lists the valid names and answers at once; a bad name is one line and creates nothing."
import os, shutil, subprocess, time

import pytest

ENV = dict(os.environ, LDIFS_QUIET='1')
SCRIPTS = ['ldifs-run', 'ldifs-sequence', 'ldifs-sweep', 'ldifs-smoke']
METHODS = ['zs-init-ce', 'lp-init-ce', 'zs-init-l2sp', 'lp-init-l2sp', 'flyp', 'flyp-ce', 'zs-init-ldifs', 'lp-init-ldifs']
DATASETS = ['micro-position', 'micro-digit', 'gtsrb', 'svhn', 'cars', 'resisc45']


def timed(args, cwd):
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=ENV)
    return r, time.perf_counter() - t0


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_is_fast_and_complete(script, tmp_path):
    "`--help` answers without importing torch (well under a second; 3 s bound for a loaded CI machine), with a description and an example."
    exe = shutil.which(script)
    assert exe, f"console script {script} is not installed"
    r, dt = timed([exe, '--help'], tmp_path)
    print(f"{script} --help: {dt:.2f} s")
    assert r.returncode == 0, r.stderr
    assert dt < 3, f"{script} --help took {dt:.1f} s"
    h = ' '.join(r.stdout.split())
    assert 'examples:' in h and f'{script} ' in h.split('examples:')[1]
    if script == 'ldifs-smoke': return
    for name in METHODS + DATASETS + ['channel', 'flat', 'adamw', 'l2']: assert name in h, (script, name)
    assert 'auto = cuda if available' in h and 'auto = micro-clip' in h and 'auto = shipped micro-CLIP weights' in h
    assert 'results' in h  # says where results go / that it prints where they are
    if script == 'ldifs-sweep': assert '--methods METHOD [METHOD ...], --method METHOD [METHOD ...]' in h  # one option, two spellings


@pytest.mark.parametrize('script', ['ldifs-run', 'ldifs-sequence', 'ldifs-sweep'])
def test_bad_method_is_one_line(script, tmp_path):
    "A bad --method exits non-zero at once with one line that lists the valid methods, and writes nothing."
    args = [shutil.which(script), '--method', 'sgd', '--out-dir', str(tmp_path/'runs')]
    if script == 'ldifs-sequence': args += ['--tasks', 'micro-shape', 'micro-digit']
    if script == 'ldifs-sweep': args += ['--datasets', 'micro-shape']
    r, dt = timed(args, tmp_path)
    print(f"{script} --method sgd: {dt:.2f} s")
    assert r.returncode != 0 and dt < 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: Unknown method 'sgd'. Valid methods: zs-init-ce"), r.stderr
    assert all(m in lines[0] for m in METHODS)
    assert list(tmp_path.iterdir()) == []  # no run folder, no data cache, nothing


def test_sweep_aliases_and_bad_dataset(tmp_path):
    "`ldifs-sweep --dataset` is `--datasets`: a bad name in either spelling is the same one-line error."
    for opt in ('--dataset', '--datasets'):
        r, _ = timed([shutil.which('ldifs-sweep'), '--method', 'ce', opt, 'micro-shape', 'mnst', '--out-dir', str(tmp_path/'runs')], tmp_path)
        assert r.returncode != 0 and r.stderr.strip() == ("ldifs-sweep: error: Unknown dataset 'mnst'. Valid datasets: cars, cifar10, cifar100, dtd, "
            "eurosat, gtsrb, mnist, resisc45, svhn, imagenet, stl10, sun397, imagenet-v2, imagenet-r, imagenet-a, imagenet-sketch, "
            "micro-shape, micro-colour, micro-texture, micro-count, micro-position, micro-digit"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_data_status_and_prepare(tmp_path):
    "`ldifs-data status` lists every dataset at once (no torch needed to parse); `prepare` of a missing one says where its files go and exits 1."
    exe = shutil.which('ldifs-data')
    assert exe, "console script ldifs-data is not installed"
    r, dt = timed([exe, '--help'], tmp_path)
    assert r.returncode == 0 and dt < 3 and 'examples:' in r.stdout, r.stderr
    r, _ = timed([exe, 'status', '--root', str(tmp_path/'data')], tmp_path)
    rows = [l.split(' | ') for l in r.stdout.splitlines()[2:]]
    assert r.returncode == 0 and len(rows) == 16 and {row[2] for row in rows} == {'missing'}, r.stdout + r.stderr
    r, _ = timed([exe, 'prepare', 'imagenet-sketch', '--root', str(tmp_path/'data'), '--no-download'], tmp_path)
    assert r.returncode == 1 and 'imagenet-sketch: MISSING' in r.stdout and f"{tmp_path}/data/raw/imagenet-sketch/sketch/<wnid>/" in r.stdout, r.stdout + r.stderr
    r, _ = timed([exe, 'prepare', 'imagenet-c', '--root', str(tmp_path/'data')], tmp_path)
    assert r.returncode == 1 and r.stderr.strip().startswith("ldifs-data: error: Unknown dataset 'imagenet-c'"), r.stderr
    assert not (tmp_path/'data').exists() or not any((tmp_path/'data').rglob('*.npy'))   # nothing prepared
