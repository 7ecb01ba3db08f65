"End-to-end: the experiment notebooks under papermill and the console scripts, driven as a user would."
import dataclasses, json, os, shutil, subprocess, sys, time
from pathlib import Path

import pandas as pd
import pytest

NBS = Path(__file__).resolve().parent.parent/'nbs'
ENV = dict(os.environ, LDIFS_QUIET='1')


def run(cmd, cwd, timeout=900):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=ENV)


def test_papermill_run_experiment(tmp_path):
    "A tiny micro run through papermill: the notebook executes and the run folder holds its results."
    out = tmp_path/'out.ipynb'
    r = run([sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(out), '-p', 'method', 'zs-init-ldifs',
             '-p', 'dataset', 'micro-colour', '-p', 'steps', '3', '-y', 'ckpt_fractions: [0.0, 1.0]',
             '-y', 'eval_datasets: [micro-colour, micro-shape]', '-p', 'out_dir', str(tmp_path/'runs'),
             '-p', 'data_root', str(tmp_path/'data'), '-p', 'device', 'cpu', '--cwd', str(NBS)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    res = pd.read_csv(tmp_path/'runs'/'micro-colour'/'zs-init-ldifs'/'0'/'results.csv')
    assert set(res['dataset']) == {'micro-colour', 'micro-shape'}
    assert sorted(res['step'].unique()) == [0, 3]


def test_papermill_list_parameter_as_string(tmp_path):
    "`-p eval_datasets micro-shape` (a plain string) and `-p ckpt_fractions 0,1` work as lists; other config fields pass through."
    r = run([sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(tmp_path/'out.ipynb'), '-p', 'method', 'ce',
             '-p', 'dataset', 'micro-shape', '-p', 'steps', '2', '-p', 'ckpt_fractions', '0,1', '-p', 'eval_datasets', 'micro-shape',
             '-p', 'weight_decay', '0.05', '-p', 'lp_protocol', 'adamw', '-p', 'out_dir', str(tmp_path/'runs'),
             '-p', 'data_root', str(tmp_path/'data'), '-p', 'device', 'cpu', '--cwd', str(NBS)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rd = tmp_path/'runs'/'micro-shape'/'lp-init-ce'/'0'
    res = pd.read_csv(rd/'results.csv')
    assert set(res['dataset']) == {'micro-shape'} and sorted(res['step'].unique()) == [0, 2]
    assert json.loads((rd/'manifest.json').read_text())['config']['weight_decay'] == 0.05


def test_papermill_bad_dataset_one_line(tmp_path):
    "A bad dataset through papermill ends with the package's one-line error as the last line of output; nothing is written."
    r = run([sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(tmp_path/'out.ipynb'), '-p', 'dataset', 'micro-shapes',
             '-p', 'out_dir', str(tmp_path/'runs'), '-p', 'data_root', str(tmp_path/'data'), '--cwd', str(NBS)], tmp_path)
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("SystemExit: run_experiment: ValueError: Unknown dataset 'micro-shapes'. Valid datasets:") and 'micro-shape,' in last, last
    assert not (tmp_path/'runs').exists() and not (tmp_path/'data').exists()


def test_experiment_notebooks_take_every_config_field():
    "Every FinetuneConfig field is a parameter of run_experiment.ipynb (run_sequence.ipynb: all but `dataset`, plus tasks/anchor)."
    from papermill.inspection import inspect_notebook
    from ldifs_nb.config import FinetuneConfig
    fields = {f.name for f in dataclasses.fields(FinetuneConfig)}
    assert set(inspect_notebook(str(NBS/'run_experiment.ipynb'))) == fields
    assert set(inspect_notebook(str(NBS/'run_sequence.ipynb'))) == fields - {'dataset'} | {'tasks', 'anchor'}


def test_papermill_paper_run_fails_fast_offline(tmp_path):
    "The paper's GTSRB run stops at once offline with the clear missing-weights (or missing-data) error."
    t0 = time.time()
    r = run([sys.executable, '-m', 'papermill', str(NBS/'run_experiment.ipynb'), str(tmp_path/'out.ipynb'),
             '-p', 'method', 'ldifs', '-p', 'dataset', 'gtsrb', '-p', 'out_dir', str(tmp_path/'runs'),
             '-p', 'data_root', str(tmp_path/'data'), '--cwd', str(NBS)], tmp_path)
    if r.returncode == 0: pytest.skip('weights and data are available here: the paper run is possible')
    assert time.time() - t0 < 300
    assert ('MissingWeightsError' in r.stderr and "'openai'" in r.stderr) or 'MissingDataError' in r.stderr, r.stderr[-3000:]
    assert not (tmp_path/'runs'/'gtsrb').exists()  # nothing half-written
    assert not (tmp_path/'data').exists() or not any((tmp_path/'data').rglob('*'))   # no empty raw/<dataset>/ folders either


# where the README says the main job's files go: the run folder (under the working folder), the files in it, and the data (under $LDIFS_DATA)
README_RUN = 'runs/micro-position/lp-init-ldifs/0/'
README_RUN_FILES = ['ckpt/', 'results.csv', 'manifest.json', 'log.jsonl']
README_DATA_PATHS = ['cache/micro-position@1/store2-cap32/', 'embeddings/']


def test_cli_run_and_bad_input(tmp_path):
    """`ldifs-run` as the README's main job (fewer steps, two datasets): the final Δ table, the files where the README says,
    no lock file left; a re-run says in one line that it reused the run; a bad method exits non-zero with one line."""
    exe = shutil.which('ldifs-run')
    assert exe
    readme = (NBS.parent/'README.md').read_text()
    args = [exe, '--method', 'ldifs', '--dataset', 'micro-position', '--steps', '3', '--ckpt-fractions', '0', '1',
            '--eval-datasets', 'micro-position', 'micro-shape', '--data-root', str(tmp_path/'data'), '--device', 'cpu']
    r = run(args, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'delta_lp' in r.stdout and 'micro-shape' in r.stdout
    rd = Path('runs')/'micro-position'/'lp-init-ldifs'/'0'
    assert r.stdout.strip().splitlines()[-1].startswith(f"results: {rd/'results.csv'}")
    places = [(README_RUN, tmp_path)] + [(f, tmp_path/README_RUN) for f in README_RUN_FILES] + [(p, tmp_path/'data') for p in README_DATA_PATHS]
    for rel, top in places:
        assert f'`{rel}' in readme or f'/{rel}' in readme, f'the README does not name {rel}'
        assert (top/rel).exists(), f'{rel} named by the README is not there after the main job ({top/rel})'
    assert {p.name for p in (tmp_path/rd).iterdir()} == {'ckpt', 'log.jsonl', 'manifest.json', 'results', 'results.csv', 'results.csv.check'}  # no .lock
    again = run(args, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.splitlines()[0].startswith(f'Reused the finished run in {rd}: its results were read back'), again.stdout[:500]
    bad = run([exe, '--method', 'sgd'], tmp_path)
    assert bad.returncode != 0
    assert 'Valid methods: zs-init-ce' in bad.stderr and 'Traceback' not in bad.stderr


def test_sweep_cli_records_failures(tmp_path):
    "`ldifs-sweep` runs the good job, records the failing one (the paper's GTSRB offline) with its error, exits non-zero, ends with the Δ table."
    exe = shutil.which('ldifs-sweep')
    assert exe
    runs = tmp_path/'runs'
    args = [exe, '--method', 'lp-init-ce', '--datasets', 'micro-shape', 'gtsrb', '--steps', '2', '--ckpt-fractions', '0,1',
            '--eval-datasets', 'micro-shape', '--out-dir', str(runs), '--data-root', str(tmp_path/'data'), '--device', 'cpu']
    r = run(args, tmp_path)
    if r.returncode == 0: pytest.skip('weights and data are available here: the GTSRB job does not fail')
    assert r.returncode == 1 and '1 of 2 jobs failed' in r.stderr, (r.stdout[-2000:], r.stderr[-2000:])
    assert 'delta_lp' in r.stdout and f"results: {runs}" in r.stdout
    status = pd.read_csv(runs/'sweep_status.csv').set_index('job')
    assert status.loc['micro-shape/lp-init-ce/0', 'status'] == 'done'
    assert status.loc['gtsrb/lp-init-ce/0', 'status'] == 'failed'
    assert status.loc['gtsrb/lp-init-ce/0', 'error'].startswith('ldifs-run: error:')  # the job's one-line error
    assert (runs/'micro-shape'/'lp-init-ce'/'0'/'results.csv').exists()
    again = run(args, tmp_path)  # the finished run is skipped, not redone
    status2 = pd.read_csv(runs/'sweep_status.csv').set_index('job')
    assert again.returncode == 1 and status2.loc['micro-shape/lp-init-ce/0', 'status'] == 'skipped'


def test_sequence_cli(tmp_path):
    "`ldifs-sequence` runs a two-task sequence, exits 0 and prints the final Δ table; a one-task sequence is refused."
    exe = shutil.which('ldifs-sequence')
    assert exe
    r = run([exe, '--method', 'lp-init-ldifs', '--tasks', 'micro-shape', 'micro-colour', '--steps', '2', '--ckpt-fractions', '0', '1',
             '--eval-datasets', 'micro-shape', 'micro-colour', '--out-dir', str(tmp_path/'runs'), '--data-root', str(tmp_path/'data'),
             '--device', 'cpu'], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'delta_lp' in r.stdout and '1: micro-shape' in r.stdout and '2: micro-colour' in r.stdout  # labelled by stage
    assert r.stdout.strip().splitlines()[-1].startswith('results: ')
    res = pd.read_csv(tmp_path/'runs'/'micro-shape+micro-colour'/'lp-init-ldifs'/'0'/'results.csv')
    assert sorted(res['stage'].unique()) == [1, 2]
    one = run([exe, '--method', 'ce', '--tasks', 'micro-shape', '--out-dir', str(tmp_path/'runs1')], tmp_path)
    assert one.returncode != 0 and 'at least 2 tasks' in one.stderr and 'Traceback' not in one.stderr
    assert not (tmp_path/'runs1').exists()
