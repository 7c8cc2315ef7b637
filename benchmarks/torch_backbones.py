#!/usr/bin/python3
"""PyTorch counterpart of bench_backbone (issues 12, 13): the same Keras fine-tuning model of any
backbone, the same three scenarios, the same warm-up / repeats convention, so that
benchmarks/compare_pytorch.py can time both side by side.

Models: keras.applications' ``NAME(include_top=False)`` in Keras layer order and padding, plus
the fine-tuning head: global average pool, Dense 1024 relu, Dense 2 softmax. float32,
channels_last memory format, torch.set_num_threads(--threads). No torchvision: every network
is written here from the Keras source (keras/applications/*.py):
  resnet50/101/152  resnet.py (v1): ZeroPadding2D(3) + 7x7/2 valid conv with bias, BN eps
                    1.001e-5, ZeroPadding2D(1) + 3x3/2 valid max pool, bottleneck blocks with
                    the stride on the first 1x1 conv, a bias on every conv; stacks {3,4,6,3},
                    {3,4,23,3}, {3,8,36,3}. ResNet50 is the explicit module of issue 12.
  vgg16/vgg19       vgg16.py/vgg19.py: 3x3 'same' convs with bias and relu, 2x2/2 max pools;
                    {2,2,3,3,3} / {2,2,4,4,4} convs of 64,128,256,512,512 filters.
  inception_v3      inception_v3.py: conv2d_bn = conv without bias + BN(eps 1e-3,
                    scale=False: gamma fixed at 1, never trained nor counted) + relu; 'same'
                    stride-1 convs (odd kernels incl. 1x7/7x1: symmetric padding is TF's),
                    'valid' stride-2 ones; 3x3/1 'same' average pools excluding the padding.
  mobilenet_v2      mobilenet_v2.py with --alpha: _make_divisible channel counts, inverted
                    residual blocks, ReLU6, depthwise = groups=C, BN eps 1e-3 momentum 0.999,
                    correct_pad's asymmetric zero padding before the stride-2 depthwise convs
                    and TF 'same' padding of the stride-2 Conv1 (both with F.pad).
Except ResNet (explicit modules), each network is a list of Keras layers in creation order run
by KerasGraph, which frees every output after its last reader.

Scenarios (the meaning of bench_backbone's):
  frozen  every layer frozen, inference mode (BN uses moving statistics), no autograd,
          forward only (softmax output included);
  phase2  base frozen except Keras's ``base.layers[-N:]`` (--unfreeze-last N, default 10) +
          the head; base.layers is ordered as Keras's functional Model orders it (by depth
          from the output, ties by the traversal order: keras_layer_order below), so for
          ResNet50 the last 10 are conv5_block3_1_conv .. _out; frozen BNs in inference mode,
          the trainable ones in training mode; softmax cross-entropy on the logits, backward,
          Adam (lr 1e-5, eps 1e-7 as Keras) over the trainable parameters only;
  full    every layer trainable, every BN in training mode, the same step.

Weights: Keras initialisation (glorot-uniform kernels, zero biases, BN gamma 1 / beta 0), then
the BN moving statistics are set once from the benchmark batch (as bench_backbone's
calibrate_batch_norm does) so the frozen network's activations have realistic scales. Input:
uniform pixels in [-124, 152) (caffe-preprocessed-like), labels i % 2.

Each scenario builds a fresh model (calibrated weights copied in), runs --warmup untimed steps,
then --repeats timed steps, and reports images/s per step (median, min, max), cores busy
(process CPU time / wall time of the timed steps) and the scenario's peak RSS (reset through
/proc/self/clear_refs before the scenario, read with getrusage, as bench_backbone does).

Output: one JSON object per line on stdout -- a "model" line (parameter counts: Keras's
count_params of the base, BN moving statistics included, against keras.applications'
include_top=False total; Keras base layer count; counted conv + dense forward GFLOP per step,
to check the architecture against parafine's) and one "scenario" line per scenario; --csv FILE
also writes the scenario lines as CSV. --check-only stops after the model line (and checks a
forward + backward of two images); it exits 1 when a parameter or layer count differs.

  /usr/bin/python3 benchmarks/torch_backbones.py [--backbone resnet50] [--alpha 1.0]
      [--batch 32] [--image-size 0 (the backbone's default)] [--unfreeze-last 10]
      [--threads T] [--repeats 5] [--warmup 1] [--scenarios frozen,phase2,full] [--csv FILE]
      [--seed 1] [--check-only]
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

BN_EPSILON = 1.001e-5  # ResNet's
KERAS_BN_EPSILON = 1e-3  # Keras's BatchNormalization default (InceptionV3, MobileNetV2)
KERAS_BN_MOMENTUM = 0.99  # Keras: moving = 0.99 * moving + 0.01 * batch
ADAM_LEARNING_RATE = 1e-5
KERAS_ADAM_EPSILON = 1e-7
WIDTH = 64
HEAD_UNITS = 1024
CLASSES = 2
SCENARIOS = ("frozen", "phase2", "full")

# name: (Keras function, len(base.layers) with include_top=False, default size, min size,
#        keras.applications' include_top=False count_params at alpha 1.0)
BACKBONES = {
    "resnet50": ("ResNet50", 175, 224, 32, 23587712),
    "resnet101": ("ResNet101", 345, 224, 32, 42658176),
    "resnet152": ("ResNet152", 515, 224, 32, 58370944),
    "vgg16": ("VGG16", 19, 224, 32, 14714688),
    "vgg19": ("VGG19", 22, 224, 32, 20024384),
    "inception_v3": ("InceptionV3", 311, 299, 75, 21802784),
    "mobilenet_v2": ("MobileNetV2", 154, 224, 32, 2257984),
}
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (stack, blocks, filters multiplier, stride of the stack's first block) of each ResNet.
RESNET_STACKS = {
    "resnet50": [(2, 3, 1, 1), (3, 4, 2, 2), (4, 6, 4, 2), (5, 3, 8, 2)],
    "resnet101": [(2, 3, 1, 1), (3, 4, 2, 2), (4, 23, 4, 2), (5, 3, 8, 2)],
    "resnet152": [(2, 3, 1, 1), (3, 8, 2, 2), (4, 36, 4, 2), (5, 3, 8, 2)],
}
RESNET50_STACKS = RESNET_STACKS["resnet50"]


def keras_batch_norm(channels, eps=BN_EPSILON, keras_momentum=KERAS_BN_MOMENTUM):
    # PyTorch's momentum weighs the new batch: 1 - Keras's momentum.
    return nn.BatchNorm2d(channels, eps=eps, momentum=1.0 - keras_momentum)


class BatchNormNoScale(nn.BatchNorm2d):
    """Keras BatchNormalization(scale=False): no gamma. PyTorch's affine BN with its weight
    fixed at 1 (never trainable, not counted) computes the same with the same kernels."""

    def __init__(self, channels, eps, keras_momentum):
        super().__init__(channels, eps=eps, momentum=1.0 - keras_momentum)
        self.weight.requires_grad_(False)


def fixed_parameter(module, param_name):
    """True for a weight Keras does not have (the gamma of a scale=False BN)."""
    return isinstance(module, BatchNormNoScale) and param_name == "weight"


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


class KerasResNetFineTune(nn.Module):
    """ResNet50/101/152(include_top=False) + GAP -> Dense(1024, relu) -> Dense(2, softmax).
    forward() returns the logits of the last Dense (softmax is applied by the caller: in the
    loss when training, explicitly in the frozen forward)."""

    def __init__(self, stacks=RESNET50_STACKS):
        super().__init__()
        self.stacks = stacks
        self.conv1_pad = nn.ZeroPad2d(3)
        self.conv1_conv = nn.Conv2d(3, WIDTH, 7, stride=2, bias=True)  # 'valid'
        self.conv1_bn = keras_batch_norm(WIDTH)
        self.pool1_pad = nn.ZeroPad2d(1)
        self.pool1_pool = nn.MaxPool2d(3, stride=2)  # 'valid'
        blocks = []
        self.block_names = []
        in_channels = WIDTH
        for stack, count, multiplier, stride in stacks:
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

    def keras_base_graph(self):
        """(name, input names) of every Keras base layer (weightless ones included)."""
        g = [("input_1", []), ("conv1_pad", ["input_1"]), ("conv1_conv", ["conv1_pad"]),
             ("conv1_bn", ["conv1_conv"]), ("conv1_relu", ["conv1_bn"]),
             ("pool1_pad", ["conv1_relu"]), ("pool1_pool", ["pool1_pad"])]
        x = "pool1_pool"
        for name, block in zip(self.block_names, self.blocks):
            shortcut = x
            if block.conv_0 is not None:  # keras resnet.block1 builds the shortcut first
                g += [(name + "_0_conv", [x]), (name + "_0_bn", [name + "_0_conv"])]
                shortcut = name + "_0_bn"
            y = x
            for i in (1, 2, 3):
                g += [(f"{name}_{i}_conv", [y]), (f"{name}_{i}_bn", [f"{name}_{i}_conv"])]
                y = f"{name}_{i}_bn"
                if i < 3:
                    g.append((f"{name}_{i}_relu", [y]))
                    y = f"{name}_{i}_relu"
            g += [(name + "_add", [shortcut, y]), (name + "_out", [name + "_add"])]
            x = name + "_out"
        return g

    def head(self):
        return [self.dense, self.dense_1]


class KerasGraph(nn.Module):
    """A keras.applications base as the list of its Keras layers in creation order, each one
    op applied to earlier layers' outputs, plus the head. forward() runs them in order and
    drops every output after its last reader (as parafine's Model releases the frozen ones).
    Built with the layer helpers below, whose arguments mirror the Keras calls."""

    def __init__(self, in_channels=3):
        super().__init__()
        self.names, self.inputs, self.ops, self.channels = ["input_1"], [[]], [None], [in_channels]
        self.weighted = nn.ModuleDict()  # Keras layer name -> module, for layers with weights
        self.counters = {}

    def auto_name(self, prefix):
        """Keras's automatic layer names: conv2d, conv2d_1, conv2d_2, ..."""
        n = self.counters.get(prefix, 0)
        self.counters[prefix] = n + 1
        return prefix if n == 0 else f"{prefix}_{n}"

    def add(self, name, inputs, op, channels, module=None):
        if name in self.names:
            raise ValueError(f"duplicate Keras layer name {name}")
        self.names.append(name)
        self.inputs.append([self.names.index(i) if isinstance(i, str) else i for i in inputs])
        self.ops.append(op)
        self.channels.append(channels)
        if module is not None:
            self.weighted[name] = module
        return len(self.names) - 1

    # -- Keras layers --
    def conv(self, x, filters, kernel, stride=1, padding="same", bias=True, relu=False,
             name=None, groups=1):
        """Conv2D (or DepthwiseConv2D with groups = channels). 'same' with stride 1 and odd
        kernels = symmetric padding; 'same' with stride 2 = TF's (the extra row/column at the
        bottom/right), padded with F.pad at run time; 'valid' = none. relu: Conv2D's
        activation='relu' (VGG), one Keras layer."""
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        cin = self.channels[x]
        pad = (kh // 2, kw // 2) if padding == "same" and stride == 1 else (0, 0)
        module = nn.Conv2d(cin, filters, (kh, kw), stride=stride, padding=pad, bias=bias,
                           groups=groups)
        tf_same = padding == "same" and stride > 1

        def op(xs, m=module):
            t = xs[0]
            if tf_same:
                t = F.pad(t, tf_same_padding(t, (kh, kw), stride))
            y = m(t)
            return F.relu(y) if relu else y

        name = name or self.auto_name("depthwise_conv2d" if groups > 1 else "conv2d")
        return self.add(name, [x], op, filters, module)

    def depthwise(self, x, kernel, stride, padding, name):
        return self.conv(x, self.channels[x], kernel, stride, padding, bias=False, name=name,
                         groups=self.channels[x])

    def batch_norm(self, x, eps, keras_momentum=KERAS_BN_MOMENTUM, scale=True, name=None):
        c = self.channels[x]
        module = (keras_batch_norm(c, eps, keras_momentum) if scale
                  else BatchNormNoScale(c, eps, keras_momentum))
        return self.add(name or self.auto_name("batch_normalization"), [x],
                        lambda xs, m=module: m(xs[0]), c, module)

    def relu(self, x, name=None, max_value=None):
        op = ((lambda xs: F.relu(xs[0])) if max_value is None
              else (lambda xs: F.hardtanh(xs[0], 0.0, max_value)))
        return self.add(name or self.auto_name("activation"), [x], op, self.channels[x])

    def max_pool(self, x, pool, stride, name=None):  # 'valid'
        return self.add(name or self.auto_name("max_pooling2d"), [x],
                        lambda xs: F.max_pool2d(xs[0], pool, stride), self.channels[x])

    def average_pool_same(self, x, name=None):
        """AveragePooling2D((3, 3), strides=(1, 1), padding='same'): TF averages over the
        window's pixels inside the image only."""
        return self.add(name or self.auto_name("average_pooling2d"), [x],
                        lambda xs: F.avg_pool2d(xs[0], 3, 1, 1, count_include_pad=False),
                        self.channels[x])

    def zero_pad(self, x, pads, name):
        """ZeroPadding2D(((top, bottom), (left, right))); pads: a function of the input."""
        return self.add(name, [x], lambda xs: F.pad(xs[0], pads(xs[0])), self.channels[x])

    def concat(self, xs, name=None):
        return self.add(name or self.auto_name("concatenate"), xs,
                        lambda ts: torch.cat(ts, dim=1), sum(self.channels[i] for i in xs))

    def add_layer(self, a, b, name):
        return self.add(name, [a, b], lambda ts: ts[0] + ts[1], self.channels[a])

    # -- the model --
    def finish(self):
        """The head on the last layer, and when each output can be dropped."""
        self.dense = nn.Linear(self.channels[-1], HEAD_UNITS)
        self.dense_1 = nn.Linear(HEAD_UNITS, CLASSES)
        last_reader = {}
        for i, ins in enumerate(self.inputs):
            for j in ins:
                last_reader[j] = i
        self.drop_after = [[] for _ in self.names]
        for j, i in last_reader.items():
            self.drop_after[i].append(j)
        return self

    def forward(self, x):
        outs = [None] * len(self.names)
        outs[0] = x
        for i in range(1, len(self.names)):
            outs[i] = self.ops[i]([outs[j] for j in self.inputs[i]])
            for j in self.drop_after[i]:
                outs[j] = None
        x = outs[-1].mean(dim=(2, 3))  # global_average_pooling2d
        return self.dense_1(F.relu(self.dense(x)))

    def keras_layers(self):
        return list(self.weighted.items()) + [("dense", self.dense), ("dense_1", self.dense_1)]

    def keras_base_graph(self):
        return [(n, [self.names[j] for j in ins]) for n, ins in zip(self.names, self.inputs)]

    def head(self):
        return [self.dense, self.dense_1]


def tf_same_padding(x, kernel, stride):
    """F.pad amounts (left, right, top, bottom) of TensorFlow's 'same' padding of NCHW x."""
    pads = []
    for size, k in zip(x.shape[2:], kernel):
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return (pads[1][0], pads[1][1], pads[0][0], pads[0][1])


def correct_pad(x, kernel):
    """imagenet_utils.correct_pad as F.pad amounts: ((k//2 - adjust, k//2) per axis) with
    adjust = 1 for an even size (0 then k//2), 0 for an odd one."""
    h, w = x.shape[2], x.shape[3]
    c = kernel // 2
    return (c - (1 - w % 2), c, c - (1 - h % 2), c)


def vgg(convs_per_block):
    """vgg16.py / vgg19.py, include_top=False: blocks of 3x3 'same' relu convs with bias,
    each followed by a 2x2/2 max pool."""
    g = KerasGraph()
    x = 0
    for b, (convs, filters) in enumerate(zip(convs_per_block, (64, 128, 256, 512, 512)), 1):
        for c in range(1, convs + 1):
            x = g.conv(x, filters, 3, relu=True, name=f"block{b}_conv{c}")
        x = g.max_pool(x, 2, 2, name=f"block{b}_pool")
    return g.finish()


def inception_v3():
    """inception_v3.py, include_top=False, with Keras's automatic layer names."""
    g = KerasGraph()

    def conv2d_bn(x, filters, rows, cols, padding="same", strides=1):
        x = g.conv(x, filters, (rows, cols), strides, padding, bias=False)
        x = g.batch_norm(x, KERAS_BN_EPSILON, scale=False)
        return g.relu(x)

    x = conv2d_bn(0, 32, 3, 3, strides=2, padding="valid")
    x = conv2d_bn(x, 32, 3, 3, padding="valid")
    x = conv2d_bn(x, 64, 3, 3)
    x = g.max_pool(x, 3, 2)
    x = conv2d_bn(x, 80, 1, 1, padding="valid")
    x = conv2d_bn(x, 192, 3, 3, padding="valid")
    x = g.max_pool(x, 3, 2)

    for i, pool_filters in enumerate((32, 64, 64)):  # mixed 0, 1, 2: 35 x 35
        b1 = conv2d_bn(x, 64, 1, 1)
        b5 = conv2d_bn(conv2d_bn(x, 48, 1, 1), 64, 5, 5)
        b3 = conv2d_bn(conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
        bp = conv2d_bn(g.average_pool_same(x), pool_filters, 1, 1)
        x = g.concat([b1, b5, b3, bp], name=f"mixed{i}")

    b3 = conv2d_bn(x, 384, 3, 3, strides=2, padding="valid")  # mixed 3: 17 x 17
    bd = conv2d_bn(conv2d_bn(x, 64, 1, 1), 96, 3, 3)
    bd = conv2d_bn(bd, 96, 3, 3, strides=2, padding="valid")
    bp = g.max_pool(x, 3, 2)
    x = g.concat([b3, bd, bp], name="mixed3")

    for i, f in ((4, 128), (5, 160), (6, 160), (7, 192)):  # mixed 4..7: 17 x 17
        b1 = conv2d_bn(x, 192, 1, 1)
        b7 = conv2d_bn(conv2d_bn(conv2d_bn(x, f, 1, 1), f, 1, 7), 192, 7, 1)
        bd = conv2d_bn(conv2d_bn(x, f, 1, 1), f, 7, 1)
        bd = conv2d_bn(conv2d_bn(conv2d_bn(bd, f, 1, 7), f, 7, 1), 192, 1, 7)
        bp = conv2d_bn(g.average_pool_same(x), 192, 1, 1)
        x = g.concat([b1, b7, bd, bp], name=f"mixed{i}")

    b3 = conv2d_bn(conv2d_bn(x, 192, 1, 1), 320, 3, 3, strides=2, padding="valid")  # mixed 8
    b7 = conv2d_bn(conv2d_bn(conv2d_bn(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
    b7 = conv2d_bn(b7, 192, 3, 3, strides=2, padding="valid")
    bp = g.max_pool(x, 3, 2)
    x = g.concat([b3, b7, bp], name="mixed8")

    for i in range(2):  # mixed 9, 10: 8 x 8
        b1 = conv2d_bn(x, 320, 1, 1)
        b3 = conv2d_bn(x, 384, 1, 1)
        b3 = g.concat([conv2d_bn(b3, 384, 1, 3), conv2d_bn(b3, 384, 3, 1)], name=f"mixed9_{i}")
        bd = conv2d_bn(conv2d_bn(x, 448, 1, 1), 384, 3, 3)
        bd = g.concat([conv2d_bn(bd, 384, 1, 3), conv2d_bn(bd, 384, 3, 1)])
        bp = conv2d_bn(g.average_pool_same(x), 192, 1, 1)
        x = g.concat([b1, b3, bd, bp], name=f"mixed{9 + i}")
    return g.finish()


def make_divisible(v, divisor, min_value=None):
    """mobilenet_v2._make_divisible."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:  # round down by at most 10%
        new_v += divisor
    return new_v


def mobilenet_v2(alpha):
    """mobilenet_v2.py, include_top=False."""
    g = KerasGraph()
    eps, momentum = 1e-3, 0.999

    def inverted_res_block(inputs, expansion, stride, filters, block_id):
        in_channels = g.channels[inputs]
        pointwise_filters = make_divisible(int(filters * alpha), 8)
        x = inputs
        prefix = f"block_{block_id}_"
        if block_id:
            x = g.conv(x, expansion * in_channels, 1, bias=False, name=prefix + "expand")
            x = g.batch_norm(x, eps, momentum, name=prefix + "expand_BN")
            x = g.relu(x, prefix + "expand_relu", 6.0)
        else:
            prefix = "expanded_conv_"
        if stride == 2:
            x = g.zero_pad(x, lambda t: correct_pad(t, 3), prefix + "pad")
        x = g.depthwise(x, 3, stride, "same" if stride == 1 else "valid", prefix + "depthwise")
        x = g.batch_norm(x, eps, momentum, name=prefix + "depthwise_BN")
        x = g.relu(x, prefix + "depthwise_relu", 6.0)
        x = g.conv(x, pointwise_filters, 1, bias=False, name=prefix + "project")
        x = g.batch_norm(x, eps, momentum, name=prefix + "project_BN")
        if in_channels == pointwise_filters and stride == 1:
            return g.add_layer(inputs, x, prefix + "add")
        return x

    x = g.conv(0, make_divisible(32 * alpha, 8), 3, 2, "same", bias=False, name="Conv1")
    x = g.batch_norm(x, eps, momentum, name="bn_Conv1")
    x = g.relu(x, "Conv1_relu", 6.0)
    blocks = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6),
              (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6),
              (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6), (320, 1, 6)]
    for block_id, (filters, stride, expansion) in enumerate(blocks):
        x = inverted_res_block(x, expansion, stride, filters, block_id)
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    x = g.conv(x, last, 1, bias=False, name="Conv_1")
    x = g.batch_norm(x, eps, momentum, name="Conv_1_bn")
    g.relu(x, "out_relu", 6.0)
    return g.finish()


def build_model(backbone, alpha=1.0):
    """The fine-tuning model of a backbone, channels_last."""
    if backbone in RESNET_STACKS:
        model = KerasResNetFineTune(RESNET_STACKS[backbone])
    elif backbone == "vgg16":
        model = vgg((2, 2, 3, 3, 3))
    elif backbone == "vgg19":
        model = vgg((2, 2, 4, 4, 4))
    elif backbone == "inception_v3":
        model = inception_v3()
    elif backbone == "mobilenet_v2":
        model = mobilenet_v2(alpha)
    else:
        raise ValueError(f"unknown backbone {backbone}")
    return model.to(memory_format=torch.channels_last)


def keras_layer_order(graph):
    """Names of a functional Keras model's layers in the order of Model.layers (Keras 2
    functional._map_graph_network): a depth-first walk from the output, visiting each layer's
    inputs in call order, numbers the layers (pre-order); a layer's depth is its longest path
    to the output; layers are sorted by decreasing depth, ties by that number.
    graph: (name, input names) of every layer, the output last."""
    inputs = dict(graph)
    index, post_order, done = {}, [], set()
    stack = [(graph[-1][0], False)]
    while stack:  # iterative DFS (ResNet152 is deeper than Python's recursion limit)
        name, expanded = stack.pop()
        if expanded:
            post_order.append(name)
            continue
        if name in done:
            continue
        done.add(name)
        index.setdefault(name, len(index))
        stack.append((name, True))
        for parent in reversed(inputs[name]):
            if parent not in done:
                stack.append((parent, False))
    depth = {}
    for name in reversed(post_order):
        d = depth.setdefault(name, 0)
        for parent in inputs[name]:
            depth[parent] = max(depth.get(parent, 0), d + 1)
    return sorted(depth, key=lambda n: (-depth[n], index[n]))


def keras_initialize(model, seed):
    """Keras defaults: glorot-uniform kernels (fans of Keras's kernel shape: a depthwise
    kernel [KH,KW,C,1] has fan_in KH*KW*C, fan_out KH*KW), zero biases; BN gamma 1, beta 0."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in model.keras_layers():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                w = module.weight
                receptive = w[0, 0].numel() if w.dim() == 4 else 1
                fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
                if isinstance(module, nn.Conv2d) and module.groups > 1:
                    fan_in, fan_out = module.groups * receptive, w.shape[0] // module.groups * receptive
                limit = math.sqrt(6.0 / (fan_in + fan_out))
                w.copy_(torch.rand(w.shape, generator=generator) * (2 * limit) - limit)
                if module.bias is not None:
                    module.bias.zero_()


def calibrate_batch_norm(model, images):
    """Moving statistics of every BN := the statistics of its input on `images` (one
    training-mode forward with momentum 1, no autograd); momentum restored afterwards."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(images)
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum


def synthetic_batch(batch, size, seed):
    """NHWC pixels uniform in [-124, 152), viewed as an NCHW channels_last tensor; labels i%2."""
    generator = torch.Generator().manual_seed(seed)
    nhwc = torch.rand((batch, size, size, 3), generator=generator) * 276.0 - 124.0
    images = nhwc.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    labels = torch.arange(batch) % 2
    return images, labels


def phase2_layers(model, unfreeze_last):
    """Names of Keras's base.layers[-unfreeze_last:] (weightless ones included)."""
    order = keras_layer_order(model.keras_base_graph())
    return order[len(order) - unfreeze_last:] if unfreeze_last > 0 else []


def configure(model, scenario, unfreeze_last=10):
    """Trainable flags and BN modes of one scenario. Returns the trainable parameters."""
    if scenario == "frozen":
        trainable_layers = set()
    elif scenario == "phase2":
        trainable_layers = set(phase2_layers(model, unfreeze_last)) | {"dense", "dense_1"}
    else:
        trainable_layers = {name for name, _ in model.keras_layers()}
    model.train(scenario != "frozen")
    trainable = []
    for name, module in model.keras_layers():
        is_trainable = name in trainable_layers
        for param_name, p in module.named_parameters():
            if fixed_parameter(module, param_name):
                continue
            p.requires_grad_(is_trainable)
            if is_trainable:
                trainable.append(p)
        if isinstance(module, nn.BatchNorm2d) and not is_trainable:
            module.eval()  # Keras: a BN with trainable=False runs in inference mode
    return trainable


def count_parameters(model):
    """(weights Keras trains, BN moving statistics, head weights): Keras's count_params of
    the whole model is the sum of the first two."""
    weights = sum(p.numel() for _, m in model.keras_layers()
                  for n, p in m.named_parameters() if not fixed_parameter(m, n))
    moving = sum(b.numel() for n, b in model.named_buffers()
                 if n.endswith(("running_mean", "running_var")))
    head = sum(p.numel() for m in model.head() for p in m.parameters())
    return weights, moving, head


def forward_flops(model, image_size):
    """Conv (depthwise included) + dense FLOPs of one image's forward (2 per multiply-add),
    as bench_backbone counts them, from the output shapes seen by forward hooks."""
    total = [0.0]

    def count(module, _inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += 2.0 * output.numel() * module.in_channels // module.groups * kh * kw
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
    ap.add_argument("--backbone", default="resnet50", choices=list(BACKBONES))
    ap.add_argument("--alpha", type=float, default=1.0,
                    help="MobileNetV2's width multiplier: " + ", ".join(map(str, MOBILENET_V2_ALPHAS)))
    ap.add_argument("--batch", type=int, default=32, help="images per step")
    ap.add_argument("--image-size", type=int, default=0,
                    help="input height and width; 0: the backbone's default (224, inception_v3 299)")
    ap.add_argument("--unfreeze-last", type=int, default=10,
                    help="phase2: Keras's base.layers[-N:] trainable")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="compute threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps per scenario")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--scenarios", default="frozen,phase2,full", help="frozen,phase2,full (any subset)")
    ap.add_argument("--csv", help="also write the scenario results here")
    ap.add_argument("--seed", type=int, default=1, help="initialisation seed")
    ap.add_argument("--check-only", action="store_true",
                    help="print the model line, check the counts and one forward + backward, stop")
    args = ap.parse_args()
    keras_name, base_layers, default_size, min_size, _ = BACKBONES[args.backbone]
    if args.backbone == "mobilenet_v2":
        if args.alpha not in MOBILENET_V2_ALPHAS:
            ap.error(f"--alpha must be one of {MOBILENET_V2_ALPHAS} for mobilenet_v2")
    elif args.alpha != 1.0:
        ap.error("--alpha is MobileNetV2's")
    if args.image_size == 0:
        args.image_size = default_size
    if args.image_size < min_size:
        ap.error(f"--image-size must be at least {min_size} for {args.backbone} (Keras's "
                 f"minimum input size for {keras_name}), got {args.image_size}")
    if not 0 <= args.unfreeze_last <= base_layers:
        ap.error(f"--unfreeze-last must be in 0..{base_layers} for {args.backbone}")
    for name, low in (("batch", 1), ("threads", 1), ("repeats", 1), ("warmup", 0)):
        if getattr(args, name) < low:
            ap.error(f"--{name.replace('_', '-')} must be at least {low}")
    args.scenarios = args.scenarios.split(",")
    for s in args.scenarios:
        if s not in SCENARIOS:
            ap.error(f"--scenarios takes frozen, phase2 and/or full, got '{s}'")
    return args


def emit(record):
    print(json.dumps(record), flush=True)


def check_step(model, image_size, trainable):
    """One forward + backward of two images (all-trainable; a training BN needs more than
    one value per channel): finite loss and gradients."""
    images, labels = synthetic_batch(2, image_size, 0)
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    finite = math.isfinite(loss.item()) and all(
        p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in trainable)
    return loss.item(), finite


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    keras_name, base_layers, _, _, keras_total = BACKBONES[args.backbone]
    images, labels = synthetic_batch(args.batch, args.image_size, args.seed)

    started = time.perf_counter()
    reference = build_model(args.backbone, args.alpha)
    keras_initialize(reference, args.seed)
    flops_per_image = forward_flops(reference, args.image_size)
    calibrate_batch_norm(reference, images)
    calibrated = {k: v.clone() for k, v in reference.state_dict().items()}
    weights, moving_statistics, head = count_parameters(reference)
    order = keras_layer_order(reference.keras_base_graph())
    expected_total = keras_total if args.alpha == 1.0 else None
    base_count = weights + moving_statistics - head
    record = {
        "record": "model", "framework": "pytorch", "torch_version": torch.__version__,
        "backbone": args.backbone, "keras_name": keras_name, "alpha": args.alpha,
        "threads": torch.get_num_threads(), "batch": args.batch, "image_size": args.image_size,
        "parameters": weights, "bn_moving_statistics": moving_statistics,
        "keras_count_params": weights + moving_statistics,
        "keras_base_count_params": base_count,
        "keras_base_count_params_expected": expected_total,
        "keras_base_layers": len(order), "keras_base_layers_expected": base_layers,
        "phase2_layers": phase2_layers(reference, args.unfreeze_last),
        "gflop_forward": flops_per_image * args.batch * 1e-9,
        "setup_s": time.perf_counter() - started}
    if args.check_only:
        trainable = configure(reference, "full")
        record["check_loss"], record["check_finite"] = check_step(reference, args.image_size,
                                                                   trainable)
    emit(record)
    del reference
    if args.check_only:
        ok = ((expected_total is None or base_count == expected_total)
              and len(order) == base_layers and record["check_finite"])
        return 0 if ok else 1

    rows = []
    for scenario in args.scenarios:
        model = build_model(args.backbone, args.alpha)
        model.load_state_dict(calibrated)
        trainable = configure(model, scenario, args.unfreeze_last)
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
        row = {"record": "scenario", "framework": "pytorch", "backbone": args.backbone,
               "alpha": args.alpha, "scenario": scenario,
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
