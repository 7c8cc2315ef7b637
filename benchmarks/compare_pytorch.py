#!/usr/bin/python3
"""Side-by-side speed of parafine and PyTorch on this CPU (issues 12, 13; DESIGN.md §6 targets).

For each backbone (--backbone, a comma-separated list), each round and each scenario (frozen,
phase2, full) it runs parafine's bench_backbone and benchmarks/torch_backbones.py (the same
Keras network + head in PyTorch, channels_last) one after the other, each in its own process
with only that scenario, with the same backbone, alpha, threads, batch, image size (0: the
backbone's default), --unfreeze-last, warm-up and repeats. The order alternates between rounds (parafine first in
odd rounds, PyTorch first in even ones) so slow drifts of a shared machine hit both alike.

It prints the CPU model name (/proc/cpuinfo), the date, and per backbone the architecture
check (counted conv + dense forward GFLOP of both models, PyTorch's parameter count against
keras.applications', the trainable weights of each scenario on both sides) and a table with
one row per scenario: the median over rounds of each run's median step (images/s) for both frameworks,
their ratio (parafine / PyTorch, > 1 means parafine is faster), both peak RSS figures (MiB,
the largest over rounds), the per-round medians, and "cores busy" (process CPU time / wall
time of the timed steps: well under --threads means the machine was busy elsewhere).

Peak RSS is what each benchmark reports for its scenario: getrusage's peak after resetting it
through /proc/self/clear_refs just before the scenario's model is built, so start-up and
set-up (BN calibration forward) are excluded on both sides. The whole-process peak (from
/usr/bin/time -f %M, start-up included) goes into --csv as well.

  /usr/bin/python3 benchmarks/compare_pytorch.py [--backbone resnet50[,vgg16,...]]
      [--alpha 1.0] [--batch 32] [--image-size 0] [--unfreeze-last 10] [--threads NPROC]
      [--rounds 2] [--repeats 5] [--warmup 1] [--scenarios frozen,phase2,full]
      [--build-dir build] [--python /usr/bin/python3] [--csv FILE] [--log-dir DIR]

Needs: a Release build of bench_backbone in --build-dir/benchmarks, and a Python with torch
(Debian's python3-torch 1.13 is /usr/bin/python3) for torch_backbones.py. Only the standard
library is used here.
"""

import argparse
import csv
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = ("frozen", "phase2", "full")
BACKBONES = ("resnet50", "resnet101", "resnet152", "vgg16", "vgg19", "inception_v3",
             "mobilenet_v2")


def cpu_model_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def git_commit():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbone", default="resnet50",
                    help="one or more of " + ", ".join(BACKBONES) + ", comma-separated")
    ap.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2's width multiplier")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--image-size", type=int, default=0, help="0: each backbone's default")
    ap.add_argument("--unfreeze-last", type=int, default=10,
                    help="phase2: Keras's base.layers[-N:] trainable")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each framework per scenario")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per run first")
    ap.add_argument("--scenarios", default="frozen,phase2,full")
    ap.add_argument("--build-dir", default=os.path.join(os.path.dirname(HERE), "build"),
                    help="parafine's CMake build directory (holds benchmarks/bench_backbone)")
    ap.add_argument("--python", default="/usr/bin/python3",
                    help="Python with torch for torch_backbones.py")
    ap.add_argument("--csv", help="also write the table (and per-round figures) here")
    ap.add_argument("--log-dir", help="keep every run's output here (default: a temporary "
                    "directory, removed at the end unless a run fails)")
    args = ap.parse_args()
    for name in ("batch", "threads", "rounds", "repeats"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.image_size < 0:
        ap.error("--image-size must be at least 0 (0: the backbone's default)")
    args.backbones = args.backbone.split(",")
    for b in args.backbones:
        if b not in BACKBONES:
            ap.error(f"--backbone takes {', '.join(BACKBONES)}, got '{b}'")
    args.scenarios = args.scenarios.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"--scenarios takes frozen, phase2 and/or full, got '{s}'")
    args.bench_binary = os.path.join(args.build_dir, "benchmarks", "bench_backbone")
    if not os.access(args.bench_binary, os.X_OK):
        ap.error(f"no {args.bench_binary}: build it first (cmake --build BUILD --target "
                 "bench_backbone)")
    return args


def run_logged(command, log_path, env):
    """Runs `command` under /usr/bin/time (if present) with stdout+stderr into log_path.
    Returns the whole-process peak RSS in MiB (None without /usr/bin/time)."""
    time_path = log_path + ".maxrss"
    wrapped = command
    if os.access("/usr/bin/time", os.X_OK):
        wrapped = ["/usr/bin/time", "-f", "%M", "-o", time_path] + command
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        status = subprocess.run(wrapped, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    if status != 0:
        with open(log_path) as log:
            tail = log.read().strip().splitlines()[-3:]
        sys.exit(f"compare_pytorch: command failed (exit {status}), see {log_path}:\n  "
                 + " ".join(command) + "\n" + "\n".join("  > " + line for line in tail))
    try:
        with open(time_path) as f:
            return int(f.read().split()[-1]) / 1024.0
    except (OSError, ValueError, IndexError):
        return None


def common_options(args, backbone, scenario):
    """The options both benchmarks take, with the same meaning."""
    return ["--backbone", backbone, "--alpha", str(args.alpha), "--batch", str(args.batch),
            "--image-size", str(args.image_size), "--unfreeze-last", str(args.unfreeze_last),
            "--threads", str(args.threads), "--repeats", str(args.repeats), "--warmup",
            str(args.warmup), "--scenarios", scenario]


def run_parafine(args, backbone, scenario, log_dir, tag, env):
    csv_path = os.path.join(log_dir, f"parafine_{tag}.csv")
    command = [args.bench_binary] + common_options(args, backbone, scenario) + ["--csv", csv_path]
    process_rss = run_logged(command, os.path.join(log_dir, f"parafine_{tag}.log"), env)
    with open(csv_path) as f:
        row = next(csv.DictReader(f))
    return {"img_s": float(row["img_s_median"]), "peak_rss_mib": float(row["peak_rss_mib"]),
            "cores": float(row["cores_busy"]), "process_rss_mib": process_rss,
            "gflop_forward": float(row["gflop_forward"]),
            "trainable_weights": int(row["trainable_weights"]),
            "gflop_step": float(row["gflop_forward"]) + float(row["gflop_backward"]),
            "image_size": int(row["image_size"])}


def run_pytorch(args, backbone, scenario, log_dir, tag, env):
    log_path = os.path.join(log_dir, f"pytorch_{tag}.log")
    command = ([args.python, os.path.join(HERE, "torch_backbones.py")]
               + common_options(args, backbone, scenario))
    process_rss = run_logged(command, log_path, env)
    model = row = None
    with open(log_path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record["record"] == "model":
                model = record
            elif record["record"] == "scenario":
                row = record
    if model is None or row is None:
        sys.exit(f"compare_pytorch: no result lines in {log_path}")
    return {"img_s": row["img_s_median"], "peak_rss_mib": row["peak_rss_mib"],
            "cores": row["cores_busy"], "process_rss_mib": process_rss,
            "gflop_forward": model["gflop_forward"], "trainable_weights": row["trainable_weights"],
            "parameters": model["parameters"], "keras_count_params": model["keras_count_params"],
            "keras_base_count_params": model["keras_base_count_params"],
            "keras_base_count_params_expected": model["keras_base_count_params_expected"],
            "keras_base_layers": model["keras_base_layers"],
            "keras_base_layers_expected": model["keras_base_layers_expected"],
            "keras_name": model["keras_name"], "image_size": model["image_size"],
            "torch_version": model["torch_version"]}


def fmt_list(values, digits=2):
    return ", ".join(f"{v:.{digits}f}" for v in values)


def verdict(a, b):
    return "equal" if a == b else "DIFFERENT"


def report_backbone(args, backbone, runs, started):
    """Prints the checks and the table of one backbone; returns its CSV rows."""
    first_torch = next(iter(runs.values()))["pytorch"][0]
    first_parafine = next(iter(runs.values()))["parafine"][0]
    name = first_torch["keras_name"]
    if backbone == "mobilenet_v2":
        name += f" alpha {args.alpha}"
    size = first_torch["image_size"]
    print(f"\n## {name} ({backbone}), batch {args.batch}, {size}x{size}")
    # Architecture check: both models must have the same weights and conv + dense FLOPs.
    expected = first_torch["keras_base_count_params_expected"]
    print(f"check: forward GFLOP/step (conv + dense) parafine {first_parafine['gflop_forward']:.3f}, "
          f"PyTorch {first_torch['gflop_forward']:.3f}; PyTorch parameters "
          f"{first_torch['parameters']:,} (+ BN moving statistics: Keras count_params "
          f"{first_torch['keras_count_params']:,})")
    print(f"check: PyTorch base count_params {first_torch['keras_base_count_params']:,}, "
          + (f"keras.applications {expected:,}: "
             f"{verdict(first_torch['keras_base_count_params'], expected)}" if expected else
             "(no keras.applications figure for this alpha)")
          + f"; base layers {first_torch['keras_base_layers']}, Keras "
          f"{first_torch['keras_base_layers_expected']}: "
          f"{verdict(first_torch['keras_base_layers'], first_torch['keras_base_layers_expected'])}")
    for scenario in args.scenarios:
        pf = runs[scenario]["parafine"][0]["trainable_weights"]
        pt = runs[scenario]["pytorch"][0]["trainable_weights"]
        print(f"check: {scenario} trainable weights parafine {pf:,}, PyTorch {pt:,}: "
              f"{verdict(pf, pt)}")

    rows = []
    for scenario in args.scenarios:
        pf, pt = runs[scenario]["parafine"], runs[scenario]["pytorch"]
        pf_median = statistics.median(x["img_s"] for x in pf)
        pt_median = statistics.median(x["img_s"] for x in pt)
        rows.append({
            "backbone": backbone, "alpha": args.alpha, "scenario": scenario,
            "batch": args.batch, "image_size": size,
            "threads": args.threads, "repeats": args.repeats, "rounds": args.rounds,
            "parafine_img_s": pf_median, "pytorch_img_s": pt_median,
            "ratio": pf_median / pt_median,
            "parafine_peak_rss_mib": max(x["peak_rss_mib"] for x in pf),
            "pytorch_peak_rss_mib": max(x["peak_rss_mib"] for x in pt),
            "parafine_gflop_s": statistics.median(
                x["gflop_step"] * x["img_s"] / args.batch for x in pf),
            "parafine_img_s_rounds": fmt_list(x["img_s"] for x in pf),
            "pytorch_img_s_rounds": fmt_list(x["img_s"] for x in pt),
            "parafine_cores_rounds": fmt_list(x["cores"] for x in pf),
            "pytorch_cores_rounds": fmt_list(x["cores"] for x in pt),
            "parafine_process_peak_rss_mib": max((x["process_rss_mib"] or 0) for x in pf),
            "pytorch_process_peak_rss_mib": max((x["process_rss_mib"] or 0) for x in pt),
            "cpu": cpu_model_name(), "date": f"{started:%Y-%m-%d %H:%M}",
        })

    print()
    print("| scenario | parafine img/s | PyTorch img/s | ratio | parafine GFLOP/s "
          "| parafine peak RSS MiB | PyTorch peak RSS MiB | parafine per round "
          "| PyTorch per round | cores busy parafine / PyTorch |")
    print("| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
    for row in rows:
        print(f"| {row['scenario']} | {row['parafine_img_s']:.2f} | {row['pytorch_img_s']:.2f} "
              f"| {row['ratio']:.2f}x | {row['parafine_gflop_s']:.1f} "
              f"| {row['parafine_peak_rss_mib']:.0f} "
              f"| {row['pytorch_peak_rss_mib']:.0f} | {row['parafine_img_s_rounds']} "
              f"| {row['pytorch_img_s_rounds']} | {row['parafine_cores_rounds']} / "
              f"{row['pytorch_cores_rounds']} |")
    return rows


def main():
    args = parse_args()
    started = datetime.datetime.now().astimezone()
    commit = git_commit()  # before the runs: a commit made during them must not be reported
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="compare_pytorch_")
    os.makedirs(log_dir, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    runs = {b: {s: {"parafine": [], "pytorch": []} for s in args.scenarios}
            for b in args.backbones}
    for backbone in args.backbones:
        for r in range(1, args.rounds + 1):
            order = ("parafine", "pytorch") if r % 2 else ("pytorch", "parafine")
            for scenario in args.scenarios:
                for framework in order:
                    tag = f"{backbone}_{scenario}_round{r}"
                    print(f"[{backbone} round {r}/{args.rounds}] {scenario}: {framework} ...",
                          end=" ", file=sys.stderr, flush=True)
                    runner = run_parafine if framework == "parafine" else run_pytorch
                    result = runner(args, backbone, scenario, log_dir, tag, env)
                    runs[backbone][scenario][framework].append(result)
                    print(f"{result['img_s']:.2f} img/s, {result['cores']:.2f} cores busy",
                          file=sys.stderr, flush=True)
    finished = datetime.datetime.now().astimezone()

    first_torch = next(iter(next(iter(runs.values())).values()))["pytorch"][0]
    print(f"compare_pytorch: parafine {commit} vs PyTorch {first_torch['torch_version']}")
    print(f"CPU: {cpu_model_name()}, {os.cpu_count()} logical CPU(s)")
    print(f"date: {started:%Y-%m-%d %H:%M} - {finished:%H:%M %Z}")
    print(f"config: batch {args.batch}, image size "
          f"{args.image_size or 'the default of each backbone'}, {args.threads} "
          f"thread(s), {args.warmup} warm-up + {args.repeats} timed steps per run, "
          f"{args.rounds} round(s), one scenario per process, alternating order, phase2 = "
          f"base.layers[-{args.unfreeze_last}:] + head")
    rows = []
    for backbone in args.backbones:
        rows += report_backbone(args, backbone, runs[backbone], started)
    print("(img/s: median over rounds of each run's median step; ratio = parafine / PyTorch; "
          "GFLOP/s: parafine's counted conv + dense FLOPs of the step at the median img/s; "
          "peak RSS: the scenario's own, largest over rounds)")

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    if args.log_dir:
        print(f"run logs in {log_dir}")
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
