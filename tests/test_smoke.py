"End-to-end: the README's smoke command, run as a user would (installs nothing)."
import subprocess, shutil

def test_smoke_command():
    exe = shutil.which('ldifs-smoke')
    assert exe, "console script ldifs-smoke is not installed"
    r = subprocess.run([exe, '--batch-size', '2', '--steps', '1'], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(l.startswith('zs-init-ce') and 'loss' in l for l in lines), r.stdout
    ratio = [l for l in lines if l.startswith('LDIFS / CE step time')]
    assert ratio and float(ratio[0].split(':')[1].split('x')[0]) > 0, r.stdout
