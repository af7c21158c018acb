"""CPU seconds per epoch of 60000 MNIST images, one thread, one run, for every cell of the
searched deeper-net table (10 % of an epoch timed, x10) at the smallest lr of its search
(lr / 16: a run that diverges stops early and would look cheap; the lr changes nothing
else): what a long run's epoch costs where other work shares the cores (process CPU time,
not wall time).

    python docs/results/deeper/searched/epoch_time.py --data-dir data > epoch_time.md
"""
import argparse
import time
import warnings

import torch

import pepita_lab as pl
from pepita_lab.reproduce.searched import SearchedSpec

parser = argparse.ArgumentParser()
parser.add_argument("--data-dir")
args = parser.parse_args()
torch.set_num_threads(1)
warnings.simplefilter("ignore")
cells = SearchedSpec(overrides={"data_dir": args.data_dir} if args.data_dir else {}).cells()
data = pl.data.load_data("mnist", data_dir=args.data_dir)
small = pl.data.TensorData("mnist", data.x_train[:6000], data.y_train[:6000], data.x_test[:1000],
                           data.y_test[:1000], data.image_shape, data.n_classes)
rows = {}
for cell, config in cells.items():
    depth, variant = cell.split("-", 1)
    config = config.replace(epochs=1, lr_milestones=(), lr=config.lr / 16)
    start = time.process_time()
    pl.train(config, data=small, progress=False)
    rows.setdefault(variant, {})[depth] = 10 * (time.process_time() - start)
depths = sorted({c.split("-", 1)[0] for c in cells})
print("| variant | " + " | ".join(f"{d[1:]} hidden" for d in depths) + " |")
print("| --- |" + " --- |" * len(depths))
for variant, by_depth in rows.items():
    print(f"| {variant} | " + " | ".join(f"{by_depth[d]:.1f} s" for d in depths) + " |")
