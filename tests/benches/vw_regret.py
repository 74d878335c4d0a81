"""Vowpal Wabbit's contextual bandit on a stream written by the `vw` bench (tests/benches/vw.rs).

Usage: vw_regret.py STREAM OUT_DIR SEED

STREAM holds one round per line after its header: the context features, then every arm's
realised reward. VW sees only the context and the reward of the arm it chose, with the
probability it chose it (cost = -reward), exactly as a deployed learner would. For each VW
configuration below this writes OUT_DIR/<name>.arms (the chosen arm of each round, one per
line) and prints one JSON object per line on stdout: the configuration, its arguments, and the
median nanoseconds of parsing an example's text, of a decision (predict and sampling the arm)
and of a learning step (learn). The bench computes the regret from the chosen arms itself,
with the same code as for Starling's policies.
"""

import json
import random
import statistics
import sys
import time

import vowpalwabbit

# `-q ua` crosses every context feature with the arm's indicator: one linear model per arm over
# the context, the same model class as LinUCB's per-arm ridge regression. `--quiet` keeps VW's
# progress table off stdout.
COMMON = "--cb_explore_adf -q ua --quiet"

CONFIGS = [
    # The default exploration of --cb_explore_adf: the greedy arm, except with probability
    # epsilon (VW's default is 0.05) a uniform one.
    ("VW epsilon-greedy 0.05", "vw_epsilon", "--epsilon 0.05"),
    # SquareCB: an inverse-gap-weighted distribution over the regression's estimates, the
    # method VW's documentation recommends for --cb_explore_adf; default gamma schedule.
    ("VW SquareCB", "vw_squarecb", "--squarecb"),
    # SquareCB with a higher learning rate (VW's default is 0.5): the best of a small sweep
    # (learning rates 0.05 to 2, gamma scales 1 to 100, --coin, --bag, --regcb, other cb_types)
    # on a stream that is not one of the bench's seeds.
    ("VW SquareCB, learning rate 2", "vw_squarecb_l2", "--squarecb -l 2"),
    # Online cover: a small ensemble of policies trained to disagree, with a probability
    # floor; the strongest of VW's older explorers and the costliest per decision.
    ("VW online cover (4 policies)", "vw_cover", "--cover 4"),
]


def read_stream(path):
    """Returns (header fields, rows of (features, rewards))."""
    with open(path, encoding="ascii") as f:
        header = dict(field.split("=") for field in f.readline().split()[1:])
        arms, dims = int(header["arms"]), int(header["dims"])
        rows = []
        for line in f:
            values = line.split()
            features = [float(v) for v in values[:dims]]
            rewards = [float(v) for v in values[dims : dims + arms]]
            rows.append((features, rewards))
    return header, rows


def example(features, arms, chosen=None, cost=0.0, probability=1.0):
    """One multi-line ADF example: the shared context, then one line per arm."""
    shared = "shared |u " + " ".join(f"f{j}:{x:.6f}" for j, x in enumerate(features))
    lines = [shared]
    for a in range(arms):
        label = f"{a}:{cost}:{probability} " if a == chosen else ""
        lines.append(f"{label}|a arm{a}")
    return lines


def sample(pmf, rng):
    """An index drawn from the probability mass function `pmf`."""
    u = rng.random() * sum(pmf)
    total = 0.0
    for i, p in enumerate(pmf):
        total += p
        if u < total:
            return i
    return len(pmf) - 1


def run(rows, arms, args, seed, out_path):
    """Plays the stream; returns median ns of (text parsing, predict + sampling, learn)."""
    vw = vowpalwabbit.Workspace(f"{COMMON} {args} --random_seed {seed}")
    label_type = vowpalwabbit.LabelType.CONTEXTUAL_BANDIT
    rng = random.Random(seed)
    parse_ns, predict_ns, learn_ns = [], [], []
    with open(out_path, "w", encoding="ascii") as out:
        for features, rewards in rows:
            # Parsing the text form is timed apart: an app embedding VW's C++ library would
            # build examples directly, and the Python strings are this script's overhead.
            text = example(features, arms)
            start = time.perf_counter_ns()
            unlabelled = vw.parse(text, label_type)
            parse_ns.append(time.perf_counter_ns() - start)

            start = time.perf_counter_ns()
            pmf = vw.predict(unlabelled)
            arm = sample(pmf, rng)
            predict_ns.append(time.perf_counter_ns() - start)
            vw.finish_example(unlabelled)

            labelled = vw.parse(
                example(features, arms, arm, -rewards[arm], pmf[arm]), label_type
            )
            start = time.perf_counter_ns()
            vw.learn(labelled)
            learn_ns.append(time.perf_counter_ns() - start)
            vw.finish_example(labelled)
            out.write(f"{arm}\n")
    vw.finish()
    return tuple(statistics.median(ns) for ns in (parse_ns, predict_ns, learn_ns))


def main():
    stream, out_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    header, rows = read_stream(stream)
    arms = int(header["arms"])
    for label, name, args in CONFIGS:
        parse, predict, learn = run(rows, arms, args, seed, f"{out_dir}/{name}.arms")
        print(
            json.dumps(
                {
                    "label": label,
                    "name": name,
                    "args": f"{COMMON} {args}",
                    "version": vowpalwabbit.__version__,
                    "parse_ns": parse,
                    "predict_ns": predict,
                    "learn_ns": learn,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
