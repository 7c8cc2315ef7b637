#!/usr/bin/python3
"""PyTorch counterpart of bench_resnet50 (issue 12): the same Keras ResNet50 fine-tuning model,
the same three scenarios, the same warm-up / repeats convention, so that
benchmarks/compare_pytorch.py can time both side by side.

Model: tf.keras ``ResNet50(include_top=False)`` (v1, keras/applications/resnet.py) in Keras
layer order and padding -- ZeroPadding2D(3) + 7x7/2 valid conv with bias, BN eps 1.001e-5,
ZeroPadding2D(1) + 3x3/2 valid max pool, bottleneck blocks with the stride on the first 1x1
conv, a bias on every conv -- plus the fine-tuning head: global average pool, Dense 1024 relu,
Dense 2 softmax. float32, channels_last memory format, torch.set_num_threads(--threads).

Scenarios (the meaning of bench_resnet50's):
  frozen  every layer frozen, inference mode (BN uses moving statistics), no autograd,
          forward only (softmax output included);
  phase2  base frozen except Keras's ``base.layers[-10:]`` (conv5_block3_1_conv .. _out: the
          block's three convs and three BNs) + the head; frozen BNs in inference mode, the
          trainable ones in training mode; softmax cross-entropy on the logits, backward,
          Adam (lr 1e-5, eps 1e-7 as Keras) over the trainable parameters only;
  full    every layer trainable, every BN in training mode, the same step.

Weights: Keras initialisation (glorot-uniform kernels, zero biases, BN gamma 1 / beta 0), then
the BN moving statistics are set once from the benchmark batch (as bench_resnet50's
calibrate_batch_norm does) so the frozen network's activations have realistic scales. Input:
uniform pixels in [-124, 152) (caffe-preprocessed-like), labels i % 2.

Each scenario builds a fresh model (calibrated weights copied in), runs --warmup untimed steps,
then --repeats timed steps, and reports images/s per step (median, min, max), cores busy
(process CPU time / wall time of the timed steps) and the scenario's peak RSS (reset through
/proc/self/clear_refs before the scenario, read with getrusage, as bench_resnet50 does).

Output: one JSON object per line on stdout -- a "model" line (parameter counts and counted
conv + dense forward GFLOP per step, to check the architecture against parafine's) and one
"scenario" line per scenario; --csv FILE also writes the scenario lines as CSV.

  /usr/bin/python3 benchmarks/torch_resnet50.py [--batch 32] [--image-size 224] [--threads T]
      [--repeats 5] [--warmup 1] [--scenarios frozen,phase2,full] [--csv FILE] [--seed 1]
"""

import argparse
import csv
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BN_EPSILON = 1.001e-5
KERAS_BN_MOMENTUM = 0.99  # Keras: moving = 0.99 * moving + 0.01 * batch
ADAM_LEARNING_RATE = 1e-5
KERAS_ADAM_EPSILON = 1e-7
WIDTH = 64
HEAD_UNITS = 1024
CLASSES = 2
SCENARIOS = ("frozen", "phase2", "full")
# (stack, blocks, filters multiplier, stride of the stack's first block) of ResNet50.
RESNET50_STACKS = [(2, 3, 1, 1), (3, 4, 2, 2), (4, 6, 4, 2), (5, 3, 8, 2)]
# Keras's base.layers[-10:] for ResNet50: conv5_block3_{1_conv, 1_bn, 1_relu, 2_conv, 2_bn,
# 2_relu, 3_conv, 3_bn, add, out}. Only the convs and BNs among them hold weights.
PHASE2_TRAINABLE_BASE_LAYERS = [f"conv5_block3_{i}_{kind}" for i in (1, 2, 3)
                                for kind in ("conv", "bn")]


def keras_batch_norm(channels):
    # PyTorch's momentum weighs the new batch: 1 - Keras's momentum.
    return nn.BatchNorm2d(channels, eps=BN_EPSILON, momentum=1.0 - KERAS_BN_MOMENTUM)


class Bottleneck(nn.Module):
    """keras.applications.resnet.block1: 1x1 (stride) -> 3x3 'same' -> 1x1 (4x filters), each
    conv with bias and followed by BN; shortcut = 1x1 conv + BN (first block of a stack) or
    identity; add, relu."""

    def __init__(self, in_channels, filters, stride, conv_shortcut):
        super().__init__()
        self.conv_1 = nn.Conv2d(in_channels, filters, 1, stride=stride, bias=True)
        self.bn_1 = keras_batch_norm(filters)
        self.conv_2 = nn.Conv2d(filters, filters, 3, stride=1, padding=1, bias=True)
        self.bn_2 = keras_batch_norm(filters)
        self.conv_3 = nn.Conv2d(filters, 4 * filters, 1, bias=True)
        self.bn_3 = keras_batch_norm(4 * filters)
        self.conv_0 = self.bn_0 = None
        if conv_shortcut:
            self.conv_0 = nn.Conv2d(in_channels, 4 * filters, 1, stride=stride, bias=True)
            self.bn_0 = keras_batch_norm(4 * filters)

    def forward(self, x):
        y = F.relu(self.bn_1(self.conv_1(x)))
        y = F.relu(self.bn_2(self.conv_2(y)))
        y = self.bn_3(self.conv_3(y))
        shortcut = self.bn_0(self.conv_0(x)) if self.conv_0 is not None else x
        return F.relu(shortcut + y)

    def keras_layers(self, prefix):
        """(Keras layer name, module) of the block's layers that hold weights."""
        pairs = [(prefix + "_1_conv", self.conv_1), (prefix + "_1_bn", self.bn_1),
                 (prefix + "_2_conv", self.conv_2), (prefix + "_2_bn", self.bn_2),
                 (prefix + "_3_conv", self.conv_3), (prefix + "_3_bn", self.bn_3)]
        if self.conv_0 is not None:
            pairs += [(prefix + "_0_conv", self.conv_0), (prefix + "_0_bn", self.bn_0)]
        return pairs


class KerasResNet50FineTune(nn.Module):
    """ResNet50(include_top=False) + GAP -> Dense(1024, relu) -> Dense(2, softmax).
    forward() returns the logits of the last Dense (softmax is applied by the caller: in the
    loss when training, explicitly in the frozen forward)."""

    def __init__(self):
        super().__init__()
        self.conv1_pad = nn.ZeroPad2d(3)
        self.conv1_conv = nn.Conv2d(3, WIDTH, 7, stride=2, bias=True)  # 'valid'
        self.conv1_bn = keras_batch_norm(WIDTH)
        self.pool1_pad = nn.ZeroPad2d(1)
        self.pool1_pool = nn.MaxPool2d(3, stride=2)  # 'valid'
        blocks = []
        self.block_names = []
        in_channels = WIDTH
        for stack, count, multiplier, stride in RESNET50_STACKS:
            filters = multiplier * WIDTH
            for b in range(1, count + 1):
                blocks.append(Bottleneck(in_channels, filters, stride if b == 1 else 1, b == 1))
                self.block_names.append(f"conv{stack}_block{b}")
                in_channels = 4 * filters
        self.blocks = nn.Sequential(*blocks)
        self.dense = nn.Linear(in_channels, HEAD_UNITS)
        self.dense_1 = nn.Linear(HEAD_UNITS, CLASSES)

    def forward(self, x):
        x = F.relu(self.conv1_bn(self.conv1_conv(self.conv1_pad(x))))
        x = self.pool1_pool(self.pool1_pad(x))
        x = self.blocks(x)
        x = x.mean(dim=(2, 3))  # global_average_pooling2d
        return self.dense_1(F.relu(self.dense(x)))

    def keras_layers(self):
        """(Keras layer name, module) of every layer that holds weights, in Keras order."""
        pairs = [("conv1_conv", self.conv1_conv), ("conv1_bn", self.conv1_bn)]
        for name, block in zip(self.block_names, self.blocks):
            pairs += block.keras_layers(name)
        return pairs + [("dense", self.dense), ("dense_1", self.dense_1)]


def keras_initialize(model, seed):
    """Keras defaults: glorot-uniform kernels, zero biases; BN gamma 1, beta 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in model.keras_layers():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                receptive = w[0, 0].numel() if w.dim() == 4 else 1
                fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                w.copy_(torch.rand(w.shape, generator=generator) * (2 * limit) - limit)
                module.bias.zero_()


def calibrate_batch_norm(model, images):
    """Moving statistics of every BN := the statistics of its input on `images` (one
    training-mode forward with momentum 1, no autograd); momentum restored afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in norms:
        bn.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(images)
    for bn in norms:
        bn.momentum = 1.0 - KERAS_BN_MOMENTUM


def synthetic_batch(batch, size, seed):
    """NHWC pixels uniform in [-124, 152), viewed as an NCHW channels_last tensor; labels i%2."""
    generator = torch.Generator().manual_seed(seed)
    nhwc = torch.rand((batch, size, size, 3), generator=generator) * 276.0 - 124.0
    images = nhwc.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(batch) % 2
    return images, labels


def configure(model, scenario):
    """Trainable flags and BN modes of one scenario. Returns the trainable parameters."""
    if scenario == "frozen":
        trainable_layers = set()
    elif scenario == "phase2":
        trainable_layers = set(PHASE2_TRAINABLE_BASE_LAYERS) | {"dense", "dense_1"}
    else:
        trainable_layers = {name for name, _ in model.keras_layers()}
    model.train(scenario != "frozen")
    trainable = []
    for name, module in model.keras_layers():
        is_trainable = name in trainable_layers
        for p in module.parameters():
            p.requires_grad_(is_trainable)
            if is_trainable:
                trainable.append(p)
        if isinstance(module, nn.BatchNorm2d) and not is_trainable:
            module.eval()  # Keras: a BN with trainable=False runs in inference mode
    return trainable


def forward_flops(model, image_size):
    """Conv + dense FLOPs of one image's forward (2 per multiply-add), as bench_resnet50
    counts them, from the output shapes seen by forward hooks."""
    total = [0.0]

    def count(module, _inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += 2.0 * output.numel() * module.in_channels * kh * kw
        elif isinstance(module, nn.Linear):
            total[0] += 2.0 * output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size).contiguous(
            memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    return total[0]


def reset_peak_rss():
    """Linux >= 4.0: writing 5 to clear_refs makes getrusage's peak restart from the current
    RSS. False if not possible (the peak is then process-wide)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class Step:
    """One timed step of a scenario: frozen = inference forward + softmax; otherwise forward,
    softmax cross-entropy (mean over the batch), backward, Adam over the trainable params."""

    def __init__(self, model, scenario, images, labels, trainable):
        self.model, self.images, self.labels = model, images, labels
        self.training = scenario != "frozen"
        self.optimizer = None
        if self.training:
            self.optimizer = torch.optim.Adam(trainable, lr=ADAM_LEARNING_RATE,
                                              eps=KERAS_ADAM_EPSILON)

    def __call__(self):
        if not self.training:
            with torch.inference_mode():
                torch.softmax(self.model(self.images), dim=1)
            return
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.model(self.images), self.labels)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss became {loss.item()}")
        loss.backward()
        self.optimizer.step()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32, help="images per step")
    ap.add_argument("--image-size", type=int, default=224, help="input height and width (>= 32)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="compute threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per scenario")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--scenarios", default="frozen,phase2,full", help="frozen,phase2,full (any subset)")
    ap.add_argument("--csv", help="also write the scenario results here")
    ap.add_argument("--seed", type=int, default=1, help="initialisation seed")
    args = ap.parse_args()
    for name, low in (("batch", 1), ("image_size", 32), ("threads", 1), ("repeats", 1),
                      ("warmup", 0)):
        if getattr(args, name) < low:
            ap.error(f"--{name.replace('_', '-')} must be at least {low}")
    args.scenarios = args.scenarios.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"--scenarios takes frozen, phase2 and/or full, got '{s}'")
    return args


def emit(record):
    print(json.dumps(record), flush=True)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = synthetic_batch(args.batch, args.image_size, args.seed)

    started = time.perf_counter()
    reference = KerasResNet50FineTune().to(memory_format=torch.channels_last)
    keras_initialize(reference, args.seed)
    flops_per_image = forward_flops(reference, args.image_size)
    calibrate_batch_norm(reference, images)
    calibrated = {k: v.clone() for k, v in reference.state_dict().items()}
    trainable_params = sum(p.numel() for p in reference.parameters())
    moving_statistics = sum(b.numel() for n, b in reference.named_buffers()
                            if n.endswith(("running_mean", "running_var")))
    head = sum(p.numel() for m in (reference.dense, reference.dense_1) for p in m.parameters())
    del reference
    emit({"record": "model", "framework": "pytorch", "torch_version": torch.__version__,
          "threads": torch.get_num_threads(), "batch": args.batch, "image_size": args.image_size,
          "parameters": trainable_params, "bn_moving_statistics": moving_statistics,
          "keras_count_params": trainable_params + moving_statistics,
          "keras_base_count_params": trainable_params + moving_statistics - head,
          "gflop_forward": flops_per_image * args.batch * 1e-9,
          "setup_s": time.perf_counter() - started})

    rows = []
    for scenario in args.scenarios:
        model = KerasResNet50FineTune().to(memory_format=torch.channels_last)
        model.load_state_dict(calibrated)
        trainable = configure(model, scenario)
        per_scenario = reset_peak_rss()
        step = Step(model, scenario, images, labels, trainable)
        for _ in range(args.warmup):
            step()
        img_s = []
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            step()
            img_s.append(args.batch / (time.perf_counter() - t0))
        cores = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        row = {"record": "scenario", "framework": "pytorch", "scenario": scenario,
               "batch": args.batch, "image_size": args.image_size, "threads": args.threads,
               "repeats": args.repeats, "img_s_median": statistics.median(img_s),
               "img_s_min": min(img_s), "img_s_max": max(img_s), "cores_busy": cores,
               "peak_rss_mib": peak_rss_mib(), "rss_is_per_scenario": per_scenario,
               "trainable_weights": sum(p.numel() for p in trainable)}
        emit(row)
        rows.append(row)
        del step, model, trainable

    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
