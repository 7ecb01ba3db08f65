"""Fault injection: kills, damaged files, two writers, full disks and bad inputs — nothing lost, nothing silently wrong.

Every test drives the package as a user would (console scripts, papermill, the Python API) on the micro suite with
tiny runs, and compares against one uninterrupted reference run: results table and checkpoint hashes must be
identical. Kills at precise points use the `LDIFS_FAULT` hook of `ldifs_nb.core.fault_point` (only tests set it).
"""
import fcntl, json, os, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

RUN_ARGS = ['--method', 'lp-init-ldifs', '--dataset', 'micro-shape', '--steps', '4', '--eval-datasets', 'micro-shape',
            '--ckpt-fractions', '0.5', '1', '--device', 'cpu', '--seed', '0']
RUN = Path('micro-shape/lp-init-ldifs/0')          # the run folder under --out-dir
KEY = ['task', 'method', 'seed', 'stage', 'step', 'fraction', 'dataset', 'split', 'metric']
KILLED, TIMEOUT = -signal.SIGKILL, 900


def cli(cmd: str, args, data: Path | None = None, fault: str | None = None, wait: bool = True, **env):
    "Run a console script as a user would; `fault` sets $LDIFS_FAULT (the test hook)."
    e = {k: v for k, v in os.environ.items() if k not in ('LDIFS_FAULT', 'PYTEST_CURRENT_TEST')}
    # the thread count a sweep gives its one job (cpu_count // jobs): float sums, hence bits, depend on it
    e.update(LDIFS_QUIET='1', OMP_NUM_THREADS=str(os.cpu_count() or 1), **env)
    if data is not None: e['LDIFS_DATA'] = str(data)
    if fault: e['LDIFS_FAULT'] = fault
    argv = [shutil.which(cmd) or cmd, *map(str, args)]
    if not wait: return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e, start_new_session=True)
    return subprocess.run(argv, capture_output=True, text=True, env=e, timeout=TIMEOUT)


def last_line(r) -> str:
    lines = [l for l in (r.stderr or '').splitlines() if l.strip()]
    return lines[-1] if lines else ''


def outcome(rd: Path):
    "(results table sorted, {step: checkpoint sha256}) of a finished, evaluated run folder."
    man = json.loads((rd/'manifest.json').read_text())
    res = pd.read_csv(rd/'results.csv').sort_values(KEY).reset_index(drop=True)
    return res, {c['step']: c['sha256'] for c in man['checkpoints']}


def assert_same(rd: Path, ref) -> None:
    res, hashes = outcome(rd)
    assert hashes == ref['hashes'], f"checkpoint hashes differ: {hashes} vs {ref['hashes']}"
    pd.testing.assert_frame_equal(res, ref['res'], check_exact=True)


def snapshot(folder: Path) -> dict:
    "Every file under `folder` with its size and mtime (to prove nothing was created or changed)."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob('*'))
            if p.is_file() and p.name != '.lock'} if folder.exists() else {}   # a lock file's PID changes with each holder


@pytest.fixture(scope='session')
def ref(tmp_path_factory):
    "One uninterrupted reference run (its own data root, cold caches); under `pytest -n`, made once and read by every worker."
    if os.environ.get('PYTEST_XDIST_WORKER'):   # the session's folder, shared by its workers (each has its own basetemp inside)
        root = tmp_path_factory.getbasetemp().parent/'faults-ref'; root.mkdir(exist_ok=True)
    else: root = tmp_path_factory.mktemp('ref')
    with open(root.parent/'faults-ref.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)          # the first worker makes it, the others wait for it
        if not (root/'.made').exists():
            for d in ('runs', 'data'): shutil.rmtree(root/d, ignore_errors=True)
            r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', root/'runs'], data=root/'data')
            assert r.returncode == 0, r.stderr[-3000:]
            (root/'.made').touch()
    res, hashes = outcome(root/'runs'/RUN)
    return dict(root=root, data=root/'data', rd=root/'runs'/RUN, res=res, hashes=hashes)


@pytest.fixture
def warm(ref, tmp_path):
    "A private copy of the reference's data root (prepared store and embeddings), so that damage stays in this test."
    d = tmp_path/'data'; shutil.copytree(ref['data'], d); return d


# ---------------------------------------------------------------------------------------------------------------
# SIGKILL / SIGINT at precise points, then the same command again

CHAIN = [  # (fault, what is being interrupted, expected exit) — each in a new process, on the same run folder
    ('write:*_pixels.npy@1', 'a cache write: the prepared store', KILLED),
    ('write:*_e[0-9]*.npy@1', 'a cache write: embeddings (the LP head of lp-init)', KILLED),
    ('step@1', 'training, after the first step', KILLED),
    ('step@1:int', 'training, Ctrl-C', None),
    ('checkpoint@1', 'right after the first checkpoint', KILLED),
    ('write:resume.safetensors@1', 'a checkpoint write (resume state)', KILLED),
    ('write:manifest.json@1', 'a manifest write (new resume state on disk, manifest not yet)', KILLED),
    ('checkpoint@1', 'right after the last checkpoint, before the run is marked finished', KILLED),
    ('write:*_e[0-9]*.npy@1', 'evaluation (an embeddings write)', KILLED),
    ('write:step_000002.csv@1', "a results write (one checkpoint's table)", KILLED),
    ('write:step_000004.csv@1:int', 'a results write, Ctrl-C', None),
    ('write:results.csv@1', 'the results table write', KILLED),
]


@pytest.mark.slow
def test_kill_chain_then_same_command(ref, tmp_path):
    "12 interruptions of one run (10 SIGKILL, 2 SIGINT) at distinct points; the same command then finishes it with identical results."
    out, data = tmp_path/'runs', tmp_path/'data'   # cold caches: the cache-write points are reached
    for fault, what, code in CHAIN:
        r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=data, fault=fault)
        if code is None: assert r.returncode not in (0, KILLED), f"{what}: expected an interrupted exit, got {r.returncode}\n{r.stderr[-2000:]}"
        else: assert r.returncode == code, f"{what} ({fault}): exit {r.returncode}\n{r.stderr[-2000:]}"
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=data)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(out/RUN, ref)
    assert not list((out/RUN).rglob('.*.tmp')), 'temporary files left behind'
    assert not (out/RUN/'resume.safetensors').exists()
    steps = [json.loads(l)['step'] for l in (out/RUN/'log.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3, 4], f'the training log lost or repeated steps: {steps}'


@pytest.mark.slow
def test_kill_sweep_process_group(ref, warm, tmp_path):
    "SIGKILL a whole `ldifs-sweep` (the sweep and its job) right after the job's first checkpoint; the same sweep again finishes it."
    out = tmp_path/'sweep'
    args = ['--methods', 'lp-init-ldifs', '--datasets', 'micro-shape', '--steps', '4', '--eval-datasets', 'micro-shape',
            '--ckpt-fractions', '0.5', '1', '--device', 'cpu', '--out-dir', out]
    p = cli('ldifs-sweep', args, data=warm, wait=False, fault='checkpoint@1:stop')   # the job holds right after its first checkpoint
    ck, man = out/RUN/'ckpt'/'step_000002.safetensors', out/RUN/'manifest.json'
    def resume_step():
        try: return (json.loads(man.read_text()).get('resume') or {}).get('step')
        except (OSError, ValueError): return None
    t0 = time.time()
    while resume_step() != 2 and p.poll() is None and time.time() - t0 < TIMEOUT: time.sleep(0.2)
    assert p.poll() is None and resume_step() == 2, f"the sweep ended before its first checkpoint: {p.communicate()[1][-2000:]}"
    os.killpg(p.pid, signal.SIGKILL); p.communicate()
    killed = json.loads((out/RUN/'manifest.json').read_text())
    assert killed['status'] == 'running', killed['status']
    mtime = ck.stat().st_mtime_ns
    r = cli('ldifs-sweep', args, data=warm)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(out/RUN, ref)
    after = json.loads((out/RUN/'manifest.json').read_text())
    assert (after['status'], after['created']) == ('finished', killed['created'])   # the same run folder, finished
    assert ck.stat().st_mtime_ns == mtime                                            # resumed after its checkpoint, not redone
    steps = [json.loads(l)['step'] for l in (out/RUN/'log.jsonl').read_text().splitlines()]
    assert steps == [1, 2, 3, 4], f'the training log lost or repeated steps: {steps}'
    st = pd.read_csv(out/'sweep_status.csv')
    assert list(st['status']) == ['done'], st


# ---------------------------------------------------------------------------------------------------------------
# damaged files: byte flips and truncation of each kind

def flip(f: Path, at: float = 0.5) -> None:
    raw = bytearray(f.read_bytes()); raw[int(len(raw) * at)] ^= 0x24; f.write_bytes(bytes(raw))

def cut(f: Path, n: int = 16) -> None:
    f.write_bytes(f.read_bytes()[:-n])

def change_digit(f: Path) -> None:
    "Change one digit of a number in a text file (same length: a silent error if nothing checked it)."
    t = f.read_text(); i = max(k for k, c in enumerate(t[:-3]) if c.isdigit())
    f.write_text(t[:i] + str((int(t[i]) + 1) % 10) + t[i + 1:])


@pytest.mark.slow
def test_damaged_caches_and_results_are_rebuilt(ref, warm, tmp_path):
    "Flipped/truncated store arrays, embeddings and results tables are detected, rebuilt with a warning, and the numbers stay right."
    out = tmp_path/'runs'; shutil.copytree(ref['rd'], out/RUN)
    store = next((warm/'cache').glob('micro-shape*/store*'))
    flip(store/'train_pixels.npy'); cut(store/'test_labels.npy')
    embs = sorted((warm/'embeddings').rglob('*_e[0-9].npy'))
    assert len(embs) >= 2
    flip(embs[0], 0.9); cut(embs[1], 64)
    for m in (warm/'embeddings').rglob('*_metrics_*.json'): m.unlink()   # so that the embeddings are read again
    change_digit(out/RUN/'results'/'step_000002.csv'); cut(out/RUN/'results'/'step_000004.csv', 30)
    cut(out/RUN/'results.csv', 40)
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
    assert r.returncode == 0, r.stderr[-3000:]
    # (the store's two damaged files are rebuilt together, so one warning may cover both)
    for what in ('results.csv', 'step_000002.csv', 'step_000004.csv', 'preparing the store', embs[0].name, embs[1].name):
        assert what in r.stderr, f"no warning about the damaged {what}:\n{r.stderr[-3000:]}"
    assert_same(out/RUN, ref)


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['flip-checkpoint', 'cut-checkpoint', 'flip-manifest', 'cut-manifest'])
def test_damaged_run_files_give_one_clear_error(ref, warm, tmp_path, damage):
    "A damaged checkpoint or manifest: non-zero exit, one line naming the file and what to do; nothing else changed."
    out = tmp_path/'runs'; shutil.copytree(ref['rd'], out/RUN)
    kind, what = damage.split('-')
    f = out/RUN/('ckpt/step_000002.safetensors' if what == 'checkpoint' else 'manifest.json')
    if what == 'checkpoint': shutil.rmtree(out/RUN/'results'); (out/RUN/'results.csv').unlink()   # so that checkpoints are read
    flip(f, 0.6) if kind == 'flip' else cut(f, 100)
    before = snapshot(out)
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
    assert r.returncode not in (0, KILLED), r.stderr[-2000:]
    line = last_line(r)
    assert f.name in line and 'delete the run folder' in line, line
    assert snapshot(out) == before


@pytest.mark.slow
def test_damaged_resume_state_falls_back(ref, warm, tmp_path):
    "A damaged resume.safetensors: the run resumes from the previous checkpoint's state and ends identical."
    out = tmp_path/'runs'
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm, fault='checkpoint@2')   # killed after the step-4 checkpoint
    assert r.returncode == KILLED, r.stderr[-2000:]
    man = json.loads((out/RUN/'manifest.json').read_text())
    assert (man['resume']['step'], man['resume_prev']['step']) == (4, 2)
    flip(out/RUN/'resume.safetensors', 0.7)
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'falling back' in r.stderr
    assert_same(out/RUN, ref)


# ---------------------------------------------------------------------------------------------------------------
# two writers

@pytest.mark.slow
def test_two_identical_runs_at_once(ref, warm, tmp_path):
    "Two identical runs started together: one is refused with the holder's PID, the survivor's results equal the reference."
    out = tmp_path/'runs'
    ps = [cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm, wait=False) for _ in range(2)]
    rs = [(p.wait(TIMEOUT), p.communicate()) for p in ps]
    codes = sorted(c for c, _ in rs)
    assert codes[0] == 0 and codes[1] not in (0, KILLED), [(c, e[-1500:]) for c, (_, e) in rs]
    loser = [e for c, (_, e) in rs if c != 0][0]
    line = [l for l in loser.splitlines() if l.strip()][-1]
    assert 'PID' in line and 'another process' in line, line
    assert_same(out/RUN, ref)


def test_prepare_same_dataset_from_two_processes(ref, tmp_path):
    "Two processes preparing the same dataset at once end with one good store (every file verified, equal to one prepared alone)."
    code = ("import sys; from ldifs_nb.data import prepare_dataset; prepare_dataset('micro-colour', sys.argv[1], 32)")
    env = dict(os.environ, OMP_NUM_THREADS='1'); env.pop('LDIFS_FAULT', None)
    ps = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path/'data')], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert [p.wait(TIMEOUT) for p in ps] == [0, 0], [p.stderr.read()[-1500:] for p in ps]
    from ldifs_nb.core import verify_file
    from ldifs_nb.data import cache_dir, load_split, prepare_dataset
    d = cache_dir('micro-colour', tmp_path/'data', 32)
    for f in d.glob('*.npy'): verify_file(f)
    assert not list(d.glob('.*.tmp'))
    alone = tmp_path/'alone'; prepare_dataset('micro-colour', alone, 32)
    for split in ('train', 'test'):
        a, b = load_split('micro-colour', split, tmp_path/'data', 32), load_split('micro-colour', split, alone, 32)
        np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images)); np.testing.assert_array_equal(a.labels, b.labels)


# ---------------------------------------------------------------------------------------------------------------
# disk full

def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which('mount'): return False
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(where)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_disk_full_during_checkpoint(ref, warm, tmp_path):
    "The disk fills before the last checkpoint: one clear error, the previous state intact; once space is freed the run resumes to identical numbers."
    mnt = tmp_path/'small'
    if not _mount_tmpfs(mnt, '256m'): pytest.skip('cannot mount a tmpfs here (needs root)')
    try:
        out = mnt/'runs'
        r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm, fault='checkpoint@1')
        assert r.returncode == KILLED, r.stderr[-2000:]
        before = snapshot(out)
        st = os.statvfs(mnt); free = st.f_bavail * st.f_frsize
        with open(mnt/'filler', 'wb') as f:   # leave ~64 KiB: not enough for a checkpoint
            for _ in range(max(0, free - (64 << 10)) >> 20): f.write(b'\0' * (1 << 20))
            f.write(b'\0' * max(0, (free - (64 << 10)) % (1 << 20)))
        r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
        assert r.returncode not in (0, KILLED)
        assert 'No space left' in last_line(r), r.stderr[-2000:]
        after = snapshot(out)
        for k in ('manifest.json', 'ckpt/step_000002.safetensors'):    # the last good state is untouched
            assert after[str(RUN/k)] == before[str(RUN/k)], k
        man = json.loads((out/RUN/'manifest.json').read_text())
        from ldifs_nb.core import file_sha256
        assert man['resume']['step'] == 2 and man['resume']['sha256'] in {file_sha256(f) for f in (out/RUN).glob('resume*.safetensors')}
        (mnt/'filler').unlink()
        r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
        assert r.returncode == 0, r.stderr[-3000:]
        assert_same(out/RUN, ref)
    finally:
        subprocess.run(['umount', '-l', str(mnt)], capture_output=True)


@pytest.mark.slow
def test_disk_full_during_results_write(ref, warm, tmp_path):
    "A results write that fails for lack of space (simulated ENOSPC): one clear line; the same command later completes identically."
    out = tmp_path/'runs'; shutil.copytree(ref['rd'], out/RUN)
    shutil.rmtree(out/RUN/'results'); (out/RUN/'results.csv').unlink()
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm, fault='write:results.csv@1:enospc')
    assert r.returncode not in (0, KILLED) and 'No space left' in last_line(r), r.stderr[-2000:]
    assert not (out/RUN/'results.csv').exists()
    r = cli('ldifs-run', [*RUN_ARGS, '--out-dir', out], data=warm)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_same(out/RUN, ref)


# ---------------------------------------------------------------------------------------------------------------
# bad inputs: one clear message, non-zero exit / an exception, nothing created or changed

@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp('bad')
    import torch
    from safetensors.torch import save_file
    (d/'junk.safetensors').write_bytes(b'not weights at all' * 10)
    save_file({'visual.conv1.weight': torch.zeros(2, 3, 4, 4)}, str(d/'other-arch.safetensors'))
    (d/'a-file').write_text('x')
    return d


def _api_cases(f: Path, out: str):
    from ldifs_nb.train import finetune, finetune_sequence
    from ldifs_nb.experiment import run_experiment
    from ldifs_nb.sweep import select_lambda, sweep
    base = dict(dataset='micro-shape', steps=4, eval_datasets='micro-shape', device='cpu', out_dir=out)
    ft = lambda **kw: (lambda: finetune(**(base | kw)))
    return [
        ('method name', ft(method='sgd'), 'Valid methods'),
        ('dataset name', ft(dataset='imagenet-21k'), 'Valid datasets'),
        ('model name', ft(model='ViT-Z-99'), 'Valid models'),
        ('device name', ft(device='tpu'), 'Valid devices'),
        ('λ NaN', ft(lam=float('nan')), 'lam must be'),
        ('λ inf', ft(lam=float('inf')), 'lam must be'),
        ('lr zero', ft(lr=0.0), 'lr must be'),
        ('steps a float', ft(steps=2.5), 'steps must be an integer'),
        ('batch size a string', ft(batch_size='8'), 'batch_size must be'),
        ('ckpt fractions out of range', ft(ckpt_fractions=(0.5, 2)), 'ckpt_fractions must be'),
        ('ckpt fractions empty', ft(ckpt_fractions=()), 'ckpt_fractions must be'),
        ('eval datasets empty', ft(eval_datasets=[]), 'eval_datasets is empty'),
        ('init name', ft(method='ce', init='random'), 'Valid inits'),
        ('out_dir is a file', ft(out_dir=str(f/'a-file')), 'is not a folder'),
        ('out_dir under a file', ft(out_dir=str(f/'a-file'/'runs')), 'is not a folder'),
        ('out_dir unwritable', ft(out_dir='/proc/1/runs'), 'cannot be written'),
        ('data_root is a file', ft(data_root=str(f/'a-file')), 'is not a folder'),
        ('pretrained: not weights', ft(pretrained=str(f/'junk.safetensors')), 'cannot be loaded as weights'),
        ('pretrained: another architecture', ft(pretrained=str(f/'other-arch.safetensors')), 'cannot be loaded as weights'),
        ('pretrained: missing file', ft(pretrained=str(f/'missing.safetensors')), 'not a file on disk'),
        ('sequence of one task', lambda: finetune_sequence(['micro-shape'], 'ce', **{k: v for k, v in base.items() if k != 'dataset'}), 'at least 2 tasks'),
        ('sequence anchor name', lambda: finetune_sequence(['micro-shape', 'micro-colour'], 'ce', anchor='none', **{k: v for k, v in base.items() if k != 'dataset'}), 'Valid anchors'),
        ('run_experiment: lp_protocol', lambda: run_experiment(**(base | dict(lp_protocol='sgd'))), 'Valid lp_protocols'),
        ('λ grid empty', lambda: select_lambda('micro-shape', grid=[], out_dir=out), 'grid is empty'),
        ('λ grid negative', lambda: select_lambda('micro-shape', grid=[0.1, -1.0], out_dir=out), 'lam must be'),
        ('sweep: unknown option', lambda: sweep(['ce'], ['micro-shape'], out_dir=out, lambda_=1), 'Valid options'),
        ('sweep: no datasets', lambda: sweep(['ce'], [], out_dir=out), 'at least one dataset'),
        ('sweep: bad method in a grid', lambda: sweep(['ce', 'sgd'], ['micro-shape'], out_dir=out, steps=4), 'Valid methods'),
    ]


def test_bad_inputs_python_api(ref, bad_files, tmp_path):
    "Bad inputs through the Python API: one ValueError/FileNotFoundError naming what was wrong; nothing created or changed."
    out = tmp_path/'out'
    before = snapshot(ref['root'])
    os.environ['LDIFS_DATA'] = str(ref['data'])
    try:
        cases = _api_cases(bad_files, str(out))
        for name, call, msg in cases:
            with pytest.raises((ValueError, FileNotFoundError)) as e: call()
            assert msg in str(e.value), f"{name}: {e.value}"
            assert '\n' not in str(e.value).strip(), f"{name}: more than one line: {e.value}"
            assert not out.exists(), f"{name}: created {out}"
    finally: os.environ.pop('LDIFS_DATA', None)
    assert snapshot(ref['root']) == before
    assert len(cases) >= 25


CLI_CASES = [
    ('ldifs-run', ['--method', 'sgd'], 'Valid methods'),
    ('ldifs-run', ['--lam', 'nan'], 'lam must be'),
    ('ldifs-run', ['--steps', 'four'], 'invalid int value'),
    ('ldifs-run', ['--out-dir', '{f}/a-file'], 'is not a folder'),
    ('ldifs-run', ['--pretrained', '{f}/junk.safetensors'], 'cannot be loaded as weights'),
    ('ldifs-sequence', ['--tasks', 'micro-shape'], 'at least 2 tasks'),
    ('ldifs-sequence', ['--tasks', 'micro-shape', 'micro-colour', '--anchor', 'none'], "Unknown anchor 'none'. Valid anchors: previous, original"),
    ('ldifs-sweep', ['--methods', 'sgd', '--datasets', 'micro-shape'], 'Valid methods'),
    ('ldifs-sweep', ['--methods', 'ldifs', '--datasets', 'micro-shape', '--select-lambda', '--lambda-grid', '0.1', '-1'], 'lam must be'),
]


@pytest.mark.slow
@pytest.mark.parametrize('cmd,args,msg', CLI_CASES, ids=[f'{c}:{" ".join(a)}' for c, a, _ in CLI_CASES])
def test_bad_inputs_console_scripts(ref, bad_files, tmp_path, cmd, args, msg):
    "Bad inputs on the command line: non-zero exit, the last line of stderr says what was wrong, no traceback, nothing created."
    out = tmp_path/'out'
    args = [a.replace('{f}', str(bad_files)) for a in args]
    base = [] if cmd == 'ldifs-sweep' else ['--dataset', 'micro-shape'] if cmd == 'ldifs-run' else []
    if '--out-dir' not in args: args += ['--out-dir', str(out)]
    before = snapshot(ref['root'])
    r = cli(cmd, [*base, *args, '--steps', '4', '--eval-datasets', 'micro-shape'] if '--steps' not in args else [*base, *args], data=ref['data'])
    assert r.returncode not in (0, KILLED), r.stdout[-1000:]
    assert msg in last_line(r), r.stderr[-2000:]
    assert 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert not out.exists() and snapshot(ref['root']) == before


@pytest.mark.slow
@pytest.mark.parametrize('params,msg', [(['-p', 'method', 'sgd'], 'Valid methods'), (['-p', 'lam', '-1'], 'lam must be')])
def test_bad_inputs_papermill(ref, tmp_path, params, msg):
    "The experiment notebook with a bad parameter: papermill fails, naming what was wrong; no run folder."
    nb = Path(__file__).parents[1]/'nbs'/'run_experiment.ipynb'
    out = tmp_path/'out'
    e = dict(os.environ, LDIFS_DATA=str(ref['data']), LDIFS_QUIET='1'); e.pop('LDIFS_FAULT', None)
    r = subprocess.run([sys.executable, '-m', 'papermill', str(nb), str(tmp_path/'o.ipynb'), *params, '-p', 'out_dir', str(out),
                        '-p', 'steps', '4', '-p', 'eval_datasets', 'micro-shape', '-p', 'device', 'cpu', '--no-progress-bar'],
                       capture_output=True, text=True, env=e, timeout=TIMEOUT)
    assert r.returncode != 0
    assert msg in r.stderr, r.stderr[-2000:]
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# λ selection with failed runs

@pytest.mark.slow
@pytest.mark.parametrize('blocked', [['0.5'], ['0.5', '10']])
def test_lambda_selection_with_failed_runs(ref, warm, tmp_path, blocked):
    "A λ selection where some or all runs fail exits non-zero with one line naming the failed λ values."
    out = tmp_path/'sweep'
    shutil.copytree(ref['rd'], out/'lambda'/'10'/RUN)             # λ = 10 is the reference run: finished, skipped
    for l in blocked:                                              # a file where a λ run's folder must go: that run fails
        p = out/'lambda'/l; shutil.rmtree(p, ignore_errors=True); p.parent.mkdir(parents=True, exist_ok=True); p.write_text('x')
    r = cli('ldifs-sweep', ['--methods', 'lp-init-ldifs', '--datasets', 'micro-shape', '--select-lambda', '--lambda-grid', '0.5', '10',
                            '--steps', '4', '--eval-datasets', 'micro-shape', '--ckpt-fractions', '0.5', '1', '--device', 'cpu',
                            '--out-dir', out], data=warm)
    assert r.returncode not in (0, KILLED), r.stdout[-2000:]
    line = last_line(r)
    assert f'{len(blocked)} of the 2 λ runs failed' in line and 'Traceback' not in r.stderr, r.stderr[-2000:]
