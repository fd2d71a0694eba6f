"""Training side by side (vaekit.training.lanes), which the tour uses: a model trained in a worker process
is bit for bit the model trained here with the same number of threads, each job's result comes back
under its name, and a failing job stops the whole run with its error."""

import dataclasses

import pytest
import torch

from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.training.lanes import Job, train_one, train_side_by_side


@pytest.fixture(autouse=True)
def two_threads():
    """Two lanes need two threads to give (one each); a test worker of -n 2 runs with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data(images_npz):
    return prepare(DataConfig(name=str(images_npz), val_size=0))


def _jobs():
    t = TrainConfig(epochs=2, batch_size=32, progress=False, eval_k=0)
    return [
        Job("vae", ModelConfig(name="vae", latent_dim=3, hidden=[24]), t),
        Job("ae", ModelConfig(name="ae", latent_dim=2, hidden=[16]), dataclasses.replace(t, lr=3e-3)),
        Job("cvae", ModelConfig(name="vae", latent_dim=2, hidden=[16], conditional=True, num_classes=8), t),
    ]


def test_workers_train_exactly_what_this_process_trains(data):
    seen = []
    side = train_side_by_side(_jobs(), data, lanes=2, on_done=lambda job, trained: seen.append(job.name))
    assert sorted(seen) == ["ae", "cvae", "vae"] and set(side) == {"ae", "cvae", "vae"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a worker's share of this machine's threads, when 2 lanes split 2 (or fewer) threads
    try:
        here = {job.name: train_one(job, data, quiet=True) for job in _jobs()}
    finally:
        torch.set_num_threads(threads)
    for name, trained in side.items():
        a, b = trained.model.state_dict(), here[name].model.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name

        def timeless(history):
            return [{k: v for k, v in record.items() if k != "seconds"} for record in history]

        assert timeless(trained.history) == timeless(here[name].history) and trained.seconds > 0


def test_one_lane_trains_here_in_order(data):
    order = []
    side = train_side_by_side(_jobs()[:2], data, lanes=1, on_done=lambda job, trained: order.append(job.name))
    assert order == ["vae", "ae"] and side["ae"].model.latent_dim == 2


@pytest.mark.slow  # two spawned workers, about 5 s; test_workers_train_exactly_... keeps the lanes in the default suite
def test_a_failing_job_stops_the_run_with_its_error(data):
    bad = Job(
        "bad",
        ModelConfig(name="vae", latent_dim=2, hidden=[8], conditional=True, num_classes=3),
        TrainConfig(epochs=1, batch_size=32, progress=False, eval_k=0),
    )  # labels reach 7
    with pytest.raises(RuntimeError, match="training bad failed in a worker: .*num_classes"):
        train_side_by_side([_jobs()[1], bad], data, lanes=2)


@pytest.mark.slow  # a fresh interpreter with torch, and its two workers: about 9 s
def test_workers_need_no_main_guard(tmp_path, images_npz):
    """A user's script calling it at top level (no `if __name__ == "__main__"`) is not re-run by the workers."""
    import subprocess
    import sys

    script = tmp_path / "user.py"
    script.write_text(f"""
import dataclasses
from vaekit.config import DataConfig, ModelConfig, TrainConfig
from vaekit.data.prepared import prepare
from vaekit.training.lanes import Job, train_side_by_side
print("script body ran")
data = prepare(DataConfig(name={str(images_npz)!r}, val_size=0))
t = TrainConfig(epochs=1, batch_size=64, progress=False, eval_k=0)
jobs = [Job(f"ae{{i}}", ModelConfig(name="ae", latent_dim=2, hidden=[8]), t) for i in range(3)]
print(sorted(train_side_by_side(jobs, data, lanes=2)))
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("script body ran") == 1 and "['ae0', 'ae1', 'ae2']" in out.stdout
