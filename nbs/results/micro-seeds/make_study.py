"""The micro seed study: what the slow cell of nbs/micro_results.ipynb runs, timed (resumable: finished runs are kept).

Usage, from a folder that will hold the runs (runs/micro-seeds): python make_study.py RESULTS_FOLDER"""
import os, sys, time, json
from pathlib import Path
os.environ.setdefault('LDIFS_DATA', '/tmp/ldifs_data_seeds')
from ldifs_nb.sweep import seed_study, sweep
from ldifs_nb.report import load_results
from ldifs_nb.losses import METHODS
OUT = Path(sys.argv[1])   # results folder (nbs/results/micro-seeds)
TASKS = ['micro-position', 'micro-digit', 'micro-shape', 'micro-count', 'micro-colour', 'micro-texture']
METHODS_STUDIED = list(METHODS)   # all eight
SEQUENCE, SEQ_METHODS = ['micro-position', 'micro-digit'], ['zs-init-ce', 'lp-init-ce', 'lp-init-ldifs']
STUDY = dict(seeds=(0, 1, 2), n_jobs=2, ckpt_fractions=(0.0, 0.5, 1.0), device='cpu')
t0, load = time.perf_counter(), [os.getloadavg()[0]]
study = seed_study(METHODS_STUDIED, TASKS, out_dir='runs/micro-seeds', **STUDY)
t1 = time.perf_counter(); load.append(os.getloadavg()[0])
print(sweep(SEQ_METHODS, sequences=[SEQUENCE], out_dir='runs/micro-seeds/sequences', **STUDY).to_string())
t2 = time.perf_counter(); load.append(os.getloadavg()[0])
OUT.mkdir(parents=True, exist_ok=True)
for k, t in study.items(): t.to_csv(OUT/f'{k}.csv', index=False)
load_results('runs/micro-seeds/sequences').to_csv(OUT/'sequences.csv', index=False)
info = dict(study_s=round(t1 - t0), sequences_s=round(t2 - t1), total_s=round(t2 - t0), load=load, cores=os.cpu_count(),
            date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
past = json.loads((OUT/'time.json').read_text()) if (OUT/'time.json').exists() else []
past = past if isinstance(past, list) else [past]     # one entry per session that ran (part of) the study
print(json.dumps(info)); (OUT/'time.json').write_text(json.dumps(past + [info], indent=1))
