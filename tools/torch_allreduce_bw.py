#!/usr/bin/env python3
"""NCCL all-reduce bus bandwidth on this machine's GPUs (issue 19: the communication ceiling
beside dsc's multi-GPU rows), through PyTorch's NCCL process group, as nccl-tests reports
it: bus GB/s = bytes / time x 2 (n - 1) / n, for bf16 and f32 buffers of 8 MiB to 1 GiB.

    torchrun --standalone --nproc_per_node N tools/torch_allreduce_bw.py

NVLink multicast stays off (NCCL_NVLS_ENABLE=0, set here before NCCL starts). Rank 0 prints
one row per size and a RESULT line with the largest bus bandwidth. Measurement only: dsc
never runs Python."""
import os

os.environ["NCCL_NVLS_ENABLE"] = "0"
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402


def main():
    dist.init_process_group("nccl")
    rank, n = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    best = 0.0
    for dtype in (torch.bfloat16, torch.float32):
        for mib in (8, 64, 256, 1024):
            x = torch.ones(mib * 2**20 // x_size(dtype), dtype=dtype, device="cuda")
            for _ in range(3):
                dist.all_reduce(x)
            torch.cuda.synchronize()
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            iters = 10
            start.record()
            for _ in range(iters):
                dist.all_reduce(x)
            stop.record()
            torch.cuda.synchronize()
            s = start.elapsed_time(stop) / 1e3 / iters
            bus = mib * 2**20 / s * 2 * (n - 1) / n / 1e9 if n > 1 else 0.0
            best = max(best, bus)
            if rank == 0:
                print(f"allreduce {str(dtype).replace('torch.', '')} {mib} MiB on {n} GPUs: {s * 1e3:.3f} ms, "
                      f"bus {bus:.1f} GB/s", flush=True)
    if rank == 0:
        print(f"RESULT system=nccl-allreduce gpus={n} bus_gb_s_max={best:.1f} device={torch.cuda.get_device_name()}")
    dist.destroy_process_group()


def x_size(dtype):
    return torch.tensor([], dtype=dtype).element_size()


if __name__ == "__main__":
    main()
