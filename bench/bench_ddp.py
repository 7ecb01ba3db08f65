"""Step time of data-parallel training: PyTorch DDP (what `ldifs_nb.train` runs) against the hand-made reduction it replaced.

The hand-made path (the package before DDP, `train.all_reduce_grads`): backward, then one all-reduce of every gradient
flattened into one buffer. DDP: the same model in `DistributedDataParallel`, whose bucketed all-reduces run while the
backward is still going. Both start from the same weights and see the same batches (each rank its half), side by side
in one run, alternating blocks of steps so that both see the same machine load; the script prints the median step time
of each, their ratio, and how far the two models' weights are apart at the end.

    torchrun --standalone --nproc-per-node 2 bench/bench_ddp.py                      # ViT-B/32 (random init), CE, batch 8
    torchrun --standalone --nproc-per-node 2 bench/bench_ddp.py --method zs-init-ldifs
"""
import argparse, copy, os, statistics, time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from ldifs_nb.losses import METHODS, method_loss
from ldifs_nb.models import ImageClassifier, load_clip


def hand_reduce(params):
    "The replaced path: sum every gradient over ranks in one flat buffer, after the backward."
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    off = 0
    for p in params: p.grad = flat[off:off + p.numel()].view_as(p); off += p.numel()


def main():
    a = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    a.add_argument('--model', default='ViT-B-32'); a.add_argument('--method', default='zs-init-ce')
    a.add_argument('--batch-size', type=int, default=8, help='global batch (each of the 2 ranks: half)')
    a.add_argument('--steps', type=int, default=4, help='timed steps per block'); a.add_argument('--blocks', type=int, default=3)
    args = a.parse_args()
    dist.init_process_group('gloo'); rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', 1))); torch.manual_seed(0)
    clip_model, _, _ = load_clip(args.model, pretrained='random')
    size, m = clip_model.visual.image_size[0], METHODS[args.method]
    head = F.normalize(torch.randn(10, clip_model.text_projection.shape[1]), dim=-1)
    ref = copy.deepcopy(clip_model.visual).eval().requires_grad_(False)
    nets = {k: ImageClassifier(copy.deepcopy(clip_model.visual), head, torch.zeros(10), scale=100.).train() for k in ('hand', 'ddp')}
    ddp = nn.parallel.DistributedDataParallel(nets['ddp'], broadcast_buffers=False)
    opts = {k: torch.optim.AdamW(n.parameters(), lr=1e-5, weight_decay=0.1) for k, n in nets.items()}
    n_local = args.batch_size // world
    times = {'hand': [], 'ddp': []}

    def step(k, s):
        g = torch.Generator().manual_seed(s)   # the same global batch for both paths; each rank takes its half
        x, y = torch.randn(args.batch_size, 3, size, size, generator=g), torch.randint(10, (args.batch_size,), generator=g)
        x, y = x[rank * n_local:(rank + 1) * n_local], y[rank * n_local:(rank + 1) * n_local]
        dist.barrier(); t0 = time.perf_counter()
        opts[k].zero_grad(set_to_none=True)
        if k == 'ddp':
            out = method_loss(m, nets[k], x, y, ref_encoder=ref, net=ddp); (out['loss'] * n_local / args.batch_size * world).backward()
        else:
            out = method_loss(m, nets[k], x, y, ref_encoder=ref); (out['loss'] * n_local / args.batch_size).backward()
            hand_reduce(list(nets[k].parameters()))
        torch.nn.utils.clip_grad_norm_(nets[k].parameters(), 1.0); opts[k].step()
        dist.barrier(); return time.perf_counter() - t0

    for k in ('hand', 'ddp'): step(k, 0)   # warm-up, not timed
    s = 1
    for b in range(args.blocks):
        for k in (('hand', 'ddp') if b % 2 == 0 else ('ddp', 'hand')):
            for j in range(args.steps): times[k].append(step(k, s + j))
        s += args.steps
    with torch.no_grad(): diff = max(float((p - q).abs().max()) for p, q in zip(nets['hand'].parameters(), nets['ddp'].parameters()))
    if rank == 0:
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{args.model}, {args.method}, global batch {args.batch_size} on {world} CPU ranks (gloo, {torch.get_num_threads()} thread each), "
              f"{len(times['ddp'])} timed steps each")
        for k in ('hand', 'ddp'): print(f"  {k:5s} median step {med[k]:.3f} s  (min {min(times[k]):.3f}, max {max(times[k]):.3f})")
        print(f"  DDP / hand-made step time: {med['ddp'] / med['hand']:.3f}")
        print(f"  max |weight difference| after {1 + len(times['ddp'])} steps: {diff:.2g}")
    dist.destroy_process_group()


if __name__ == '__main__': main()
