"""torchrun/DDP on CPU (gloo): the same training as one process, checkpoints that move between
process counts, and the rank helpers. The multi-process tests start real torchrun jobs."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from conftest import digit_like
from vaekit.training.distributed import BatchSampler, Context, shard

CONFIG = """
[data]
name = "{data}"
val_size = 40
[model]
name = "{model}"
latent_dim = 3
hidden = [32]
likelihood_check = false
[train]
epochs = {epochs}
batch_size = 64
lr = 3e-3
eval_k = 0
progress = false
"""


def test_shard_splits_a_global_batch_without_duplicates():
    idx = torch.arange(11)
    pieces = [shard(idx, Context(rank=r, world_size=3)) for r in range(3)]
    assert [len(p) for p in pieces] == [4, 4, 3]
    assert torch.equal(torch.cat(pieces), idx)
    assert shard(idx, Context()) is idx


def test_batch_sampler_shards_one_global_order_fixed_by_seed_and_epoch():
    """Every rank sees the same global batches; their shards cover each example once per epoch; the
    order depends on the epoch only through set_epoch (a resume needs nothing else), and epoch e's
    order is the (e+1)-th permutation of one seeded generator (what one process always drew)."""
    samplers = [BatchSampler(10, 4, Context(rank=r, world_size=3), seed=5) for r in range(3)]
    assert len(samplers[0]) == 3
    pieces = [list(s) for s in samplers]
    for j, batch in enumerate(samplers[0].global_batches()):
        assert sorted(i for p in pieces for i in p[j]) == sorted(batch.tolist())  # shards of batch j, no duplicates
    assert [len(b) for b in samplers[0].global_batches()] == [4, 4, 2]
    gen = torch.Generator().manual_seed(5)
    expected = [torch.randperm(10, generator=gen) for _ in range(4)]
    s = samplers[0]
    for epoch in (0, 3, 1, 2, 2):  # forwards, back (a rollback) and the same epoch twice
        s.set_epoch(epoch)
        assert torch.equal(torch.cat(s.global_batches()), expected[epoch])
    one = BatchSampler(10, 4, Context(), seed=5, shuffle=False)
    assert [b.tolist() for b in one.global_batches()] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] == list(one)


def _torchrun(args, nproc, cwd):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "vaekit",
        *args,
    ]
    if nproc == 1:
        cmd = [sys.executable, "-m", "vaekit", *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-12000:]
    return proc


def _weights(run):
    last = sorted((run / "checkpoints").iterdir())[-1]
    return load_file(str(last / "model.safetensors"))


def _close(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol, err_msg=k)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    x, y = digit_like(300)
    np.savez(root / "d.npz", x=x, y=y)
    for epochs in (1, 3):
        (root / f"ae{epochs}.toml").write_text(CONFIG.format(data=root / "d.npz", model="ae", epochs=epochs))
    one = root / "one"
    _torchrun(["train", str(root / "ae3.toml"), "--out", str(one)], 1, root)
    return root, one


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(job):
    """2 ranks x 32 examples per step == 1 process x 64: same parameters after 12 steps, same metrics."""
    root, one = job
    two = root / "two"
    out = _torchrun(["train", str(root / "ae3.toml"), "--out", str(two)], 2, root)
    assert out.stdout.count("run: ") == 1  # rank 0 alone reports
    _close(_weights(one), _weights(two))
    h1 = [json.loads(s) for s in (one / "metrics.jsonl").read_text().splitlines()]
    h2 = [json.loads(s) for s in (two / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in h2] == [4, 8, 12]  # steps count global batches
    for a, b in zip(h1, h2):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-5)
    assert json.loads((two / "eval.json").read_text())["squared_error"]["value"] == pytest.approx(
        json.loads((one / "eval.json").read_text())["squared_error"]["value"], rel=1e-5
    )
    # The checkpoint holds the bare model: no DDP "module." prefix.
    assert not any(k.startswith("module.") for k in _weights(two))


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_checkpoint_moves_between_process_counts(job, first, then):
    root, one = job
    run = root / f"moved{first}{then}"
    _torchrun(["train", str(root / "ae1.toml"), "--out", str(run)], first, root)
    _torchrun(["train", "--resume", str(run), "--set", "train.epochs=3"], then, root)
    _close(_weights(one), _weights(run))
    assert [json.loads(s)["epoch"] for s in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


@pytest.mark.slow
def test_python_api_under_torchrun_trains_like_the_cli(job):
    """A script calling vaekit.train() under torchrun joins the process group in each process; rank 0
    gets the evaluation and writes the run, the other ranks get eval None; the weights equal one process's."""
    root, one = job
    script = root / "api_job.py"
    script.write_text(
        textwrap.dedent("""
        import json, sys
        import vaekit
        out = vaekit.train(sys.argv[1], run_dir=sys.argv[2], pictures=False)
        # one write per rank: print's text and its newline are two writes, which two ranks can interleave
        sys.stdout.write(json.dumps({"eval": out["eval"] is not None, "steps": out["history"][-1]["step"]}) + "\\n")
        sys.stdout.flush()
    """)
    )
    run = root / "api2"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(root / "ae3.toml"),
        str(run),
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=root,
        timeout=300,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-12000:]
    reports = sorted(
        (json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), key=lambda r: r["eval"]
    )
    assert reports == [{"eval": False, "steps": 12}, {"eval": True, "steps": 12}]
    _close(_weights(one), _weights(run))
    assert (run / "eval.json").is_file()


@pytest.mark.slow
def test_vae_trains_under_two_processes(job):
    """Each rank draws its own noise (seed + rank); the run completes and its ELBO improves."""
    root, _ = job
    (root / "vae.toml").write_text(
        CONFIG.format(data=root / "d.npz", model="vae", epochs=3).replace("eval_k = 0", "eval_k = 10")
    )
    run = root / "vae2"
    _torchrun(["train", str(root / "vae.toml"), "--out", str(run)], 2, root)
    h = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    assert "log_px" in json.loads((run / "eval.json").read_text())


FRONTIER = {  # extra [model] lines of the frontier models, as small as they get
    "hvae": "latent_dims = [3, 2]\nhidden = [32, 16]",
    "iaf": 'posterior = "iaf"\nflow_hidden = [16]',
    "vqvae": "channels = [8, 16]\ndepth = 1\ncodebook_size = 16\ncodebook_dim = 4\nprior_width = 16\nprior_layers = 1",
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", FRONTIER)
def test_the_frontier_models_train_under_two_processes(job, kind):
    """Registered, not special-cased: each trains under torchrun and improves. The VQ-VAE has no
    sampling noise, and its codebook's moving averages add the counts and sums of every rank: two
    ranks x 32 examples give the weights (and codebook) of one process x 64."""
    root, _ = job
    name = "vae" if kind == "iaf" else kind
    text = CONFIG.format(data=root / "d.npz", model=name, epochs=3).replace(
        "hidden = [32]\n", "" if kind == "hvae" else "hidden = [32]\n"
    )
    (root / f"{kind}.toml").write_text(
        text.replace("likelihood_check = false", "likelihood_check = false\n" + FRONTIER[kind])
    )
    runs = {n: root / f"{kind}{n}" for n in ((1, 2) if kind == "vqvae" else (2,))}
    for n, run in runs.items():
        _torchrun(["train", str(root / f"{kind}.toml"), "--out", str(run)], n, root)
    h = [json.loads(s) for s in (runs[2] / "metrics.jsonl").read_text().splitlines()]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    if kind == "vqvae":
        one, two = _weights(runs[1]), _weights(runs[2])
        for w in (one, two):  # attention's key bias: softmax ignores it, so its gradient is rounding noise
            k = "code_prior.blocks.layers.0.self_attn.in_proj_bias"  # that Adam scales up: compare q and v only
            third = len(w[k]) // 3
            w[k] = np.concatenate([w[k][:third], w[k][2 * third :]])
        _close(one, two, tol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2, 3])
def test_evaluation_sharded_over_processes_equals_one_process(job, nproc):
    """The same trained VAE scored by 1, 2 or 3 processes: every metric identical, to the last bit
    (importance sampling included: batch j draws its noise from (seed, j) wherever it runs)."""
    root, _ = job
    run = root / "vae_eval"
    if not run.exists():
        (root / "vae_eval.toml").write_text(CONFIG.format(data=root / "d.npz", model="vae", epochs=2))
        _torchrun(["train", str(root / "vae_eval.toml"), "--out", str(run)], 1, root)
    args = ["evaluate", str(run), "--k", "30", "--json", "--batch-size", "7"]  # 30 test examples: 5 batches
    one = json.loads(_torchrun(args, 1, root).stdout)
    many = json.loads(_torchrun(args, nproc, root).stdout)
    assert set(one) >= {"log_px", "elbo", "kl_per_dim", "active_units", "mutual_information"}
    assert many == one


@pytest.mark.slow
def test_streamed_folder_trains_the_same_under_two_processes(job):
    """Each rank's DataLoader reads only its piece of every global batch; an AE ends where one process ends."""
    from PIL import Image

    root, _ = job
    folder = root / "pngs"
    rng = np.random.default_rng(0)
    for i in range(400):
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"c{i % 2}" / f"{i}.png")
    cfg = root / "stream.toml"
    cfg.write_text(
        CONFIG.format(data=folder, model="ae", epochs=2)
        .replace("val_size = 40", "val_size = 40\nstream = true\nworkers = 1")
        .replace("likelihood_check = false", 'likelihood_check = false\nlikelihood = "gaussian"')
    )
    _torchrun(["train", str(cfg), "--out", str(root / "s1")], 1, root)
    _torchrun(["train", str(cfg), "--out", str(root / "s2")], 2, root)
    _close(_weights(root / "s1"), _weights(root / "s2"))


def test_cuda_paths_choose_nccl_and_the_local_gpu(monkeypatch):
    """Without a GPU: under torchrun with --device cuda, rank 3 (local rank 1) joins with nccl and
    trains on cuda:1, and DDP is told that device."""
    import torch.distributed as dist

    import vaekit.training.devices as T
    import vaekit.training.distributed as D

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(T, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.setdefault("set_device", d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    ctx, device, started = D.setup("cuda")
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    assert (
        device == torch.device("cuda", 1)
        and calls == {"set_device": torch.device("cuda", 1), "backend": "nccl"}
        and started
    )

    import torch.nn.parallel as P

    seen = []
    monkeypatch.setattr(P, "DistributedDataParallel", lambda model, device_ids: seen.append(device_ids) or model)
    D.wrap(torch.nn.Linear(2, 2), ctx, device)
    D.wrap(torch.nn.Linear(2, 2), ctx, torch.device("cpu"))  # gloo on CPU: no device ids
    D.wrap(torch.nn.Linear(2, 2), D.Context(), device)  # one process: no wrapper at all
    assert seen == [[1], None]


def test_cpu_paths_choose_gloo(monkeypatch):
    import torch.distributed as dist

    import vaekit.training.distributed as D

    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.setdefault("backend", backend))
    ctx, device, started = D.setup("cpu")
    assert calls == {"backend": "gloo"} and device == torch.device("cpu") and ctx.is_main and started


@pytest.mark.parametrize("backend, comm", [("nccl", torch.device("cuda", 1)), ("gloo", torch.device("cpu"))])
def test_collectives_carry_cpu_tensors_through_the_backends_device(monkeypatch, backend, comm):
    """nccl moves only CUDA tensors: a CPU tensor (an RNG state in a checkpoint) goes to the rank's GPU
    for the collective and comes back to the CPU; gloo takes it as it is. Without a GPU, the moves
    are recorded instead of made."""
    import torch.distributed as dist

    import vaekit.training.distributed as D

    moves, seen = [], []
    monkeypatch.setattr(dist, "get_backend", lambda *a: backend)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    real_to = torch.Tensor.to

    def to(self, *args, **kwargs):
        target = torch.device(args[0] if args else kwargs["device"])
        moves.append(target)
        return self if target.type == "cuda" else real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)

    def all_reduce(t, op):
        seen.append(("reduce", op))
        t.mul_(2)  # as if two ranks held the same values

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "all_gather", lambda out, t: [o.copy_(t + r) for r, o in enumerate(out)])
    ctx = Context(rank=0, world_size=2, local_rank=1)
    state = torch.tensor([1, 2, 3], dtype=torch.uint8)
    ranks = D.all_gather(state, ctx)
    assert moves[0] == comm and all(m == torch.device("cpu") for m in moves[1:]) and len(moves) == 3
    assert [r.tolist() for r in ranks] == [[1, 2, 3], [2, 3, 4]] and all(r.device.type == "cpu" for r in ranks)
    moves.clear()
    total = torch.tensor([1.5])
    assert D.all_sum(total, ctx) is total and total.item() == 3.0 and moves == [comm]
    D.all_max(torch.tensor([0.0]), ctx)
    assert seen == [("reduce", dist.ReduceOp.SUM), ("reduce", dist.ReduceOp.MAX)]


def test_rank_logic_lives_in_one_module():
    """Only vaekit.training.distributed talks to torch.distributed or reads torchrun's variables."""
    import ast
    from pathlib import Path

    import vaekit

    offenders = []
    for path in Path(vaekit.__file__).parent.glob("*.py"):
        if path.name == "distributed.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif (
                isinstance(node, ast.Attribute)
                and node.attr == "distributed"
                and isinstance(node.value, ast.Name)
                and node.value.id == "torch"
            ):
                names = ["torch.distributed"]
            elif isinstance(node, ast.Constant) and node.value in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
                names = [node.value]
            offenders += [
                f"{path.name}:{node.lineno} {n}"
                for n in names
                if n.startswith("torch.distributed") or n in ("RANK", "WORLD_SIZE", "LOCAL_RANK")
            ]
    assert offenders == []
