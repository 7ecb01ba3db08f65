"""The micro study of `nbs/micro_results.ipynb`, timed: the commands of its `#| slow` cells (24 runs: every method on
three micro tasks; 3 sequences: micro-position → micro-digit, each taking the run of micro-position with its method as its
first stage), `n_jobs=2`, CPU, from an empty data root (the micro data
generated and prepared, the reference's embeddings and taps made, as a new user's first run would) into an empty
`out_dir`; prints the wall time of each part and the machine's load, and writes the page's results table.

    python bench/bench_micro_study.py --out /tmp/micro_study                       # timed; the results stay in /tmp
    python bench/bench_micro_study.py --out /tmp/micro_study --results nbs/results/micro/results.csv   # also re-make the page's table
    python bench/bench_micro_study.py --out /tmp/micro_study --lambda-csv /tmp/lambda_micro-position.csv  # and the λ selection of micro-position
"""
import argparse, os, sys, time
from pathlib import Path

def main(a):
    out = Path(a.out)
    if out.exists() and any(out.iterdir()): sys.exit(f"--out {out} is not empty: the study is timed from an empty folder")
    data = out/'data'; data.mkdir(parents=True, exist_ok=True)
    os.environ['LDIFS_DATA'] = str(data)                  # an empty data root, before ldifs_nb reads it
    from ldifs_nb.losses import METHODS
    from ldifs_nb.sweep import run_jobs, sweep_jobs, select_lambda
    from ldifs_nb.report import load_results
    TASKS, SEQUENCE = ['micro-position', 'micro-digit', 'micro-shape'], ['micro-position', 'micro-digit']   # as on the page
    SEQ_METHODS = ['zs-init-ce', 'lp-init-ce', 'lp-init-ldifs']
    opts = dict(out_dir=str(out/'runs'/'micro'), ckpt_fractions=(0.0, 0.5, 1.0), device='cpu')
    load = [os.getloadavg()[0]]
    t0 = time.perf_counter()
    jobs = sweep_jobs(list(METHODS), TASKS, seeds=[0], **opts) + sweep_jobs(SEQ_METHODS, sequences=[SEQUENCE], seeds=[0], **opts)
    print(run_jobs(jobs, n_jobs=2, status_dir=out/'runs'/'micro').to_string())   # one pool: the runs the sequences take first, then the longest jobs
    t2 = time.perf_counter(); load.append(os.getloadavg()[0])
    res = load_results(str(out/'runs'/'micro'))
    res.to_csv(out/'results.csv', index=False)
    if a.results: Path(a.results).parent.mkdir(parents=True, exist_ok=True); res.to_csv(a.results, index=False)
    print(f"24 runs and 3 sequences: {t2 - t0:.0f} s = {(t2 - t0) / 60:.1f} min "
          f"(load average (1 min) at start / at the end: {' / '.join(f'{x:.1f}' for x in load)}; "
          f"{os.cpu_count()} cores); {len(res):,} result rows")
    if a.lambda_csv:
        t3 = time.perf_counter()
        best, lam_table = select_lambda('micro-position', 'lp-init-ldifs', out_dir=opts['out_dir'], n_jobs=2, device='cpu')
        lam_table.to_csv(a.lambda_csv, index=False)
        print(f"λ selection: {time.perf_counter() - t3:.0f} s, λ = {best}; load average {os.getloadavg()[0]:.1f}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='an empty (or new) folder, e.g. in /tmp: data root and run folders')
    p.add_argument('--results', default=None, help='also write the results table here (the page: nbs/results/micro/results.csv)')
    p.add_argument('--lambda-csv', default=None, help='also run the λ selection of the page and write its table here')
    main(p.parse_args())
