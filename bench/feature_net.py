"""Train the MNIST feature network that ships with vaekit (src/vaekit/assets/mnist_features.safetensors).

    python bench/feature_net.py [--out PATH] [--epochs 6]

LeNet-sized (`vaekit.metrics.features.MnistFeatureNet`), cross-entropy on the 60,000 MNIST training digits
plus outlier exposure (`vaekit.metrics.digit_score.outliers`), Adam with a one-cycle schedule, seed 0, one
thread, so a rerun with the same torch build on the same kind of CPU writes the same bytes. Prints
the test accuracy, the mean top-class probability on real test digits and on outliers, the
seconds taken and the file's SHA-256, and whether that equals the digest pinned in
`vaekit.metrics.features.MNIST_FEATURES_SHA256` (other CPU kernels may round differently: then the shipped
file, not a rebuilt one, is the one whose scores others can compare with).
Needs MNIST (`vaekit data fetch mnist`).
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    from vaekit.data.mnist import load_mnist
    from vaekit.metrics.digit_score import accuracy, digit_score, outliers, train_classifier
    from vaekit.metrics.features import MNIST_FEATURES_FILE, MNIST_FEATURES_SHA256, MnistFeatureNet, file_sha256
    from vaekit.training.checkpoints import save_tensors

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(MNIST_FEATURES_FILE))
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(1)
    m = load_mnist()
    x = torch.from_numpy(m["x_train"]).float().div(255)[:, None]  # (60000, 1, 28, 28) in [0, 1]
    xt = torch.from_numpy(m["x_test"]).float().div(255)[:, None]
    y, yt = torch.from_numpy(m["y_train"]).long(), torch.from_numpy(m["y_test"]).long()
    t = time.perf_counter()
    torch.manual_seed(0)
    net = train_classifier(x, y, epochs=args.epochs, net=MnistFeatureNet())
    seconds = time.perf_counter() - t
    g = torch.Generator().manual_seed(1)
    print(f"test accuracy         {accuracy(net, xt, yt):.4f}")
    print(f"digit score, real     {digit_score(net, xt):.4f}")
    print(f"digit score, outliers {digit_score(net, outliers(xt[:2000], g)):.4f}")
    print(
        f"digit score, N(0.5, 0.25) noise "
        f"{digit_score(net, (torch.randn(2000, 1, 28, 28, generator=g) * 0.25 + 0.5).clamp(0, 1)):.4f}"
    )
    print(f"trained in            {seconds:.0f} s (1 thread)")
    save_tensors(net.state_dict(), args.out)
    digest = file_sha256(args.out)
    print(
        f"wrote {args.out}\nsha256 {digest}  ({'equals' if digest == MNIST_FEATURES_SHA256 else 'differs from'} the "
        f"pinned digest)"
    )


if __name__ == "__main__":
    main()
