"""Peak CPU memory of a training step's forward + backward, with and without activation checkpointing (and bf16 autocast).

Each setting runs in a fresh process: build the model (random init, offline), the optimiser, the reference encoder
(LDIFS) and a batch of random images, and run one whole training step first, so that the gradients and AdamW's
moments exist. Then, for a second forward + backward (gradients kept allocated, `zero_grad(set_to_none=False)`), a
thread samples the process's resident memory (`/proc/self/statm`) every millisecond; the step's figure is the peak
minus the resident memory just before: the activations kept for the backward plus the backward's temporaries. The
activations alone are also counted exactly: the bytes of the tensors autograd saves for the backward
(`torch.autograd.graph.saved_tensors_hooks`, each storage once, parameters excluded); with checkpointing on, only
what is saved outside the checkpointed blocks is seen there.

    python bench/bench_memory.py                          # ViT-B/32, batch 8, CE and LDIFS, checkpointing off/on
    python bench/bench_memory.py --model ViT-B-32 --batch-size 8 --methods zs-init-ldifs --precisions fp32 bf16
"""
import argparse, json, subprocess, sys

CHILD = r'''
import copy, json, os, sys, threading, time, torch, torch.nn.functional as F
from ldifs_nb.losses import METHODS, method_loss
from ldifs_nb.models import ImageClassifier, load_clip
model, method, batch, ckpt, precision = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == '1', sys.argv[5]
torch.set_num_threads(1); torch.manual_seed(0)
page = os.sysconf('SC_PAGE_SIZE')
def rss(): return int(open('/proc/self/statm').read().split()[1]) * page / 2**20   # MiB
clip_model, _, _ = load_clip(model, pretrained='random')
size = clip_model.visual.image_size[0]
ref = copy.deepcopy(clip_model.visual).eval().requires_grad_(False)
net = ImageClassifier(copy.deepcopy(clip_model.visual), F.normalize(torch.randn(10, clip_model.text_projection.shape[1]), dim=-1), torch.zeros(10), 100.).train()
del clip_model
net.encoder.set_grad_checkpointing(ckpt)
opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
x, y = torch.randn(batch, 3, size, size), torch.randint(10, (batch,))
def step():
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
        out = method_loss(METHODS[method], net, x, y, ref_encoder=ref)
    out['loss'].backward()
step(); opt.step(); opt.zero_grad(set_to_none=False)      # gradients and AdamW moments now exist
saved, params = {}, {q.untyped_storage().data_ptr() for q in net.parameters()}
def pack(t):   # every storage autograd keeps for the backward, once; the parameters themselves are not activations
    s = t.untyped_storage()
    if s.data_ptr() not in params: saved[s.data_ptr()] = s.nbytes()
    return t
peak, stop = [0.], threading.Event()
def sample():
    while not stop.is_set(): peak[0] = max(peak[0], rss()); time.sleep(0.001)
before = rss(); th = threading.Thread(target=sample); th.start()
with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t): step()
stop.set(); th.join()
print(json.dumps(dict(model=model, method=method, batch=batch, checkpointing=ckpt, precision=precision, before_mib=before,
                      step_mib=peak[0] - before, saved_mib=sum(saved.values()) / 2**20, params_m=sum(p.numel() for p in net.parameters()) / 1e6)))
'''


def main():
    a = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    a.add_argument('--model', default='ViT-B-32'); a.add_argument('--batch-size', type=int, default=8)
    a.add_argument('--methods', nargs='+', default=['zs-init-ce', 'zs-init-ldifs'])
    a.add_argument('--precisions', nargs='+', default=['fp32'])
    args = a.parse_args()
    rows = []
    for method in args.methods:
        for precision in args.precisions:
            for ckpt in (0, 1):
                r = subprocess.run([sys.executable, '-c', CHILD, args.model, method, str(args.batch_size), str(ckpt), precision],
                                   capture_output=True, text=True, check=True)
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
                d = rows[-1]
                print(f"{d['model']} {d['method']:14s} batch {d['batch']} {d['precision']} checkpointing {'on ' if d['checkpointing'] else 'off'}: "
                      f"forward + backward peak +{d['step_mib']:.0f} MiB (resident before: {d['before_mib']:.0f} MiB); "
                      f"saved for backward {d['saved_mib']:.0f} MiB", flush=True)
    for method in args.methods:
        for precision in args.precisions:
            off, on = [r for r in rows if r['method'] == method and r['precision'] == precision]
            print(f"{method} {precision}: checkpointing lowers the forward + backward peak from +{off['step_mib']:.0f} to +{on['step_mib']:.0f} MiB "
                  f"({on['step_mib'] / off['step_mib']:.2f}x); the process's peak {off['before_mib'] + off['step_mib']:.0f} -> "
                  f"{on['before_mib'] + on['step_mib']:.0f} MiB; saved for the backward {off['saved_mib']:.0f} -> {on['saved_mib']:.0f} MiB")


if __name__ == '__main__': main()
