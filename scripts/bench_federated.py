#!/usr/bin/env python3
"""Federated learning benchmark on scikit-learn's bundled breast cancer data
(sklearn/datasets/data/breast_cancer.csv): Starling (devices and server on loopback, through the
`federated` bench binary) beside a centralized logistic regression and a Flower FedAvg
simulation of the same split, with the same local training.

Run with `make bench-federated`, which creates the virtual environment and builds the binary.
Prints a Markdown report for docs/benchmarks.md.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

DEVICES = int(os.environ.get("FL_DEVICES", "10"))
ROUNDS = int(os.environ.get("FL_ROUNDS", "30"))
# Local training, identical for Starling's devices and Flower's clients.
EPOCHS, BATCH, LR, L2 = 5, 8, 0.1, 1e-4
SEED = 0


def prepare(out_dir):
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.2, random_state=SEED, stratify=data.target
    )
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    order = np.random.default_rng(SEED).permutation(len(x_train))
    device_of = np.empty(len(x_train), dtype=int)
    device_of[order] = np.arange(len(x_train)) % DEVICES
    path = os.path.join(out_dir, "breast_cancer_split.csv")
    with open(path, "w") as f:
        f.write("split,device,label," + ",".join(f"f{i}" for i in range(x_train.shape[1])) + "\n")
        for x, y, d in zip(x_train, y_train, device_of):
            f.write(f"train,{d},{y}," + ",".join(repr(float(v)) for v in x) + "\n")
        for x, y in zip(x_test, y_test):
            f.write(f"test,0,{y}," + ",".join(repr(float(v)) for v in x) + "\n")
    return path, x_train, y_train, x_test, y_test, device_of


def local_sgd(w, x, y, seed):
    """Mini-batch SGD on the logistic loss with L2 (not on the bias), as Starling's devices do."""
    w = w.copy()
    rng = np.random.default_rng(seed)
    xb = np.hstack([x, np.ones((len(x), 1))])
    for _ in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            p = 1.0 / (1.0 + np.exp(-xb[idx] @ w))
            grad = xb[idx].T @ (p - y[idx]) / len(idx)
            decay = L2 * w
            decay[-1] = 0.0
            w -= LR * (grad + decay)
    return w


def accuracy(w, x, y):
    z = np.hstack([x, np.ones((len(x), 1))]) @ w
    return float(np.mean((z >= 0) == (y == 1)))


def flower(x_train, y_train, x_test, y_test, device_of, clients, rounds, shares=None):
    """Flower's FedAvg (legacy Ray simulation). Returns test accuracy, median round seconds and
    bytes per update."""
    import flwr as fl
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

    dims = x_train.shape[1] + 1
    if shares is None:
        shares = [(x_train[device_of == c], y_train[device_of == c]) for c in range(clients)]

    class Client(fl.client.NumPyClient):
        def __init__(self, cid):
            self.cid = cid

        def fit(self, parameters, config):
            x, y = shares[self.cid]
            w = local_sgd(parameters[0], x, y, seed=self.cid * 1000 + int(config.get("round", 0)))
            return [w], len(x), {}

    def client_fn(context):
        cid = int(context.node_config["partition-id"])
        return Client(cid).to_client()

    seen = {"final": None, "times": [], "bytes": None}

    class Recording(fl.server.strategy.FedAvg):
        def aggregate_fit(self, server_round, results, failures):
            seen["times"].append(time.perf_counter())
            if seen["bytes"] is None and results:
                seen["bytes"] = sum(len(t) for t in results[0][1].parameters.tensors)
            parameters, metrics = super().aggregate_fit(server_round, results, failures)
            seen["final"] = parameters_to_ndarrays(parameters)[0]
            return parameters, metrics

    strategy = Recording(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=clients,
        min_available_clients=clients,
        initial_parameters=ndarrays_to_parameters([np.zeros(dims)]),
        on_fit_config_fn=lambda r: {"round": r},
    )
    start = time.perf_counter()
    fl.simulation.start_simulation(
        client_fn=client_fn,
        num_clients=clients,
        config=fl.server.ServerConfig(num_rounds=rounds),
        strategy=strategy,
        client_resources={"num_cpus": 1},
        ray_init_args={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False},
    )
    marks = [start] + seen["times"]
    # The first round includes Ray's start-up; rounds after it are the steady state.
    rounds_s = np.diff(marks)[1:] if len(marks) > 2 else np.diff(marks)
    return accuracy(seen["final"], x_test, y_test), float(np.median(rounds_s)), seen["bytes"]


def main():
    out_dir = os.environ.get("FL_BENCH_DIR", "target/fl-bench")
    os.makedirs(out_dir, exist_ok=True)
    path, x_train, y_train, x_test, y_test, device_of = prepare(out_dir)

    central = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    central_accuracy = float(central.score(x_test, y_test))

    started = time.perf_counter()
    run = subprocess.run(
        ["cargo", "bench", "-q", "-p", "starling-tests", "--bench", "federated"],
        env={**os.environ, "FL_BENCH_DATA": path, "FL_ROUNDS": str(ROUNDS)},
        check=True,
        capture_output=True,
        text=True,
    )
    starling_s = time.perf_counter() - started
    line = next(l for l in run.stdout.splitlines() if l.startswith("RESULT "))
    starling = json.loads(line[len("RESULT ") :])

    flower_accuracy, flower_round_s, flower_bytes = flower(
        x_train, y_train, x_test, y_test, device_of, DEVICES, ROUNDS
    )
    # Round time at 100 and 1,000 devices, 5 rows each drawn with replacement, as the Starling
    # run does.
    rng = np.random.default_rng(42)
    flower_rounds = {}
    for clients, rounds in [(100, 3), (1000, 2)]:
        picks = [rng.integers(0, len(x_train), 5) for _ in range(clients)]
        shares = [(x_train[p], y_train[p]) for p in picks]
        _, flower_rounds[clients], _ = flower(
            x_train, y_train, x_test, y_test, device_of, clients, rounds, shares=shares
        )

    n_test = len(y_test)
    print(f"Breast cancer data: {len(y_train)} training rows over {DEVICES} devices, "
          f"{n_test} test rows, {x_train.shape[1]} features; {ROUNDS} rounds of FedAvg, "
          f"{EPOCHS} local epochs, batch {BATCH}, learning rate {LR}, L2 {L2}.\n")
    print("| | test accuracy | median round wall time | bytes per update |")
    print("|---|---|---|---|")
    print(f"| centralized logistic regression (scikit-learn) | {central_accuracy:.4f} | | |")
    print(f"| Starling FL, {DEVICES} devices | {starling['accuracy']:.4f} | "
          f"{starling['round_ms_median']:.1f} ms | {starling['update_bytes']} |")
    print(f"| Flower FedAvg simulation, {DEVICES} clients | {flower_accuracy:.4f} | "
          f"{flower_round_s * 1000:.1f} ms | {flower_bytes} |")
    print()
    print("| one round, every device syncing in turn | Starling | Flower simulation |")
    print("|---|---|---|")
    for clients, label in [(100, "100"), (1000, "1,000")]:
        ours = starling["round_ms"][f"t{clients}"]
        theirs = flower_rounds[clients] * 1000
        print(f"| {label} devices | {ours:.0f} ms | {theirs:.0f} ms |")
    print()
    print(f"Starling's update: {starling['weights']} weights as int8 plus scale, ids and "
          f"evaluation, {starling['update_bytes']} bytes encoded; the same weights as float64 "
          f"are {starling['weights'] * 8} bytes. Starling's run took {starling_s:.0f} s in all.")
    print("\nRESULT " + json.dumps({"centralized": central_accuracy, "starling": starling,
                                    "flower": {"accuracy": flower_accuracy,
                                               "round_s": flower_round_s,
                                               "round_100_s": flower_rounds[100],
                                               "round_1000_s": flower_rounds[1000],
                                               "bytes": flower_bytes}}))


if __name__ == "__main__":
    sys.exit(main())
