def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a long test (several processes); CI runs it, `-m "not slow"` skips it')


def check_help_imports_no_torch(module: str, cli: str, prog: str) -> None:
    "`prog --help` (the function `cli` of `ldifs_nb.<module>`) is answered by argparse before torch is imported, in a few seconds."
    import os, subprocess, sys, time
    code = (f"import sys\nfrom ldifs_nb.{module} import {cli}\n"
            f"try: {cli}(['--help'])\nexcept SystemExit: pass\nprint('TORCH', 'torch' in sys.modules)")
    t0 = time.time()
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=dict(os.environ, LDIFS_QUIET='1'), timeout=60)
    assert r.returncode == 0, r.stderr
    assert f'usage: {prog}' in r.stdout and 'TORCH False' in r.stdout
    assert time.time() - t0 < 10   # < 1 s on an idle machine; generous on a shared one
