"""`ldifs-sweep --executor slurm` on a real Slurm cluster: one job array, a job that fails, a job pre-empted and
requeued, and results equal to a local run.

Skipped unless a Slurm cluster answers `sinfo` (with accounting: submitit reads job states with `sacct`), or with
LDIFS_SLURM_TESTS=0 (for a shared cluster, where the test would queue its small CPU jobs). CI starts a one-node
cluster with `.ci/slurm_start.sh` where it runs as root with apt, and stops it with `.ci/slurm_stop.sh`.

The sweep runs as a user would run it, as a separate process; the jobs are tiny (micro-CLIP, 8 steps, one
evaluation dataset, `--device cpu`). One job fails only on the node: its data (Stanford Cars, which cannot be
downloaded automatically) is not there, which the submitting side does not check. The other is held half-way at
a known step (the `LDIFS_FAULT` hook of `ldifs_nb.core.fault_point`) and pre-empted the way submitit handles it
(SIGTERM, then submitit's requeue signal USR2, both sent to every process of the job): it must be requeued,
resume from its last resume state and end with the same results table and checkpoint as an uninterrupted local run.
"""
import json, os, shutil, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest


def _cluster() -> tuple[str | None, str]:
    "(default partition, '') if a Slurm cluster with an idle node and accounting answers, else (None, why not)."
    if os.environ.get('LDIFS_SLURM_TESTS') == '0': return None, 'LDIFS_SLURM_TESTS=0 (e.g. on a shared cluster: the test submits jobs)'
    if not shutil.which('sinfo') or not shutil.which('sacct'): return None, 'no Slurm client commands (sinfo, sacct)'
    try:
        r = subprocess.run(['sinfo', '-h', '-o', '%P|%a|%t'], capture_output=True, text=True, timeout=15)
        a = subprocess.run(['sacct', '-n', '-X', '-S', 'now-1minutes'], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as e: return None, f'sinfo/sacct did not answer: {e}'
    if r.returncode != 0: return None, f"sinfo failed: {r.stderr.strip()[:200]}"
    if a.returncode != 0: return None, f"sacct failed (submitit needs accounting): {a.stderr.strip()[:200]}"
    rows = [l.split('|') for l in r.stdout.split() if l.count('|') == 2]
    up = [(p, s) for p, avail, s in rows if avail == 'up' and s.rstrip('*~#') in ('idle', 'mix', 'alloc')]
    if not up: return None, f"no partition with a node that takes jobs: {r.stdout.strip()[:200]}"
    default = [p for p, _ in up if p.endswith('*')]
    return (default or [up[0][0]])[0].rstrip('*'), ''


PARTITION, WHY = _cluster()
pytestmark = pytest.mark.skipif(PARTITION is None, reason=f"no Slurm cluster: {WHY}")

OPTS = ['--steps', '8', '--batch-size', '16', '--eval-datasets', 'micro-shape', '--ckpt-fractions', '1',
        '--resume-every', '1', '--device', 'cpu', '--seed', '0', '--model', 'micro-clip']
RUN = Path('micro-shape/zs-init-ce/0')
STOP_AT = 5   # the run holds (SIGSTOP) after its 5th step; its last resume state is then step 4. Resumed, it makes 4 more
              # steps, fewer than 5, so the hook (whose setting the requeued job inherits) does not hold it again.
TIMEOUT = 600


def env(**extra) -> dict:
    "The sweep's environment, which Slurm hands on to the jobs: one thread (bitwise-equal sums), progress lines in the logs."
    e = {k: v for k, v in os.environ.items() if k not in ('PYTEST_CURRENT_TEST', 'IN_TEST', 'LDIFS_QUIET', 'LDIFS_FAULT')}
    return {**e, 'OMP_NUM_THREADS': '1', **extra}


def cli(script: str, *args) -> list[str]:
    return [sys.executable, '-m', 'ldifs_nb.cli', script, *map(str, args)]


def scancel(job: str, sig: str) -> None:
    subprocess.run(['scancel', f'--signal={sig}', job], check=True, capture_output=True, timeout=30)


def wait_for(what: str, cond, proc: subprocess.Popen, limit: float = 300):
    "Poll `cond()` until it returns something truthy; fail with the sweep's output if the sweep ends or time runs out first."
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = cond()
        if v: return v
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-3000:]}")
        time.sleep(0.1)
    proc.kill(); pytest.fail(f"{what}: not within {limit} s")


def _json(p: Path) -> dict:
    try: return json.loads(p.read_text())
    except (OSError, ValueError): return {}


def _steps(log: Path) -> list[int]:
    try: return [json.loads(l)['step'] for l in log.read_text().splitlines() if l.strip()]
    except (OSError, ValueError, KeyError): return []


def sweep_on_slurm(root: Path) -> dict:
    "The Slurm sweep (its run pre-empted half-way) and, alongside it, the same run made locally without interruption."
    data, out, local = root/'data', root/'sweep', root/'local'
    rd, procs, t0, ok = out/RUN, [], time.monotonic(), False
    try:
        ref = subprocess.Popen(cli('run', '--method', 'zs-init-ce', '--dataset', 'micro-shape', *OPTS, '--data-root', data,
                                   '--out-dir', local), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        procs.append(ref)
        sweep = subprocess.Popen(cli('sweep', '--methods', 'zs-init-ce', '--datasets', 'micro-shape', 'cars', *OPTS,
                                     '--data-root', data, '--out-dir', out, '--executor', 'slurm', '--partition', PARTITION,
                                     '--time', '60'),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(LDIFS_FAULT=f'step@{STOP_AT}:stop'))
        procs.append(sweep)
        status = wait_for('the jobs were submitted', lambda: (out/'sweep_status.csv').exists() and [pd.read_csv(out/'sweep_status.csv')], sweep)[0]
        jobs = dict(zip(status['job'], status['where'].str.split().str[-1]))
        t_submitted = time.monotonic() - t0
        wait_for(f'the run held after step {STOP_AT}', lambda: STOP_AT in _steps(rd/'log.jsonl'), sweep)
        held = _json(rd/'manifest.json').get('resume') or {}
        t_held = time.monotonic() - t0
        # pre-emption as submitit handles it: SIGTERM to every process of the job, then submitit's requeue signal
        job = jobs['micro-shape/zs-init-ce/0']
        for sig in ('TERM', 'USR2'): scancel(job, sig)
        out_s, err_s = sweep.communicate(timeout=TIMEOUT)
        t_sweep = time.monotonic() - t0
        ref_out, ref_err = ref.communicate(timeout=TIMEOUT)
        assert ref.returncode == 0, ref_err[-3000:]
        ok = True
    finally:   # a failed check leaves no sweep waiting and no job queued (after a success the jobs end by themselves:
               # cancelling them then could catch a finished job still completing, and its record would say CANCELLED)
        for p in procs:
            if p.poll() is None: p.kill(); p.communicate()
        if not ok and 'jobs' in locals(): subprocess.run(['scancel', *{j.split('_')[0] for j in jobs.values()}], capture_output=True, timeout=30)
    def acct():   # the array's accounting records, once each job's last record has its final state (sacct may lag submitit)
        a = subprocess.run(['sacct', '-n', '-P', '-D', '-X', '-j', job.split('_')[0], '-o', 'JobID,State,ReqTRES'],
                           capture_output=True, text=True, timeout=30).stdout
        last = {l.split('|')[0]: l.split('|')[1] for l in a.splitlines() if l.count('|') == 2}
        return a if last and not {'PENDING', 'RUNNING', 'COMPLETING', 'REQUEUED'} & set(last.values()) else ''
    end = time.monotonic() + 60
    while not (records := acct()) and time.monotonic() < end: time.sleep(0.5)
    if not records: subprocess.run(['scancel', job.split('_')[0]], capture_output=True, timeout=30)   # nothing left queued
    print(f"[slurm test] submitted at {t_submitted:.1f} s, run held at {t_held:.1f} s, sweep done at {t_sweep:.1f} s, "
          f"local run done at {time.monotonic() - t0:.1f} s")
    return dict(out=out, local=local, rd=rd, job=job, jobs=jobs, held=held, rc=sweep.returncode, stdout=out_s, stderr=err_s,
                status=pd.read_csv(out/'sweep_status.csv'), acct=records)


def test_sweep_on_slurm(tmp_path):
    """One sweep, three checks (one test, so that `pytest -n` runs the sweep once)."""
    swept = sweep_on_slurm(tmp_path)
    check_array_with_a_failing_job(swept)
    check_preempted_job_resumes(swept)
    check_results_equal_local_run(swept)


def check_array_with_a_failing_job(swept):
    "Both jobs went as one array, neither asked for a GPU; the job that failed on the node has its error line in the status table."
    st = swept['status'].set_index('job')
    assert st.loc['micro-shape/zs-init-ce/0', 'status'] == 'done', swept['stderr'][-3000:]
    assert st.loc['cars/zs-init-ce/0', 'status'] == 'failed'
    err = st.loc['cars/zs-init-ce/0', 'error']
    assert err.startswith('ldifs-run: error:') and 'not available' in err, err
    log = (swept['out']/'sweep_logs'/'cars__zs-init-ce__0.log').read_text()
    assert "Dataset 'cars' is not available" in log and 'Stanford Cars cannot be downloaded automatically' in log, log[-3000:]
    assert err[:60] in swept['stdout']                      # the printed status table shows it too
    arrays = {w.split()[-1].rsplit('_', 1)[0] for w in st['where']}
    assert len(arrays) == 1 and sorted(w.rsplit('_', 1)[1] for w in st['where']) == ['0', '1'], st['where']
    assert swept['rc'] == 1 and 'ldifs-sweep: 1 of 2 jobs failed' in swept['stderr'], swept['stderr'][-2000:]
    scripts = list((swept['out']/'slurm').glob('*_submission.sh'))
    assert scripts and not any('gpu' in s.read_text() for s in scripts), [s.read_text() for s in scripts]
    assert swept['acct'] and 'gres/gpu' not in swept['acct'], swept['acct']


def check_preempted_job_resumes(swept):
    "The pre-empted job was requeued by Slurm and its run went on from its last resume state (step 4), not from the start."
    assert swept['held'].get('step') == STOP_AT - 1, swept['held']
    states = [l.split('|')[1] for l in swept['acct'].splitlines() if l.startswith(swept['job'] + '|')]
    assert 'REQUEUED' in states and states[-1] == 'COMPLETED', swept['acct']
    log = (swept['out']/'sweep_logs'/'micro-shape__zs-init-ce__0.log').read_text()
    assert f'(resumed at step {STOP_AT - 1} of 8)' in log, log[-3000:]
    assert _steps(swept['rd']/'log.jsonl') == list(range(1, 9))   # the step made after the resume state is made again, once


def check_results_equal_local_run(swept):
    "The pre-empted, requeued Slurm run ends with the same results table and the same final weights as the local run."
    key = ['dataset', 'split', 'metric', 'step']
    a, b = (pd.read_csv(d/'results.csv').drop(columns=['seconds'], errors='ignore').sort_values(key).reset_index(drop=True)
            for d in (swept['rd'], swept['local']/RUN))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ckpt = lambda d: [(c['step'], c['sha256']) for c in _json(d/'manifest.json')['checkpoints']]
    assert ckpt(swept['rd']) == ckpt(swept['local']/RUN) != []


def test_refused_submission_says_what_was_asked(tmp_path):
    "On a cluster without GPUs, asking for one is refused by sbatch; the sweep's one error says what was asked and how to change it."
    gres = subprocess.run(['sinfo', '-h', '-o', '%G'], capture_output=True, text=True, timeout=15).stdout
    if 'gpu' in gres: pytest.skip(f'this cluster has GPUs ({gres.strip()}): sbatch would take the request')
    from ldifs_nb.sweep import sweep_jobs, run_jobs, slurm_executor   # (in this process: no job runs, nothing to start)
    jobs = sweep_jobs(['zs-init-ce'], ['micro-shape', 'micro-colour'], steps=1, out_dir=str(tmp_path))
    with pytest.raises(ValueError) as e:
        run_jobs(jobs, status_dir=tmp_path, executor=slurm_executor(tmp_path/'slurm', PARTITION, gpus_per_job=1, time='5'))
    said = str(e.value)
    for part in ('The cluster refused', 'Invalid generic resource', f'an array of 2 jobs, partition {PARTITION}, gres gpu:1 per job',
                 '--gpus-per-job G (0: no GPU'):
        assert part in said, said
    assert not (tmp_path/'sweep_status.csv').exists()   # nothing was submitted, so no job ids to wait for
