"""SDV's synthesizers on one training table, for bench/tables.py: run in the benchmark's own
environment (SDV is BUSL-licensed; vaekit never depends on it).

    python bench/tables_peers.py --train train.csv --metadata meta.json --peer tvae --n 69 --out synth.csv

Prints one JSON line: the fit's wall time in seconds and the rows written."""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="the training rows (CSV)")
    ap.add_argument("--metadata", required=True, help="SDV single-table metadata (JSON) with each column's sdtype")
    ap.add_argument("--peer", choices=["tvae", "copula"], required=True)
    ap.add_argument("--n", type=int, required=True, help="synthetic rows to write (all draws together)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np
    import pandas as pd
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import GaussianCopulaSynthesizer, TVAESynthesizer

    meta = json.load(open(args.metadata))
    text = [c for c, m in meta["columns"].items() if m["sdtype"] in ("categorical", "datetime")]
    frame = pd.read_csv(args.train, dtype={c: str for c in text})
    metadata = Metadata.load_from_dict({"tables": {"table": meta}})
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = TVAESynthesizer(metadata) if args.peer == "tvae" else GaussianCopulaSynthesizer(metadata)
    torch.optim.Adam(
        [torch.zeros(1, requires_grad=True)]
    )  # the first optimizer imports torch._dynamo (~2 s): not the fit's
    t = time.perf_counter()
    model.fit({"table": frame})  # SDV 2.0 takes (and gives) a table by name
    fit_s = time.perf_counter() - t
    synth = model.sample(args.n)
    synth = synth["table"] if isinstance(synth, dict) else synth
    synth.to_csv(args.out, index=False)
    print(json.dumps({"peer": args.peer, "fit_s": fit_s, "rows": args.n}))


if __name__ == "__main__":
    main()
